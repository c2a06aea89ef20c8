"""RetinaFace (ResNet-50 or MobileNet-0.25 backbone, FPN, SSH, heads), priors, decode and NMS.

Written from ../shared/docs/gpen.md section 3.4 and 4. Tensors are float32 NCHW; the network input is BGR minus
(104, 117, 123), unscaled. Keys match Pytorch_Retinaface/GPEN (without the `module.` prefix of the files).
"""
import math
from itertools import product

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CFG_MNET = {"name": "mobilenet0.25", "min_sizes": [[16, 32], [64, 128], [256, 512]], "steps": [8, 16, 32],
            "variance": [0.1, 0.2], "in_channel": 32, "out_channel": 64}
CFG_RE50 = {"name": "Resnet50", "min_sizes": [[16, 32], [64, 128], [256, 512]], "steps": [8, 16, 32],
            "variance": [0.1, 0.2], "in_channel": 256, "out_channel": 256}


def conv_bn(cin, cout, stride=1, leaky=0.0):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.LeakyReLU(negative_slope=leaky))


def conv_bn_no_relu(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout))


def conv_bn1x1(cin, cout, stride=1, leaky=0.0):
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout),
                         nn.LeakyReLU(negative_slope=leaky))


def conv_dw(cin, cout, stride, leaky=0.1):
    """Depthwise 3x3 (stride here) + BN + LeakyReLU(0.1), pointwise 1x1 + BN + LeakyReLU(0.1); keys .0 .1 .3 .4."""
    return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                         nn.LeakyReLU(negative_slope=leaky),
                         nn.Conv2d(cin, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout),
                         nn.LeakyReLU(negative_slope=leaky))


