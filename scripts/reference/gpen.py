"""GPEN FullGenerator (face restoration GAN), written from ../shared/docs/gpen.md section 1 (exact math of §1.3-1.6).

Tensors are float32 NCHW. State-dict keys match GPEN's face_model/gpen_model.py so GPEN-BFR-*.pth load strictly
(plain keys, Blur/Upsample `kernel` buffers included). Pre/post-processing of FaceGAN at the bottom.
"""
import math
import re

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SQRT2 = math.sqrt(2.0)


def fir_kernel(k) -> torch.Tensor:
    """Outer product of the 1-D taps, normalised to sum 1 (make_kernel)."""
    k = torch.tensor(k, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up=1, down=1, pad=(0, 0)) -> torch.Tensor:
    """Zero-insert upsample by `up`, pad (p0, p1) both axes (negative crops), true convolution, keep every `down`-th."""
    n, c, h, w = x.shape
    p0, p1 = pad
    t = x.reshape(n * c, 1, h, w)
    if up > 1:
        z = t.new_zeros(n * c, 1, h * up, w * up)
        z[:, :, ::up, ::up] = t
        t = z
    t = F.pad(t, (max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)))
    H, W = t.shape[2:]
    t = t[:, :, max(-p0, 0):H - max(-p1, 0), max(-p0, 0):W - max(-p1, 0)]
    kw = torch.flip(kernel, [0, 1])[None, None].to(t.dtype)
    t = F.conv2d(t, kw)
    t = t[:, :, ::down, ::down]
    return t.reshape(n, c, t.shape[2], t.shape[3])


def fused_lrelu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """sqrt(2) * leaky_relu(x + bias, 0.2), bias broadcast over dim 1."""
    shape = [1, bias.shape[0]] + [1] * (x.dim() - 2)
    return F.leaky_relu(x + bias.view(*shape), 0.2) * SQRT2


class PixelNorm(nn.Module):
    def forward(self, x):
        return x * torch.rsqrt(torch.mean(x ** 2, dim=1, keepdim=True) + 1e-8)


class Blur(nn.Module):
    """upfirdn2d with the FIR kernel (x factor^2 when upsample_factor > 1) stored as buffer `kernel`."""

    def __init__(self, taps, pad, upsample_factor=1):
        super().__init__()
        k = fir_kernel(taps)
        if upsample_factor > 1:
            k = k * upsample_factor ** 2
        self.register_buffer("kernel", k)
        self.pad = pad

    def forward(self, x):
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """Zero-insert x2 + FIR*4, pad (2, 1): H -> 2H. Buffer `kernel`."""

    def __init__(self, taps, factor=2):
        super().__init__()
        self.register_buffer("kernel", fir_kernel(taps) * factor ** 2)
        self.factor = factor
        p = 4 - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x):
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class EqualConv2d(nn.Module):
    """conv2d with weight * 1/sqrt(in*k*k); bias unscaled."""

    def __init__(self, cin, cout, k, stride=1, padding=0, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.scale = 1 / math.sqrt(cin * k * k)
        self.stride, self.padding = stride, padding
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, bias=self.bias, stride=self.stride, padding=self.padding)


class EqualLinear(nn.Module):
    """y = x (W lr_mul/sqrt(in))^T + b lr_mul; with activation: fused_lrelu(x W'^T, b lr_mul)."""

    def __init__(self, cin, cout, bias_init=0.0, lr_mul=1.0, activation=None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin) / lr_mul)
        self.bias = nn.Parameter(torch.full((cout,), float(bias_init)))
        self.scale = (1 / math.sqrt(cin)) * lr_mul
        self.lr_mul, self.activation = lr_mul, activation

    def forward(self, x):
        if self.activation:
            return fused_lrelu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, bias=self.bias * self.lr_mul)


