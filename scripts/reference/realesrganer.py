"""RealESRGANer.enhance semantics (Real-ESRGAN a4abfb29 realesrgan/utils.py), written from ../shared/docs/realesrgan.md §3.

Images are NumPy HWC (BGR or BGRA, OpenCV order) uint8/uint16, or HW grayscale. The network sees float32
NCHW RGB in [0,1]. Resizes use our NumPy OpenCV-compatible kernels (resize.py) unless use_cv2=True.
"""
import math
import numpy as np
import torch
import torch.nn.functional as F

from resize import resize_lanczos4, resize_linear_float


def load_realesrgan_state(path: str) -> dict:
    """Load a Real-ESRGAN checkpoint: prefer 'params_ema', else 'params' (upstream rule)."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if "params_ema" in ck:
        return ck["params_ema"]
    if "params" in ck:
        return ck["params"]
    raise KeyError(f"{path}: neither 'params_ema' nor 'params' in checkpoint (keys {list(ck)[:5]})")


def _bgr2gray(x: np.ndarray) -> np.ndarray:
    """cv2.COLOR_BGR2GRAY on float32: 0.299 R + 0.587 G + 0.114 B (float32 arithmetic)."""
    b, g, r = x[:, :, 0], x[:, :, 1], x[:, :, 2]
    return (b * np.float32(0.114) + g * np.float32(0.587) + r * np.float32(0.299)).astype(np.float32)


class RealESRGANer:
    """Upscaler with upstream RealESRGANer semantics (pre_pad reflect, mod-pad, tiles, clamp, round, outscale)."""

    def __init__(self, scale, model, tile=0, tile_pad=10, pre_pad=10, use_cv2=False):
        self.scale, self.model = scale, model.eval()
        self.tile, self.tile_pad, self.pre_pad = tile, tile_pad, pre_pad
        self.use_cv2 = use_cv2
        self.mod_scale = {2: 2, 1: 4}.get(scale)

    def _pre(self, img: np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()[None]
        if self.pre_pad:
            x = F.pad(x, (0, self.pre_pad, 0, self.pre_pad), mode="reflect")
        mph = mpw = 0
        if self.mod_scale:
            h, w = x.shape[2:]
            mph = (self.mod_scale - h % self.mod_scale) % self.mod_scale
            mpw = (self.mod_scale - w % self.mod_scale) % self.mod_scale
            x = F.pad(x, (0, mpw, 0, mph), mode="reflect")
        return x, mph, mpw

    def _tiles(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        s, t, p = self.scale, self.tile, self.tile_pad
        out = None
        for ty in range(math.ceil(h / t)):
            for tx in range(math.ceil(w / t)):
                x0, x1 = tx * t, min(tx * t + t, w)
                y0, y1 = ty * t, min(ty * t + t, h)
                px0, px1 = max(x0 - p, 0), min(x1 + p, w)
                py0, py1 = max(y0 - p, 0), min(y1 + p, h)
                y = self.model(x[:, :, py0:py1, px0:px1])
                if out is None:
                    out = y.new_zeros((b, y.shape[1], h * s, w * s))
                ox, oy = (x0 - px0) * s, (y0 - py0) * s
                out[:, :, y0 * s:y1 * s, x0 * s:x1 * s] = y[:, :, oy:oy + (y1 - y0) * s, ox:ox + (x1 - x0) * s]
        return out

    def _run(self, img: np.ndarray) -> np.ndarray:
        """HWC float32 RGB [0,1] -> HWC float32 clamped network output (scale x)."""
        x, mph, mpw = self._pre(img)
        with torch.no_grad():
            y = self._tiles(x) if self.tile > 0 else self.model(x)
        h, w = y.shape[2:]
        s = self.scale
        y = y[:, :, :h - mph * s, :w - mpw * s]
        if self.pre_pad:
            h, w = y.shape[2:]
            y = y[:, :, :h - self.pre_pad * s, :w - self.pre_pad * s]
        return y[0].clamp_(0, 1).numpy().transpose(1, 2, 0)

    def enhance(self, img: np.ndarray, outscale=None, alpha_upsampler="realesrgan") -> np.ndarray:
        """Upstream enhance(): returns uint8 (or uint16 when max > 256) image, mode preserved."""
        h_in, w_in = img.shape[:2]
        f = img.astype(np.float32)
        max_range = 65535 if np.max(img) > 256 else 255
        f = f / np.float32(max_range)
        alpha = None
        if f.ndim == 2:
            mode = "L"
            rgb = np.repeat(f[:, :, None], 3, axis=2)
        elif f.shape[2] == 4:
            mode = "RGBA"
            alpha = f[:, :, 3]
            rgb = f[:, :, 2::-1]
            if alpha_upsampler == "realesrgan":
                alpha = np.repeat(alpha[:, :, None], 3, axis=2)
        else:
            mode = "RGB"
            rgb = f[:, :, 2::-1]
        out = self._run(np.ascontiguousarray(rgb))[:, :, ::-1]  # RGB -> BGR by indexing
        if mode == "L":
            out = _bgr2gray(out)
        if mode == "RGBA":
            if alpha_upsampler == "realesrgan":
                a = _bgr2gray(self._run(np.ascontiguousarray(alpha))[:, :, ::-1])
            else:
                h, w = alpha.shape
                if self.use_cv2:
                    import cv2
                    a = cv2.resize(alpha, (w * self.scale, h * self.scale), interpolation=cv2.INTER_LINEAR)
                else:
                    a = resize_linear_float(alpha, w * self.scale, h * self.scale)
            out = np.concatenate([out, a[:, :, None]], axis=2)  # BGR2BGRA then alpha in channel 3
        if max_range == 65535:
            out = (out * np.float32(65535.0)).round().astype(np.uint16)
        else:
            out = (out * np.float32(255.0)).round().astype(np.uint8)
        if outscale is not None and outscale != float(self.scale):
            W, H = int(w_in * outscale), int(h_in * outscale)
            if self.use_cv2:
                import cv2
                out = cv2.resize(out, (W, H), interpolation=cv2.INTER_LANCZOS4)
            else:
                out = resize_lanczos4(out, W, H)
        return out
