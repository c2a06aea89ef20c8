"""PyTorch eager CPU timing of the reference architectures (the peer in our benchmarks).

Usage examples (2 threads by default):
  python bench_torch.py --arch rrdbnet_x2plus --size 512 --runs 3
  python bench_torch.py --arch rrdbnet_x4plus --weights RealESRGAN_x4plus.pth --size 256
  python bench_torch.py --arch gpen512 --size 512        # FullGenerator(512, 512, 8, 2, narrow=1)
  python bench_torch.py --arch retinaface_r50 --size 512
  python bench_torch.py --arch rrdbnet_x2plus --image photo.png --out out.png --tile 0   # whole process
Archs: rrdbnet_x4plus, rrdbnet_x2plus, rrdbnet_x4plus_anime_6b, srvgg_general_x4v3, srvgg_animevideov3,
gpen256, gpen512, gpen1024, retinaface_r50, retinaface_mnet, parsenet512.
Prints one JSON line per measurement: arch, input shape, threads, warm-up and run times (s), median,
peak RSS (MiB, ru_maxrss of this process), RSS after model build.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rrdbnet import RRDBNet  # noqa: E402
from srvgg import SRVGGNetCompact  # noqa: E402
from gpen import FullGenerator  # noqa: E402
from retinaface import CFG_MNET, CFG_RE50, RetinaFace, strip_module  # noqa: E402
from parsenet import ParseNet  # noqa: E402

ARCHS = {
    "rrdbnet_x4plus": lambda: RRDBNet(3, 3, scale=4, num_feat=64, num_block=23, num_grow_ch=32),
    "rrdbnet_x2plus": lambda: RRDBNet(3, 3, scale=2, num_feat=64, num_block=23, num_grow_ch=32),
    "rrdbnet_x4plus_anime_6b": lambda: RRDBNet(3, 3, scale=4, num_feat=64, num_block=6, num_grow_ch=32),
    "srvgg_general_x4v3": lambda: SRVGGNetCompact(3, 3, 64, 32, 4, "prelu"),
    "srvgg_animevideov3": lambda: SRVGGNetCompact(3, 3, 64, 16, 4, "prelu"),
    "gpen256": lambda: FullGenerator(256, 512, 8, 1, narrow=0.5),
    "gpen512": lambda: FullGenerator(512, 512, 8, 2, narrow=1.0),
    "gpen1024": lambda: FullGenerator(1024, 512, 8, 2, narrow=1.0),
    "retinaface_r50": lambda: RetinaFace(CFG_RE50),
    "retinaface_mnet": lambda: RetinaFace(CFG_MNET),
    "parsenet512": lambda: ParseNet(512, 512, 32, 64, 19, 10, "LeakyReLU", "bn", (32, 256)),
}
SCALE = {"rrdbnet_x4plus": 4, "rrdbnet_x2plus": 2, "rrdbnet_x4plus_anime_6b": 4, "srvgg_general_x4v3": 4,
         "srvgg_animevideov3": 4}


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_weights(net, arch, path):
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if arch.startswith(("rrdbnet", "srvgg")):
        ck = ck.get("params_ema", ck.get("params", ck))
    if arch.startswith("retinaface"):
        ck = strip_module(ck.get("state_dict", ck))
    net.load_state_dict(ck, strict=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True, choices=sorted(ARCHS))
    ap.add_argument("--size", type=int, default=512, help="input H = W (network input)")
    ap.add_argument("--weights", default=None, help=".pth (random weights when absent)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--image", default=None, help="whole-process mode (SR archs): read, enhance, write")
    ap.add_argument("--out", default=None)
    ap.add_argument("--tile", type=int, default=0)
    ap.add_argument("--tile-pad", type=int, default=10)
    a = ap.parse_args()
    t_start = time.perf_counter()
    torch.set_num_threads(a.threads)
    net = ARCHS[a.arch]().eval()
    if a.weights:
        load_weights(net, a.arch, a.weights)
    build_rss = rss_mib()
    rec = {"arch": a.arch, "threads": a.threads, "torch": torch.__version__, "weights": a.weights or "random",
           "rss_after_build_mib": round(build_rss, 1)}
    if a.image:
        import cv2
        from realesrganer import RealESRGANer
        img = cv2.imread(a.image, cv2.IMREAD_UNCHANGED)
        t0 = time.perf_counter()
        up = RealESRGANer(SCALE[a.arch], net, tile=a.tile, tile_pad=a.tile_pad, pre_pad=0)
        out = up.enhance(img, outscale=SCALE[a.arch])
        t1 = time.perf_counter()
        if a.out:
            cv2.imwrite(a.out, out)
        rec.update({"mode": "whole_process", "image": a.image, "in_shape": list(img.shape),
                    "out_shape": list(out.shape), "tile": a.tile, "enhance_s": round(t1 - t0, 3),
                    "process_s": round(time.perf_counter() - t_start, 3), "peak_rss_mib": round(peak_mib(), 1)})
        print(json.dumps(rec), flush=True)
        return
    x = torch.rand(1, 3, a.size, a.size, generator=torch.Generator().manual_seed(0))
    if a.arch.startswith("retinaface"):
        x = x * 255 - 120
    elif a.arch.startswith(("gpen", "parsenet")):
        x = x * 2 - 1
    times = []
    with torch.no_grad():
        for i in range(a.warmup + a.runs):
            t0 = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - t0)
    rec.update({"mode": "forward", "input": list(x.shape), "warmup_s": [round(t, 3) for t in times[:a.warmup]],
                "runs_s": [round(t, 3) for t in times[a.warmup:]],
                "median_s": round(statistics.median(times[a.warmup:]), 3), "peak_rss_mib": round(peak_mib(), 1),
                "params": sum(p.numel() for p in net.parameters())})
    print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