class FusedLeakyReLU(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return fused_lrelu(x, self.bias)


class ModulatedConv2d(nn.Module):
    """Per-sample modulated (and optionally demodulated) conv; upsample = transposed conv s2 + Blur(pad 1,1, x4)."""

    def __init__(self, cin, cout, k, style_dim, demodulate=True, upsample=False, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.cin, self.cout, self.k = cin, cout, k
        self.scale = 1 / math.sqrt(cin * k * k)
        self.padding = k // 2
        self.weight = nn.Parameter(torch.randn(1, cout, cin, k, k))
        self.modulation = EqualLinear(style_dim, cin, bias_init=1)
        self.demodulate, self.upsample = demodulate, upsample
        if upsample:
            p = (len(blur_kernel) - 2) - (k - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)

    def forward(self, x, style):
        b, cin, h, w = x.shape
        s = self.modulation(style).view(b, 1, cin, 1, 1)
        wgt = self.scale * self.weight * s
        if self.demodulate:
            d = torch.rsqrt(wgt.pow(2).sum([2, 3, 4]) + 1e-8)
            wgt = wgt * d.view(b, self.cout, 1, 1, 1)
        if self.upsample:
            wgt = wgt.transpose(1, 2).reshape(b * cin, self.cout, self.k, self.k)
            out = F.conv_transpose2d(x.reshape(1, b * cin, h, w), wgt, padding=0, stride=2, groups=b)
            out = out.view(b, self.cout, out.shape[2], out.shape[3])
            return self.blur(out)
        wgt = wgt.view(b * self.cout, cin, self.k, self.k)
        out = F.conv2d(x.reshape(1, b * cin, h, w), wgt, padding=self.padding, groups=b)
        return out.view(b, self.cout, out.shape[2], out.shape[3])


class NoiseInjection(nn.Module):
    """isconcat: concat(image, weight * noise) along channels (weight is one scalar)."""

    def __init__(self, isconcat=True):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.isconcat = isconcat

    def forward(self, image, noise):
        if self.isconcat:
            return torch.cat((image, self.weight * noise), dim=1)
        return image + self.weight * noise


class ConstantInput(nn.Module):
    def __init__(self, c, size=4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, c, size, size))

    def forward(self, batch):
        return self.input.repeat(batch, 1, 1, 1)


class StyledConv(nn.Module):
    def __init__(self, cin, cout, k, style_dim, upsample=False, blur_kernel=(1, 3, 3, 1), isconcat=True):
        super().__init__()
        self.conv = ModulatedConv2d(cin, cout, k, style_dim, upsample=upsample, blur_kernel=blur_kernel)
        self.noise = NoiseInjection(isconcat)
        self.activate = FusedLeakyReLU(cout * 2 if isconcat else cout)

    def forward(self, x, style, noise):
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    def __init__(self, cin, style_dim, upsample=True, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.has_up = upsample
        self.conv = ModulatedConv2d(cin, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, style, skip=None):
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


def channel_table(channel_multiplier=2, narrow=1.0) -> dict:
    """Channels per resolution (../shared/docs/gpen.md §1.2)."""
    cm, n = channel_multiplier, narrow
    return {4: int(512 * n), 8: int(512 * n), 16: int(512 * n), 32: int(512 * n), 64: int(256 * cm * n),
            128: int(128 * cm * n), 256: int(64 * cm * n), 512: int(32 * cm * n), 1024: int(16 * cm * n),
            2048: int(8 * cm * n)}


class Generator(nn.Module):
    def __init__(self, size, style_dim, n_mlp, channel_multiplier=2, blur_kernel=(1, 3, 3, 1), lr_mlp=0.01,
                 isconcat=True, narrow=1.0):
        super().__init__()
        self.style = nn.Sequential(PixelNorm(), *[EqualLinear(style_dim, style_dim, lr_mul=lr_mlp,
                                                              activation="fused_lrelu") for _ in range(n_mlp)])
        ch = channel_table(channel_multiplier, narrow)
        mult = 2 if isconcat else 1
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], 3, style_dim, blur_kernel=blur_kernel, isconcat=isconcat)
        self.to_rgb1 = ToRGB(ch[4] * mult, style_dim, upsample=False)
        self.log_size = int(math.log2(size))
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        cin = ch[4]
        for i in range(3, self.log_size + 1):
            cout = ch[2 ** i]
            self.convs.append(StyledConv(cin * mult, cout, 3, style_dim, upsample=True, blur_kernel=blur_kernel,
                                         isconcat=isconcat))
            self.convs.append(StyledConv(cout * mult, cout, 3, style_dim, blur_kernel=blur_kernel, isconcat=isconcat))
            self.to_rgbs.append(ToRGB(cout * mult, style_dim))
            cin = cout

    def forward(self, z, noise):
        w = self.style(z)  # one style: every layer sees the same w (no mixing, no truncation)
        out = self.conv1(self.input(w.shape[0]), w, noise[0])
        skip = self.to_rgb1(out, w)
        for j, to_rgb in enumerate(self.to_rgbs):
            out = self.convs[2 * j](out, w, noise[1 + 2 * j])
            out = self.convs[2 * j + 1](out, w, noise[2 + 2 * j])
            skip = to_rgb(out, w, skip)
        return skip


