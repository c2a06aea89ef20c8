"""OpenCV-compatible resizes in NumPy (no cv2 needed), written from OpenCV's documented geometry.

Images are HWC or HW NumPy arrays (H rows, W columns, C channels).
- `resize_lanczos4`: cv2.INTER_LANCZOS4. uint8 uses OpenCV's fixed point (coefficients x2048 rounded to
  int16, horizontal pass in int32, vertical pass in int32, then (v + 2^21) >> 22 with saturation);
  uint16/float use float32 arithmetic with round-half-even saturation for uint16.
- `resize_linear_float`: cv2.INTER_LINEAR on float32 images (half-pixel centres, clamped edges).
Source coordinate of destination pixel d: (d + 0.5) * (src/dst) - 0.5; taps outside are clamped (replicate).
"""
import math
import numpy as np

_S45 = 0.70710678118654752440084436210485
_CS = [(1, 0), (-_S45, -_S45), (0, 1), (_S45, -_S45), (-1, 0), (_S45, _S45), (0, -1), (-_S45, _S45)]


def lanczos4_coeffs(x: float) -> np.ndarray:
    """Eight Lanczos-4 taps for fractional offset x in [0,1), normalised to sum 1 (float32, like OpenCV)."""
    x = np.float32(x)
    y0 = -(float(x) + 3) * math.pi * 0.25
    s0, c0 = math.sin(y0), math.cos(y0)
    c = np.zeros(8, np.float32)
    for i in range(8):
        yy = np.float32(x + np.float32(3 - i))
        if abs(yy) >= 1e-6:
            y = -float(yy) * math.pi * 0.25
            c[i] = np.float32((_CS[i][0] * s0 + _CS[i][1] * c0) / (y * y))
        else:
            c[i] = np.float32(1e30)
    s = np.float32(0)
    for i in range(8):
        s = np.float32(s + c[i])
    s = np.float32(1.0) / s
    return (c * s).astype(np.float32)


def _taps(src: int, dst: int, scale: float):
    idx = np.zeros((dst, 8), np.int64)
    coef = np.zeros((dst, 8), np.float32)
    for d in range(dst):
        f = np.float32((d + 0.5) * scale - 0.5)
        s = math.floor(f)
        f = np.float32(f - s)
        coef[d] = lanczos4_coeffs(f)
        idx[d] = np.clip(np.arange(s - 3, s + 5), 0, src - 1)
    return idx, coef


def _round_short(v: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(v), -32768, 32767).astype(np.int64)


def resize_lanczos4(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """cv2.resize(img, (width, height), interpolation=cv2.INTER_LANCZOS4) for uint8/uint16/float32 HWC or HW."""
    squeeze = img.ndim == 2
    a = img[:, :, None] if squeeze else img
    h, w, c = a.shape
    xi, xc = _taps(w, width, w / width)
    yi, yc = _taps(h, height, h / height)
    if a.dtype == np.uint8:
        ixc, iyc = _round_short(xc * 2048), _round_short(yc * 2048)
        s = a.astype(np.int64)
        horiz = (s[:, xi, :] * ixc[None, :, :, None]).sum(axis=2)  # H x width x C
        v = (horiz[yi, :, :] * iyc[:, :, None, None]).sum(axis=1)  # height x width x C
        out = np.clip((v + (1 << 21)) >> 22, 0, 255).astype(np.uint8)
    else:
        s = a.astype(np.float32)
        horiz = np.zeros((h, width, c), np.float32)
        for k in range(8):
            horiz = horiz + s[:, xi[:, k], :] * xc[None, :, k, None]
        v = np.zeros((height, width, c), np.float32)
        for k in range(8):
            v = v + horiz[yi[:, k], :, :] * yc[:, k, None, None]
        if a.dtype == np.uint16:
            out = np.clip(np.rint(v), 0, 65535).astype(np.uint16)
        else:
            out = v
    return out[:, :, 0] if squeeze else out


def resize_linear_float(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """cv2.resize(float32 img, (width, height), interpolation=cv2.INTER_LINEAR) (float arithmetic)."""
    squeeze = img.ndim == 2
    a = (img[:, :, None] if squeeze else img).astype(np.float32)
    h, w, _ = a.shape

    def axis(src, dst):
        sc = src / dst
        f = (np.arange(dst) + 0.5) * sc - 0.5
        f = f.astype(np.float32)
        i0 = np.floor(f).astype(np.int64)
        t = (f - i0).astype(np.float32)
        t = np.where(i0 < 0, 0, t)
        i0c = np.clip(i0, 0, src - 1)
        i1c = np.clip(i0 + 1, 0, src - 1)
        t = np.where(i0 >= src - 1, 0, t)
        return i0c, i1c, t.astype(np.float32)

    x0, x1, tx = axis(w, width)
    y0, y1, ty = axis(h, height)
    hz = a[:, x0, :] * (1 - tx)[None, :, None] + a[:, x1, :] * tx[None, :, None]
    out = hz[y0] * (1 - ty)[:, None, None] + hz[y1] * ty[:, None, None]
    return out[:, :, 0] if squeeze else out
