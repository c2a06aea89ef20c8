"""Deterministic generation of the project's own small model fixtures (Tests/Fixtures/models/, faces/).

Usage: python make_fixtures.py [--out ROOT] [--only family,...]
Every weight is drawn from a seeded torch.Generator; outputs are computed by OUR reference models
(validated against ../shared/golden by check_golden.py). Files per case: weights.pth (laid out like the
released checkpoints), input.npy (float32 NCHW), output*.npy, config.json. Re-running rewrites identical data.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ASSETS, GOLDEN, ROOT, setup_torch  # noqa: E402
from rrdbnet import RRDBNet  # noqa: E402
from srvgg import SRVGGNetCompact  # noqa: E402
from realesrganer import RealESRGANer  # noqa: E402

OUT = os.path.join(ROOT, "Tests", "Fixtures")


def photo_bgr() -> np.ndarray:
    """astronaut.png (public domain, skimage.data.astronaut) as uint8 HWC BGR 512x512."""
    p = os.path.join(ASSETS, "astronaut.png")
    try:
        import cv2
        img = cv2.imread(p, cv2.IMREAD_COLOR)
        if img is not None:
            return img
    except ImportError:
        pass
    alt = os.path.join(GOLDEN, "align_paste", "image_bgr.npy")
    if os.path.exists(alt):
        return np.load(alt)
    raise FileNotFoundError(f"need {p} (and cv2) or {alt}")


def crop_rgb01(y, x, h, w) -> np.ndarray:
    """A crop of the photo as float32 NCHW RGB in [0,1]."""
    c = photo_bgr()[y:y + h, x:x + w, ::-1].astype(np.float32) / 255.0
    return np.ascontiguousarray(c.transpose(2, 0, 1)[None])


def describe(a: np.ndarray) -> dict:
    return {"dtype": str(a.dtype), "shape": list(a.shape), "min": float(a.min()), "max": float(a.max()),
            "mean": float(a.astype(np.float64).mean())}


def save_case(folder, files: dict, config: dict, weights=None):
    os.makedirs(folder, exist_ok=True)
    for name, arr in files.items():
        np.save(os.path.join(folder, name), np.ascontiguousarray(arr))
    if weights is not None:
        torch.save(weights, os.path.join(folder, "weights.pth"))
    config = dict(config)
    config["files"] = {n: describe(a) for n, a in files.items()}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    size = sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))
    print(f"{os.path.relpath(folder, ROOT):50s} {size/1024:8.1f} KB", flush=True)


# ---------------------------------------------------------------- Real-ESRGAN

def init_sr(net: nn.Module, seed: int, last_bias=0.45, last_scale=1.0, last_name=None):
    """conv weight ~ N(0, 1/fan_in), bias ~ N(0, 0.05^2); PReLU ~ N(0.25, 0.1^2); last conv bias ~ N(last_bias, .05^2)."""
    g = torch.Generator().manual_seed(seed)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3]
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / fan_in ** 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.05)
            elif isinstance(m, nn.PReLU):
                m.weight.copy_(0.25 + 0.1 * torch.randn(m.weight.shape, generator=g))
        last = convs[-1]
        last.weight.mul_(last_scale)
        last.bias.add_(last_bias)


def forward_case(name, net, cfg_dict, arch, seed, inputs, extra=None, last_bias=0.45, last_scale=1.0):
    init_sr(net, seed, last_bias, last_scale)
    net.eval()
    files = {}
    for i, x in enumerate(inputs):
        with torch.no_grad():
            y = net(torch.from_numpy(x)).numpy()
        files[f"input_{i}.npy"] = x
        files[f"output_{i}.npy"] = y
    cfg = {"case": name, "arch": arch, "config": cfg_dict, "seed": seed,
           "weight_init": f"conv weight ~ N(0, 1/fan_in), bias ~ N(0, 0.05^2), PReLU ~ N(0.25, 0.1^2); "
                          f"last conv weight x{last_scale}, bias += {last_bias}",
           "weights_layout": "torch.save({'params_ema': state_dict}) (zip), like RealESRGAN_x4plus.pth",
           "call": f"{arch}(**config).eval(); load_state_dict(torch.load(pth)['params_ema'], strict=True); "
                   "output_i = model(input_i)",
           "inputs": "crops of astronaut.png (public domain), float32 NCHW RGB in [0,1]",
           "outputs": "raw network output, float32 NCHW RGB, no clamp"}
    if extra:
        cfg.update(extra)
    save_case(os.path.join(OUT, "models", name), files, cfg, {"params_ema": net.state_dict()})
    return net


def make_realesrgan():
    c = dict(num_in_ch=3, num_out_ch=3, scale=4, num_feat=12, num_block=1, num_grow_ch=6)
    forward_case("rrdbnet_x4", RRDBNet(**c), c, "RRDBNet", 2010,
                 [crop_rgb01(200, 180, 13, 11), crop_rgb01(60, 300, 16, 20)])
    c = dict(num_in_ch=3, num_out_ch=3, scale=2, num_feat=8, num_block=2, num_grow_ch=4)
    # conv_last x4 and bias 0.3 so the end-to-end cases exercise the clamp at 0 and 1
    x2 = forward_case("rrdbnet_x2", RRDBNet(**c), c, "RRDBNet", 2020,
                      [crop_rgb01(210, 190, 16, 14), crop_rgb01(300, 100, 10, 24)], last_bias=0.3, last_scale=4.0)
    c = dict(num_in_ch=3, num_out_ch=3, scale=1, num_feat=8, num_block=1, num_grow_ch=4)
    forward_case("rrdbnet_x1", RRDBNet(**c), c, "RRDBNet", 2030, [crop_rgb01(220, 200, 16, 12)])
    for name, act, up, seed in [("srvgg_prelu_x4", "prelu", 4, 2040), ("srvgg_relu_x2", "relu", 2, 2050),
                                ("srvgg_leakyrelu_x4", "leakyrelu", 4, 2060), ("srvgg_prelu_x2", "prelu", 2, 2070)]:
        c = dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=3, upscale=up, act_type=act)
        forward_case(name, SRVGGNetCompact(**c), c, "SRVGGNetCompact", seed, [crop_rgb01(190, 230, 12, 10)],
                     last_bias=0.0, last_scale=0.5)
    make_realesrganer(x2)


def make_realesrganer(net_x2):
    """End-to-end RealESRGANer.enhance cases with the rrdbnet_x2 fixture model (weights in ../rrdbnet_x2)."""
    bgr = photo_bgr()
    img = np.ascontiguousarray(bgr[180:207, 170:191])  # 27 x 21 x 3, odd sizes exercise the mod-pad
    g = np.random.default_rng(2080)
    yy, xx = np.mgrid[0:27, 0:21]
    alpha = np.clip(255 * (0.5 + 0.5 * np.sin(xx / 3.0) * np.cos(yy / 4.0)), 0, 255).astype(np.uint8)
    alpha[:4, :4] = 0
    alpha[-3:, -3:] = 255
    bgra = np.concatenate([img, alpha[:, :, None]], axis=2)
    gray = np.ascontiguousarray((img.astype(np.float32) @ np.array([0.114, 0.587, 0.299], np.float32))
                                .round().astype(np.uint8))
    u16 = (img.astype(np.uint16) * 257 + g.integers(0, 257, img.shape).astype(np.uint16)).astype(np.uint16)
    inputs = {"in_bgr.npy": img, "in_bgra.npy": bgra, "in_gray.npy": gray, "in_u16.npy": u16}
    specs = [
        ("in_bgr.npy", 2, 6, 0, "realesrgan"), ("in_bgr.npy", 2, 6, 8, "realesrgan"),
        ("in_bgr.npy", 2, 0, 0, "realesrgan"), ("in_bgr.npy", 2, 0, 8, "realesrgan"),
        ("in_bgr.npy", 3.5, 6, 0, "realesrgan"), ("in_bgr.npy", 3.5, 0, 8, "realesrgan"),
        ("in_bgra.npy", 2, 6, 0, "realesrgan"), ("in_bgra.npy", 2, 0, 8, "bicubic"),
        ("in_bgra.npy", 3.5, 0, 8, "realesrgan"),
        ("in_gray.npy", 2, 6, 0, "realesrgan"), ("in_gray.npy", 3.5, 0, 8, "realesrgan"),
        ("in_u16.npy", 2, 6, 0, "realesrgan"), ("in_u16.npy", 3.5, 0, 8, "realesrgan"),
    ]
    files = dict(inputs)
    cases = []
    for inp, os_, pp, tile, alpha_up in specs:
        up = RealESRGANer(2, net_x2, tile=tile, tile_pad=4, pre_pad=pp)
        out = up.enhance(inputs[inp], outscale=os_, alpha_upsampler=alpha_up)
        tag = inp[3:-4]
        name = f"out_{tag}_os{str(os_).replace('.', 'p')}_pp{pp}_t{tile}" + ("_bilinear" if alpha_up != "realesrgan" else "") + ".npy"
        files[name] = out
        cases.append({"input": inp, "output": name, "outscale": os_, "pre_pad": pp, "tile": tile, "tile_pad": 4,
                      "alpha_upsampler": alpha_up, "out_shape": list(out.shape), "out_dtype": str(out.dtype)})
    cfg = {"case": "realesrganer_x2", "model": {"arch": "RRDBNet", "weights": "../rrdbnet_x2/weights.pth",
                                                "config": dict(num_in_ch=3, num_out_ch=3, scale=2, num_feat=8,
                                                               num_block=2, num_grow_ch=4)},
           "scale": 2, "cases": cases,
           "semantics": "RealESRGANer(scale=2, model, tile, tile_pad=4, pre_pad).enhance(img, outscale, "
                        "alpha_upsampler): upstream semantics; 'bicubic' alpha = cv2 INTER_LINEAR resize of the float "
                        "alpha (what upstream's code does); outscale != 2 -> cv2 INTER_LANCZOS4 on the integer image",
           "inputs": "27x21 crop of astronaut.png (BGR); alpha synthetic; gray = round(0.114B+0.587G+0.299R); "
                     "u16 = 257*v + seeded noise (max > 256 -> 16-bit path)"}
    save_case(os.path.join(OUT, "models", "realesrganer_x2"), files, cfg)


FAMILIES = {"realesrgan": make_realesrgan}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    setup_torch(2)
    try:
        import make_fixtures_faces
        FAMILIES.update(make_fixtures_faces.FAMILIES)
    except ImportError as e:
        print("face fixtures unavailable:", e)
    try:
        import make_fixtures_align
        FAMILIES.update(make_fixtures_align.FAMILIES)
    except ImportError as e:
        print("alignment fixtures unavailable (needs cv2):", e)
    only = set(filter(None, a.only.split(",")))
    for name, fn in FAMILIES.items():
        if not only or name in only:
            fn()


if __name__ == "__main__":
    main()
