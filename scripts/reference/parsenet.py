"""ParseNet (face parsing used by GPEN's FaceParse), written from ../shared/docs/gpen.md section 5 and 3.6.

Tensors are float32 NCHW. Keys match GPEN's face_parse/parse_model.py (e.g. encoder.1.conv1.norm.norm.weight).
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MASK_COLORMAP = [0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0, 255, 255, 255, 0]


class _Norm(nn.Module):
    def __init__(self, c, norm_type):
        super().__init__()
        self.norm = nn.BatchNorm2d(c) if norm_type == "bn" else None

    def forward(self, x):
        return self.norm(x) if self.norm is not None else x


class _Act(nn.Module):
    def __init__(self, c, relu_type):
        super().__init__()
        t = relu_type.lower()
        self.t = t
        if t == "prelu":
            self.func = nn.PReLU(c)

    def forward(self, x):
        if self.t == "leakyrelu":
            return F.leaky_relu(x, 0.2)
        if self.t == "relu":
            return F.relu(x)
        if self.t == "prelu":
            return self.func(x)
        return x


class ConvLayer(nn.Module):
    """[nearest x2 if up] -> reflection pad -> conv (stride 2 if down; bias unless bn) -> norm -> act."""

    def __init__(self, cin, cout, k=3, scale="none", norm_type="none", relu_type="none"):
        super().__init__()
        self.up = scale == "up"
        self.pad = int(math.ceil((k - 1) / 2))
        self.conv2d = nn.Conv2d(cin, cout, k, 2 if scale == "down" else 1, bias=norm_type != "bn")
        self.norm = _Norm(cout, norm_type)
        self.relu = _Act(cout, relu_type)

    def forward(self, x):
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = F.pad(x, (self.pad,) * 4, mode="reflect")
        return self.relu(self.norm(self.conv2d(x)))


class ResidualBlock(nn.Module):
    """shortcut (identity or plain ConvLayer) + conv2(conv1(x)); no activation after the add."""

    def __init__(self, cin, cout, relu_type="prelu", norm_type="bn", scale="none"):
        super().__init__()
        self.shortcut_func = None if (scale == "none" and cin == cout) else ConvLayer(cin, cout, 3, scale)
        s1, s2 = {"down": ("none", "down"), "up": ("up", "none"), "none": ("none", "none")}[scale]
        self.conv1 = ConvLayer(cin, cout, 3, s1, norm_type=norm_type, relu_type=relu_type)
        self.conv2 = ConvLayer(cout, cout, 3, s2, norm_type=norm_type, relu_type="none")

    def forward(self, x):
        idt = x if self.shortcut_func is None else self.shortcut_func(x)
        return idt + self.conv2(self.conv1(x))


class ParseNet(nn.Module):
    """Returns (mask logits [N,parsing_ch,H,W], image [N,3,H,W])."""

    def __init__(self, in_size=128, out_size=128, min_feat_size=32, base_ch=64, parsing_ch=19, res_depth=10,
                 relu_type="LeakyReLU", norm_type="bn", ch_range=(32, 256)):
        super().__init__()
        lo, hi = ch_range
        clip = lambda c: max(lo, min(c, hi))
        min_feat_size = min(in_size, min_feat_size)
        down = int(np.log2(in_size // min_feat_size))
        up = int(np.log2(out_size // min_feat_size))
        act = {"norm_type": norm_type, "relu_type": relu_type}
        enc = [ConvLayer(3, base_ch, 3)]
        head = base_ch
        for _ in range(down):
            enc.append(ResidualBlock(clip(head), clip(head * 2), scale="down", **act))
            head *= 2
        self.encoder = nn.Sequential(*enc)
        self.body = nn.Sequential(*[ResidualBlock(clip(head), clip(head), **act) for _ in range(res_depth)])
        dec = []
        for _ in range(up):
            dec.append(ResidualBlock(clip(head), clip(head // 2), scale="up", **act))
            head //= 2
        self.decoder = nn.Sequential(*dec)
        self.out_img_conv = ConvLayer(clip(head), 3)
        self.out_mask_conv = ConvLayer(clip(head), parsing_ch)

    def forward(self, x):
        feat = self.encoder(x)
        x = self.decoder(feat + self.body(feat))
        return self.out_mask_conv(x), self.out_img_conv(x)


def faceparse_img2tensor(img_bgr: np.ndarray) -> torch.Tensor:
    """uint8 HWC BGR -> float32 NCHW RGB, x/255*2-1 (computed in float64 like upstream)."""
    img = img_bgr[..., ::-1] / 255.0 * 2 - 1
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).unsqueeze(0).float()


def mask_from_logits(logits: torch.Tensor) -> np.ndarray:
    """argmax over classes, MASK_COLORMAP (0 for background/hat/cloth, else 255) -> uint8 HW."""
    cls = logits.argmax(dim=1)[0].numpy()
    return np.asarray(MASK_COLORMAP, np.uint8)[cls]