def _conv_layer(cin, cout, k, downsample=False, blur_kernel=(1, 3, 3, 1)):
    layers = []
    if downsample:
        p = (len(blur_kernel) - 2) + (k - 1)
        layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
        layers.append(EqualConv2d(cin, cout, k, stride=2, padding=0, bias=False))
    else:
        layers.append(EqualConv2d(cin, cout, k, padding=k // 2, bias=False))
    layers.append(FusedLeakyReLU(cout))
    return nn.Sequential(*layers)


class FullGenerator(nn.Module):
    """GPEN: encoder (ecd0..ecd{L-2}) -> final_linear -> mapping -> StyleGAN2 synthesis with encoder features concatenated."""

    def __init__(self, size, style_dim, n_mlp, channel_multiplier=2, blur_kernel=(1, 3, 3, 1), lr_mlp=0.01,
                 isconcat=True, narrow=1.0):
        super().__init__()
        ch = channel_table(channel_multiplier, narrow)
        self.log_size = int(math.log2(size))
        self.generator = Generator(size, style_dim, n_mlp, channel_multiplier, blur_kernel, lr_mlp, isconcat, narrow)
        self.ecd0 = nn.Sequential(_conv_layer(3, ch[size], 1))
        cin = ch[size]
        for i in range(self.log_size, 2, -1):
            cout = ch[2 ** (i - 1)]
            setattr(self, f"ecd{self.log_size - i + 1}", nn.Sequential(_conv_layer(cin, cout, 3, True, blur_kernel)))
            cin = cout
        self.final_linear = nn.Sequential(EqualLinear(ch[4] * 16, style_dim, activation="fused_lrelu"))

    def forward(self, x):
        feats = []
        for i in range(self.log_size - 1):
            x = getattr(self, f"ecd{i}")(x)
            feats.append(x)
        z = self.final_linear(x.reshape(x.shape[0], -1))  # NCHW (c, h, w) flatten order
        noise = [f for f in feats for _ in range(2)][::-1][1:]
        return self.generator(z, noise)


def config_from_state_dict(sd: dict) -> dict:
    """Infer size/style_dim/n_mlp/channel_multiplier/narrow from a GPEN state_dict."""
    n_mlp = len([k for k in sd if k.startswith("generator.style.") and k.endswith(".weight")])
    style_dim = sd["generator.style.1.weight"].shape[0]
    n_rgb = len([k for k in sd if re.fullmatch(r"generator\.to_rgbs\.\d+\.bias", k)])
    size = 2 ** (n_rgb + 2)
    c4 = sd["generator.input.input"].shape[1]
    narrow = c4 / 512
    c64 = sd["generator.convs.6.conv.weight"].shape[1] if size >= 64 else None
    cm = round(c64 / (256 * narrow)) if c64 else 1
    return dict(size=size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=cm, narrow=narrow)


def facegan_img2tensor(img_bgr: np.ndarray) -> torch.Tensor:
    """uint8 HWC BGR -> float32 NCHW RGB in [-1,1]: (x/255 - 0.5)/0.5, channel flip."""
    t = torch.from_numpy(img_bgr) / 255.0
    t = (t - 0.5) / 0.5
    return t.permute(2, 0, 1).unsqueeze(0).flip(1)


def facegan_tensor2img(t: torch.Tensor) -> np.ndarray:
    """float32 NCHW RGB -> uint8 HWC BGR = uint8(clip(t*0.5+0.5, 0, 1) * 255) (TRUNCATION)."""
    t = t * 0.5 + 0.5
    t = t.squeeze(0).permute(1, 2, 0).flip(2)
    return (np.clip(t.float().cpu().numpy(), 0, 1) * 255.0).astype(np.uint8)


def facegan_process(model: FullGenerator, img_bgr: np.ndarray) -> np.ndarray:
    """FaceGAN.process for a crop already at model size: uint8 BGR face in -> uint8 BGR face out."""
    with torch.no_grad():
        return facegan_tensor2img(model(facegan_img2tensor(img_bgr)))
