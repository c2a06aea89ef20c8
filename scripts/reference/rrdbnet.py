"""RRDBNet (ESRGAN / Real-ESRGAN generator), written from ../shared/docs/realesrgan.md section 1.1.

Tensors are float32 NCHW (batch N, channels C, height H, width W). State-dict keys match
BasicSR's so released `RealESRGAN_x{2,4}plus.pth` files load strictly.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def pixel_unshuffle(x: torch.Tensor, s: int) -> torch.Tensor:
    """Space-to-depth: out[n, c*s*s + i*s + j, y, x] = in[n, c, y*s + i, x*s + j]; H, W divisible by s."""
    n, c, h, w = x.shape
    if h % s or w % s:
        raise ValueError(f"pixel_unshuffle: {h}x{w} is not divisible by {s}")
    x = x.reshape(n, c, h // s, s, w // s, s)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(n, c * s * s, h // s, w // s)


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1, bias=True)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; output = 0.2 * conv5(...) + x."""

    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.conv1 = _conv(nf, gc)
        self.conv2 = _conv(nf + gc, gc)
        self.conv3 = _conv(nf + 2 * gc, gc)
        self.conv4 = _conv(nf + 3 * gc, gc)
        self.conv5 = _conv(nf + 4 * gc, nf)

    def forward(self, x):
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), 0.2))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    """Three RDBs in sequence; output = 0.2 * rdb3(rdb2(rdb1(x))) + x."""

    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(nf, gc)
        self.rdb2 = ResidualDenseBlock(nf, gc)
        self.rdb3 = ResidualDenseBlock(nf, gc)

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """RRDBNet(num_in_ch, num_out_ch, scale, num_feat, num_block, num_grow_ch); scale 1/2 unshuffle by 4/2."""

    def __init__(self, num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=23, num_grow_ch=32):
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError(f"RRDBNet: scale must be 1, 2 or 4, got {scale}")
        self.scale = scale
        self.unshuffle = {1: 4, 2: 2, 4: 1}[scale]
        cin = num_in_ch * self.unshuffle * self.unshuffle
        self.conv_first = _conv(cin, num_feat)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = _conv(num_feat, num_feat)
        self.conv_up1 = _conv(num_feat, num_feat)
        self.conv_up2 = _conv(num_feat, num_feat)
        self.conv_hr = _conv(num_feat, num_feat)
        self.conv_last = _conv(num_feat, num_out_ch)

    def forward(self, x):
        feat = pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        # nearest x2 == repeat each row and column twice
        up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")
        feat = F.leaky_relu(self.conv_up1(up(feat)), 0.2)
        feat = F.leaky_relu(self.conv_up2(up(feat)), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))
