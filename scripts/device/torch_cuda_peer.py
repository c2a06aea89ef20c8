#!/usr/bin/env python3
"""PyTorch peer of `enhance forward --report`: the project's reference models (scripts/reference/gpen.py FullGenerator,
scripts/reference/rrdbnet.py RRDBNet) on the same weights file and the same input .npy, timed the same way.

  torch_cuda_peer.py --arch gpen|rrdbnet --weights W(.safetensors|.pth) --input X.npy --variant V
                     [--device cuda|cpu] [--compile [MODE]] [--warmup 3] [--runs 10] [--report R.json]
                     [--save-output DIR] [--threads N] [--profile]

Variants (PyTorch's knobs, cuDNN heuristics as `cudnn.benchmark=False`, the default):
  fp32      float32, cudnn.allow_tf32 = matmul.allow_tf32 = False (exact fp32 convolutions)
  tf32      float32, cudnn.allow_tf32 = True (PyTorch's default for convolutions), matmul.allow_tf32 as default (False)
  fp16      model.half(), NCHW; the fp32 input is uploaded, then cast on the device; the output cast back to fp32
  fp16-cl   fp16 with model and input in torch.channels_last
--compile wraps the model in torch.compile (mode "default" unless given); its compile time lands in the warm-ups and
is reported as compile_s (the first warm-up).
--profile: after the timed runs, one more forward under torch.profiler; the report's "profile" has enhance's
`forward --profile` schema (clock, wall_s, timed_s, by_kind, entries[kind, name, calls, seconds]) with one row per
CUDA kernel or copy (their device time; on the CPU: per aten op, self CPU time). Kinds are read off the names
(convolution: cuDNN/CUTLASS/implicit-GEMM/Winograd kernels, copy: Memcpy/Memset), so they are approximate.

One timed run = H2D copy of the fp32 input + (cast) + forward + (cast) + D2H copy + synchronize, like enhance's
`seconds` (whole forward incl. upload and download). Memory: the model is loaded and moved first, then
reset_peak_memory_stats, so memory.allocated_peak_bytes (max_memory_allocated) includes the parameters, as
enhance's allocated_peak_bytes includes its weights; reserved_peak_bytes = max_memory_reserved; weight_bytes = the
parameters' and buffers' bytes on the device.

The report has enhance's schema: {device, backend, precision, arch, input_shape, warmup, runs, seconds, median_s,
p95_s, memory{...}, diagnostics[...]} plus peer-only keys (variant, compile_s, load_s, torch, env).
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts", "reference"))
sys.path.insert(0, os.path.join(ROOT, "scripts", "bench", "peers"))

from devlib import quantile, write_json  # noqa: E402

VARIANTS = ("fp32", "tf32", "fp16", "fp16-cl")


def build_model(arch, sd):
    """The reference network for a state dict, its configuration read off the keys (as the bench's peers do)."""
    import torch
    if arch == "gpen":
        from gpen import FullGenerator, config_from_state_dict
        cfg = config_from_state_dict(sd)
        model = FullGenerator(cfg["size"], cfg["style_dim"], cfg["n_mlp"], cfg["channel_multiplier"], narrow=cfg["narrow"])
        sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
    elif arch == "rrdbnet":
        from rrdbnet import RRDBNet
        w = sd["conv_first.weight"]
        scale = {3: 4, 12: 2, 48: 1}[w.shape[1]]
        blocks = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("body."))
        cfg = dict(num_in_ch=3, num_out_ch=sd["conv_last.weight"].shape[0], scale=scale, num_feat=w.shape[0],
                   num_block=blocks, num_grow_ch=sd["body.0.rdb1.conv1.weight"].shape[0])
        model = RRDBNet(**cfg)
        sd = {k: v.float() for k, v in sd.items()}
    else:
        raise SystemExit(f"torch_cuda_peer: --arch {arch}: only gpen and rrdbnet")
    model.load_state_dict(sd, strict=True)
    return model.eval(), cfg


CONV_HINTS = ("conv", "xmma", "implicit", "fprop", "dgrad", "winograd", "cudnn", "cutlass", "gemm", "sm90_", "sm80_")


def kind_of(name, cuda):
    n = name.lower()
    if "memcpy" in n or "memset" in n:
        return "copy"
    if any(h in n for h in CONV_HINTS) if cuda else ("conv" in n or "linear" in n or "addmm" in n):
        return "convolution"
    return "op"


