"""SRVGGNetCompact (Real-ESRGAN v3 compact models), written from ../shared/docs/realesrgan.md section 1.3.

Tensors are float32 NCHW. Keys: body.{2k}.weight/bias (convs), body.{2k+1}.weight (PReLU slopes).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class SRVGGNetCompact(nn.Module):
    """conv, act, num_conv x (conv, act), conv -> pixel_shuffle(upscale) + nearest-upsampled input."""

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4, act_type="prelu"):
        super().__init__()
        if act_type not in ("prelu", "relu", "leakyrelu"):
            raise ValueError(f"SRVGGNetCompact: unknown act_type {act_type!r}")
        self.upscale = upscale
        layers = []

        def act():
            if act_type == "prelu":
                return nn.PReLU(num_parameters=num_feat)
            if act_type == "relu":
                return nn.ReLU()
            return nn.LeakyReLU(0.1)

        layers += [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), act()]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), act()]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)

    def forward(self, x):
        out = x
        for layer in self.body:
            out = layer(out)
        out = F.pixel_shuffle(out, self.upscale)
        base = x.repeat_interleave(self.upscale, dim=2).repeat_interleave(self.upscale, dim=3)
        return out + base
