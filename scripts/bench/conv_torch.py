#!/usr/bin/env python3
"""PyTorch peer benchmark for `enhance bench ops`: times F.conv2d (3x3, stride 1, pad 1, bias) on the given shapes.

Usage: conv_torch.py --threads 2 --warmup 2 --repeat 5 --shapes "64x32x256x256,192x64x256x256"
Each shape is CinxCoutxHxW (batch 1). Prints one JSON object per line:
{"shape": "...", "layout": "nchw"|"channels_last", "median_ms": ..., "gflops": ...}
The first line is {"torch": version, "threads": n}.
"""
import argparse
import json
import statistics
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--shapes", required=True)
    ap.add_argument("--kernel", type=int, default=3)
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    k = args.kernel
    with torch.inference_mode():
        for spec in args.shapes.split(","):
            cin, cout, h, w = (int(v) for v in spec.split("x"))
            flop = 2.0 * cout * cin * k * k * h * w
            weight = torch.randn(cout, cin, k, k) * 0.05
            bias = torch.randn(cout)
            for layout in ("nchw", "channels_last"):
                x = torch.randn(1, cin, h, w)
                wt = weight
                if layout == "channels_last":
                    x = x.contiguous(memory_format=torch.channels_last)
                    wt = weight.contiguous(memory_format=torch.channels_last)
                for _ in range(args.warmup):
                    F.conv2d(x, wt, bias, padding=k // 2)
                times = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    F.conv2d(x, wt, bias, padding=k // 2)
                    times.append(time.perf_counter() - t0)
                med = statistics.median(times)
                print(json.dumps({"shape": spec, "layout": layout, "median_ms": med * 1e3,
                                  "gflops": flop / med / 1e9}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