class MobileNetV1(nn.Module):
    """stage1 (/8, 64 ch), stage2 (/16, 128 ch), stage3 (/32, 256 ch)."""

    def __init__(self):
        super().__init__()
        self.stage1 = nn.Sequential(conv_bn(3, 8, 2, leaky=0.1), conv_dw(8, 16, 1), conv_dw(16, 32, 2),
                                    conv_dw(32, 32, 1), conv_dw(32, 64, 2), conv_dw(64, 64, 1))
        self.stage2 = nn.Sequential(conv_dw(64, 128, 2), *[conv_dw(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(conv_dw(128, 256, 2), conv_dw(256, 256, 1))

    def forward(self, x):
        c3 = self.stage1(x)
        c4 = self.stage2(c3)
        return [c3, c4, self.stage3(c4)]


class Bottleneck(nn.Module):
    """torchvision v1.5 bottleneck: 1x1, 3x3 (stride), 1x1 x4; downsample = 1x1 conv (stride) + BN."""

    def __init__(self, cin, width, stride=1, downsample=False):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.downsample = nn.Sequential(nn.Conv2d(cin, width * 4, 1, stride, bias=False),
                                        nn.BatchNorm2d(width * 4)) if downsample else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        idt = self.downsample(x) if self.downsample is not None else x
        return F.relu(out + idt)


class ResNet50Body(nn.Module):
    """conv1 7x7/2, bn1, relu, maxpool 3/2; layer1..4 = [3,4,6,3] bottlenecks; returns layer2, layer3, layer4."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for li, (n, w, s) in enumerate([(3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2)], start=1):
            blocks = [Bottleneck(cin, w, s, downsample=True)] + [Bottleneck(w * 4, w) for _ in range(n - 1)]
            setattr(self, f"layer{li}", nn.Sequential(*blocks))
            cin = w * 4

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layer1(x)
        c3 = self.layer2(x)
        c4 = self.layer3(c3)
        return [c3, c4, self.layer4(c4)]


class FPN(nn.Module):
    def __init__(self, in_list, out):
        super().__init__()
        leaky = 0.1 if out <= 64 else 0.0
        self.output1 = conv_bn1x1(in_list[0], out, leaky=leaky)
        self.output2 = conv_bn1x1(in_list[1], out, leaky=leaky)
        self.output3 = conv_bn1x1(in_list[2], out, leaky=leaky)
        self.merge1 = conv_bn(out, out, leaky=leaky)
        self.merge2 = conv_bn(out, out, leaky=leaky)

    def forward(self, feats):
        o1, o2, o3 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        o2 = self.merge2(o2 + F.interpolate(o3, size=[o2.shape[2], o2.shape[3]], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=[o1.shape[2], o1.shape[3]], mode="nearest"))
        return [o1, o2, o3]


class SSH(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        leaky = 0.1 if cout <= 64 else 0.0
        self.conv3X3 = conv_bn_no_relu(cin, cout // 2)
        self.conv5X5_1 = conv_bn(cin, cout // 4, leaky=leaky)
        self.conv5X5_2 = conv_bn_no_relu(cout // 4, cout // 4)
        self.conv7X7_2 = conv_bn(cout // 4, cout // 4, leaky=leaky)
        self.conv7x7_3 = conv_bn_no_relu(cout // 4, cout // 4)

    def forward(self, x):
        a = self.conv3X3(x)
        b1 = self.conv5X5_1(x)
        b = self.conv5X5_2(b1)
        c = self.conv7x7_3(self.conv7X7_2(b1))
        return F.relu(torch.cat([a, b, c], dim=1))


class _Head(nn.Module):
    def __init__(self, cin, k, anchors=2):
        super().__init__()
        self.conv1x1 = nn.Conv2d(cin, anchors * k, 1)
        self.k = k

    def forward(self, x):
        out = self.conv1x1(x).permute(0, 2, 3, 1).contiguous()
        return out.view(out.shape[0], -1, self.k)


class RetinaFace(nn.Module):
    """Returns (loc [N,P,4], softmax(conf) [N,P,2], landms [N,P,10]); P = priors, levels stride 8,16,32."""

    def __init__(self, cfg=CFG_MNET):
        super().__init__()
        self.body = MobileNetV1() if cfg["name"] == "mobilenet0.25" else ResNet50Body()
        ic, oc = cfg["in_channel"], cfg["out_channel"]
        self.fpn = FPN([ic * 2, ic * 4, ic * 8], oc)
        self.ssh1, self.ssh2, self.ssh3 = SSH(oc, oc), SSH(oc, oc), SSH(oc, oc)
        self.ClassHead = nn.ModuleList([_Head(oc, 2) for _ in range(3)])
        self.BboxHead = nn.ModuleList([_Head(oc, 4) for _ in range(3)])
        self.LandmarkHead = nn.ModuleList([_Head(oc, 10) for _ in range(3)])

    def forward(self, x):
        f = self.fpn(self.body(x))
        feats = [self.ssh1(f[0]), self.ssh2(f[1]), self.ssh3(f[2])]
        loc = torch.cat([h(t) for h, t in zip(self.BboxHead, feats)], dim=1)
        conf = torch.cat([h(t) for h, t in zip(self.ClassHead, feats)], dim=1)
        ldm = torch.cat([h(t) for h, t in zip(self.LandmarkHead, feats)], dim=1)
        return loc, F.softmax(conf, dim=-1), ldm


def strip_module(sd: dict) -> dict:
    """Drop a leading 'module.' from every key (Pytorch_Retinaface files)."""
    return {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}


def priors(cfg, h, w) -> torch.Tensor:
    """PriorBox: per level (stride 8,16,32), row i, column j, min_size -> [cx, cy, s/W, s/H], float32 [P,4]."""
    anchors = []
    for k, step in enumerate(cfg["steps"]):
        fh, fw = math.ceil(h / step), math.ceil(w / step)
        for i, j in product(range(fh), range(fw)):
            for ms in cfg["min_sizes"][k]:
                anchors += [(j + 0.5) * step / w, (i + 0.5) * step / h, ms / w, ms / h]
    return torch.tensor(anchors, dtype=torch.float32).view(-1, 4)


def decode(loc, pri, var):
    boxes = torch.cat((pri[:, :2] + loc[:, :2] * var[0] * pri[:, 2:], pri[:, 2:] * torch.exp(loc[:, 2:] * var[1])), 1)
    boxes[:, :2] -= boxes[:, 2:] / 2
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def decode_landm(pre, pri, var):
    return torch.cat([pri[:, :2] + pre[:, 2 * k:2 * k + 2] * var[0] * pri[:, 2:] for k in range(5)], dim=1)


def nms(dets: np.ndarray, thresh: float) -> list:
    """Greedy NMS with the +1 pixel area convention; keeps a box while IoU <= thresh."""
    x1, y1, x2, y2, sc = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3], dets[:, 4]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = sc.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        inter = np.maximum(0.0, xx2 - xx1 + 1) * np.maximum(0.0, yy2 - yy1 + 1)
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(ovr <= thresh)[0] + 1]
    return keep


def detect(net, img_bgr: np.ndarray, cfg=CFG_MNET, conf_thr=0.9, nms_thr=0.4, top_k=5000, keep_top_k=750):
    """GPEN RetinaFaceDetection.detect: dets float32 [K,5] (x1,y1,x2,y2,score), landms [K,10] (x1..x5,y1..y5)."""
    img = np.float32(img_bgr)
    h, w = img.shape[:2]
    ss = 1.0
    if max(h, w) > 1500:
        import cv2  # only needed for big images
        ss = 1000.0 / max(h, w)
        img = cv2.resize(img, (0, 0), fx=ss, fy=ss)
        h, w = img.shape[:2]
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)
    img -= (104, 117, 123)
    x = torch.from_numpy(img.transpose(2, 0, 1)).unsqueeze(0)
    with torch.no_grad():
        loc, conf, landms = net(x)
    pri = priors(cfg, h, w)
    boxes = (decode(loc[0], pri, cfg["variance"]) * scale).numpy()
    scores = conf[0].numpy()[:, 1]
    lm = (decode_landm(landms[0], pri, cfg["variance"]) * torch.tensor([w, h] * 5, dtype=torch.float32)).numpy()
    inds = np.where(scores > conf_thr)[0]
    boxes, lm, scores = boxes[inds], lm[inds], scores[inds]
    order = scores.argsort()[::-1][:top_k]
    boxes, lm, scores = boxes[order], lm[order], scores[order]
    dets = np.hstack((boxes, scores[:, None])).astype(np.float32, copy=False)
    keep = nms(dets, nms_thr)
    dets, lm = dets[keep][:keep_top_k], lm[keep][:keep_top_k]
    lm = lm.reshape(-1, 5, 2).transpose(0, 2, 1).reshape(-1, 10)
    return dets / ss, lm / ss
