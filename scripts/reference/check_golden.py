"""Run OUR reference implementations on every /work/shared/golden case and print errors vs stored outputs.

Usage: python check_golden.py [--golden DIR] [--cv2]   (2 threads, CPU)
Prints one line per stored output: case, file, max_abs, relative L2 error, differing values.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import GOLDEN, errors, setup_torch  # noqa: E402
from rrdbnet import RRDBNet  # noqa: E402
from srvgg import SRVGGNetCompact  # noqa: E402
from realesrganer import RealESRGANer, load_realesrgan_state  # noqa: E402

ROWS = []


def report(case, name, out, ref):
    e = errors(np.asarray(out), ref)
    ROWS.append((case, name, e))
    print(f"{case:20s} {name:32s} max_abs={e['max_abs']:.3e} rel={e['rel']:.3e} ndiff={e['ndiff']}/{e.get('n', 0)}",
          flush=True)


def load(d, f):
    return np.load(os.path.join(d, f))


def raw_cases(g, case, build):
    d = os.path.join(g, case)
    cfg = json.load(open(os.path.join(d, "config.json")))
    net = build(cfg["config"]).eval()
    net.load_state_dict(load_realesrgan_state(os.path.join(d, "weights.pth")), strict=True)
    i = 0
    while os.path.exists(os.path.join(d, f"input_{i}.npy")):
        with torch.no_grad():
            y = net(torch.from_numpy(load(d, f"input_{i}.npy"))).numpy()
        report(case, f"output_{i}.npy", y, load(d, f"output_{i}.npy"))
        i += 1


def realesrganer_cases(g, use_cv2):
    d = os.path.join(g, "realesrganer_x2")
    cfg = json.load(open(os.path.join(d, "config.json")))
    net = RRDBNet(**cfg["model"]["config"]).eval()
    net.load_state_dict(load_realesrgan_state(os.path.join(g, "rrdbnet_x2", "weights.pth")), strict=True)
    for c in cfg["cases"]:
        up = RealESRGANer(cfg["common"]["scale"], net, tile=c["tile"], tile_pad=c["tile_pad"], pre_pad=c["pre_pad"],
                          use_cv2=use_cv2)
        out = up.enhance(load(d, c["input"]), outscale=c["outscale"],
                         alpha_upsampler=cfg["common"].get("alpha_upsampler", "realesrgan"))
        ref = load(d, c["output"])
        if out.dtype != ref.dtype:
            print(f"  dtype mismatch {out.dtype} vs {ref.dtype}")
        report("realesrganer_x2", c["output"], out, ref)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--golden", default=GOLDEN)
    ap.add_argument("--cv2", action="store_true", help="use cv2 for resizes instead of our NumPy kernels")
    ap.add_argument("--only", default="", help="comma-separated case names")
    a = ap.parse_args()
    setup_torch(2)
    g = a.golden
    only = set(filter(None, a.only.split(",")))
    want = lambda n: not only or n in only
    if want("rrdbnet_x4"):
        raw_cases(g, "rrdbnet_x4", lambda c: RRDBNet(**c))
    if want("rrdbnet_x2"):
        raw_cases(g, "rrdbnet_x2", lambda c: RRDBNet(**c))
    if want("srvgg_x4"):
        raw_cases(g, "srvgg_x4", lambda c: SRVGGNetCompact(**c))
    if want("realesrganer_x2"):
        realesrganer_cases(g, a.cv2)
    try:
        import check_golden_faces
        check_golden_faces.run(g, report, want)
    except ImportError as e:
        print("face cases skipped:", e)
    worst = max((r[2]["rel"] for r in ROWS if r[2]["rel"] == r[2]["rel"]), default=0)
    print(f"# {len(ROWS)} outputs checked; worst relative error {worst:.3e}")


if __name__ == "__main__":
    main()