def profile_forward(forward, cuda):
    """One forward under torch.profiler, in enhance's `forward --profile` schema."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch.inference_mode(), profile(activities=activities) as prof:
        t = time.perf_counter()
        forward()
        wall = time.perf_counter() - t
    rows = {}
    for e in prof.events():
        if cuda:
            if getattr(e, "device_type", None) != torch.autograd.DeviceType.CUDA:
                continue
            us = e.time_range.elapsed_us()   # a kernel's or copy's own interval on the device
        else:
            if not e.name.startswith("aten::"):
                continue
            us = e.self_cpu_time_total
        r = rows.setdefault(e.name, {"kind": kind_of(e.name, cuda), "name": e.name, "calls": 0, "seconds": 0.0})
        r["calls"] += 1
        r["seconds"] += us / 1e6
    entries = sorted(rows.values(), key=lambda r: -r["seconds"])
    by_kind = {k: sum(r["seconds"] for r in entries if r["kind"] == k) for k in ("convolution", "op", "copy")}
    clock = ("torch.profiler (CUPTI): each CUDA kernel's and copy's device time" if cuda
             else "torch.profiler: self CPU time of each aten op")
    return {"clock": clock, "wall_s": wall, "timed_s": sum(by_kind.values()), "by_kind": by_kind, "entries": entries}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", required=True, choices=["gpen", "rrdbnet"])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--variant", default="tf32", choices=VARIANTS)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--compile", nargs="?", const="default", default=None, metavar="MODE")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--report")
    ap.add_argument("--save-output", metavar="DIR")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()

    t_start = time.perf_counter()
    import numpy as np
    import torch
    from torch_peer import load_state  # safetensors without the safetensors package; .pth params_ema/params

    diagnostics = []
    if a.threads:
        torch.set_num_threads(a.threads)
    cuda = a.device == "cuda"
    if cuda and not torch.cuda.is_available():
        print("torch_cuda_peer: torch.cuda.is_available() is False", file=sys.stderr)
        return 69
    dev = torch.device(a.device)
    half = a.variant.startswith("fp16")
    channels_last = a.variant == "fp16-cl"
    tf32 = a.variant == "tf32"
    torch.backends.cudnn.allow_tf32 = tf32
    if a.variant == "fp32":
        torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    precision = "fp16" if half else a.variant

    sd = load_state(a.weights)
    model, cfg = build_model(a.arch, sd)
    del sd
    dtype = torch.float16 if half else torch.float32
    model = model.to(device=dev, dtype=dtype)
    if channels_last:
        # Module.to(memory_format=) refuses models with non-4-D parameters (GPEN's linear layers): convert the 4-D ones.
        with torch.no_grad():
            for t in list(model.parameters()) + list(model.buffers()):
                if t.dim() == 4:
                    t.data = t.data.contiguous(memory_format=torch.channels_last)
    weight_bytes = sum(t.numel() * t.element_size() for t in model.parameters()) + \
        sum(t.numel() * t.element_size() for t in model.buffers())
    run_model = model
    if a.compile:
        run_model = torch.compile(model, mode=None if a.compile == "default" else a.compile)
    x_host = torch.from_numpy(np.load(a.input).astype(np.float32, copy=False))
    if x_host.dim() != 4:
        raise SystemExit(f"torch_cuda_peer: {a.input}: expected N×C×H×W, got {list(x_host.shape)}")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    load_s = time.perf_counter() - t_start

    def forward():
        x = x_host.to(dev)
        if half:
            x = x.half()
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = run_model(x)
        if isinstance(y, (tuple, list)):
            y = y[0]
        y = y.float().cpu()  # D2H copy; synchronises the stream
        if cuda:
            torch.cuda.synchronize()
        return y

    times, warm = [], []
    y = None
    with torch.inference_mode():
        for i in range(a.warmup + a.runs):
            t = time.perf_counter()
            y = forward()
            (warm if i < a.warmup else times).append(time.perf_counter() - t)
    if not times:
        times = warm[-1:]
        diagnostics.append("no timed runs (--runs 0): seconds holds the last warm-up")

    mem = {"weight_bytes": weight_bytes}
    if cuda:
        mem["allocated_peak_bytes"] = int(torch.cuda.max_memory_allocated())
        mem["reserved_peak_bytes"] = int(torch.cuda.max_memory_reserved())
        free, total = torch.cuda.mem_get_info()
        mem["device_free_after_bytes"], mem["device_total_bytes"] = int(free), int(total)
    else:
        diagnostics.append("cpu: no CUDA allocator figures")
    if a.save_output:
        os.makedirs(a.save_output, exist_ok=True)
        np.save(os.path.join(a.save_output, "output.npy"), y.numpy().astype(np.float32))

    env = {k: os.environ.get(k) for k in ("PYTORCH_CUDA_ALLOC_CONF", "CUDA_MODULE_LOADING", "CUDA_VISIBLE_DEVICES")}
    if cuda and env["CUDA_MODULE_LOADING"] is None:
        diagnostics.append("CUDA_MODULE_LOADING unset (PyTorch sets LAZY unless told otherwise)")
    rep = {
        "device": a.device,
        "backend": f"pytorch {torch.__version__} {'compile' if a.compile else 'eager'}",
        "precision": precision,
        "variant": a.variant + (f"+compile({a.compile})" if a.compile else ""),
        "arch": a.arch,
        "config": cfg,
        "input_shape": list(x_host.shape),
        "output_shape": list(y.shape),
        "warmup": a.warmup,
        "runs": len(times),
        "seconds": [round(t, 6) for t in times],
        "median_s": quantile(times, 0.5),
        "p95_s": quantile(times, 0.95),
        "warmup_seconds": [round(t, 6) for t in warm],
        "compile_s": round(warm[0], 3) if a.compile and warm else None,
        "load_s": round(load_s, 3),
        "memory": mem,
        "diagnostics": diagnostics,
        "torch": {
            "version": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "channels_last": channels_last,
            "device_name": torch.cuda.get_device_name(0) if cuda else None,
            "threads": torch.get_num_threads(),
        },
        "env": env,
    }
    if a.report:
        write_json(a.report, rep)
    if a.profile:
        # after the report is written: a profiler that fails, or takes the process down, leaves the timed runs
        try:
            rep["profile"] = profile_forward(forward, cuda)
        except Exception as e:  # noqa: BLE001
            rep["profile"] = {"error": f"{type(e).__name__}: {e}"}
            diagnostics.append(f"--profile failed: {rep['profile']['error']}")
        if a.report:
            write_json(a.report, rep)
    print(json.dumps({k: rep[k] for k in ("backend", "variant", "arch", "input_shape", "median_s", "p95_s", "memory")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
