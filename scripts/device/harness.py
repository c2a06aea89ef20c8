#!/usr/bin/env python3
"""Step 2 of the device check: speed and VRAM of enhance's CUDA backend against PyTorch (docs/device-check.md).

  harness.py --enhance BIN --out timing.jsonl --work DIR --workload NAME=ARCH:WEIGHTS:INPUT [...]
             [--device cuda] [--python PY] [--warmup 3] [--runs 10] [--sampler auto|nvml|smi|rss|none]
             [--compile] [--deadline EPOCH_S] [--threads N] [--rehearsal]

Sequential child processes, one at a time, each under a memory sampler (devlib.Sampler: NVML device `used` every
10 ms minus an idle baseline taken right before the child; nvidia-smi -lms 10 when NVML cannot be imported; the
largest VmHWM of the child's process group in CPU rehearsals). In this order, so that a deadline cut keeps pairs
together: for fp32, tf32, fp16 in turn, for each workload, enhance at that precision then torch (fp32 = TF32 off,
tf32 = PyTorch's default cudnn.allow_tf32, fp16 = model.half()); then per workload torch fp16 channels_last and
enhance fp16 --layout nhwc (the same layout); then enhance fp16 with --cuda-graph (capture once, replay), then torch.compile (default mode) at tf32, then at fp16, each
only while the deadline leaves room for it.
enhance rows run `enhance forward --device D --precision P --warmup K --runs N --report R.json`; a build without
--report is timed from outside instead (one process per run, whole-process wall time; the row says so).
torch rows run scripts/device/torch_cuda_peer.py with the same weights file and input .npy.
Where the time goes: eager enhance rows add `--profile` (one more forward after the timed ones, each kernel, cuDNN
call and copy between CUDA events), PyTorch eager fp32 / fp16 / fp16-cl rows one more forward under torch.profiler;
each row's "profile" (same schema) lands in timing.jsonl and summarise.py tabulates them.

timing.jsonl: one "meta" line, one "row" line per row (run, failed or skipped, with the reason), then "compare" lines:
each row's output against the workload's PyTorch fp32 output (or enhance fp32 when torch has none).
The harness itself never imports torch (no CUDA context of its own: NVML sees only the child).
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from devlib import (Child, Sampler, append_jsonl, compare, host_memory_total, install_signal_handlers, log,  # noqa: E402
                    quantile, read_json)
from parity import forward_capabilities  # noqa: E402

EAGER_MIN_S = 15      # a row is started only with at least this much time left before the deadline
COMPILE_MIN_S = 75
# PyTorch rows that end with one forward under torch.profiler (CUPTI's start costs seconds: not every row)
PROFILED_VARIANTS = ("fp32", "fp16", "fp16-cl")
EAGER_TIMEOUT_S = 120
COMPILE_TIMEOUT_S = 240


def timed_report(path):
    """Whether a report with timed runs exists at `path` (written before a `--profile` forward)."""
    rep = read_json(path, None) if os.path.exists(path) else None
    return bool(rep and rep.get("median_s") is not None and rep.get("seconds"))


class Harness:
    def __init__(self, a):
        self.a = a
        self.rows = []
        self.caps = forward_capabilities(a.enhance) if a.enhance else {"precisions": [], "report": False}
        self.sampler = Sampler(a.sampler)

    def left(self):
        return self.a.deadline - time.time() if self.a.deadline else float("inf")

    def emit(self, rec):
        self.rows.append(rec)
        append_jsonl(self.a.out, rec)

    def row_dir(self, rid):
        d = os.path.join(self.a.work, "timing", rid.replace("/", "_"))
        os.makedirs(d, exist_ok=True)
        return d

    def skip(self, base, reason):
        base.update(status="skipped", reason=reason)
        self.emit(base)
        log(f"row {base['id']}: skipped ({reason})")

    def enhance_row(self, wl, precision, graph=False, layout=None):
        a = self.a
        variant = precision + (f"-{layout}" if layout else "") + ("-graph" if graph else "")
        rid = f"{wl['name']}/enhance/{variant}"
        base = {"type": "row", "id": rid, "workload": wl["name"], "arch": wl["arch"], "engine": "enhance",
                "variant": variant, "precision": precision, "device": a.device}
        if not a.enhance_ok:
            return self.skip(base, a.enhance_reason or "enhance cannot run on this device")
        if precision not in self.caps["precisions"]:
            return self.skip(base, f"this build's `enhance forward` has no --precision {precision}")
        if graph and not self.caps.get("cuda_graph"):
            return self.skip(base, "this build's `enhance forward` has no --cuda-graph")
        if graph and a.device != "cuda":
            return self.skip(base, f"--cuda-graph needs --device cuda (this run: {a.device})")
        if layout and not self.caps.get("layout"):
            return self.skip(base, "this build's `enhance forward` has no --layout")
        if layout and a.device != "cuda":
            return self.skip(base, f"--layout {layout} needs --device cuda (this run: {a.device})")
        if self.left() < EAGER_MIN_S:
            return self.skip(base, "deadline")
        d = self.row_dir(rid)
        report = os.path.join(d, "report.json")
        cmd = [a.enhance, "forward", "--weights", wl["weights"], "--arch", wl["arch"], "--input", wl["input"],
               "--output", d, "--device", a.device, "--precision", precision] + (["--cuda-graph"] if graph else []) \
            + (["--layout", layout] if layout else [])
        if a.threads:
            cmd += ["--threads", str(a.threads)]
        timeout = min(EAGER_TIMEOUT_S, self.left())
        if self.caps.get("report") and self.caps.get("warmup") and self.caps.get("runs"):
            cmd += ["--warmup", str(a.warmup), "--runs", str(a.runs), "--report", report]
            if self.caps.get("profile") and not graph:   # one more forward, op by op (a graph's is the eager one's)
                cmd += ["--profile"]
            child = Child(cmd, timeout)
            vram = self.sampler.measure(child)
            rec = dict(base, child=child.summary(), vram=vram, timing_source="report")
            if child.rc != 0 and "--profile" in cmd and timed_report(report):
                rec["diagnostics"] = [f"exit {child.rc} after the timed runs' report (during --profile): profile lost"]
            elif child.rc != 0 or not os.path.exists(report):
                rec.update(status="timeout" if child.timed_out else "error",
                           reason="timed out" if child.timed_out else f"exit {child.rc}" + ("" if child.rc else ": no report"))
                return self.finish(rec)
            rep = read_json(report, {})
            rec.update(status="ok", report=rep, seconds=rep.get("seconds"), median_s=rep.get("median_s"),
                       p95_s=rep.get("p95_s"), memory=rep.get("memory", {}), backend=rep.get("backend"),
                       warmup=rep.get("warmup"), runs=len(rep.get("seconds") or []),
                       profile=rep.pop("profile", None))   # kept once, beside the report
            if rec["median_s"] is None and rec["seconds"]:
                rec["median_s"], rec["p95_s"] = quantile(rec["seconds"], 0.5), quantile(rec["seconds"], 0.95)
            return self.finish(rec)
        # Fallback for a build without --warmup/--runs/--report: one process per run, timed from outside.
        n = max(1, min(a.runs, a.fallback_runs))
        secs, vrams, last = [], [], None
        for _ in range(n):
            if self.left() < 5:
                break
            child = Child(cmd, min(EAGER_TIMEOUT_S, self.left()))
            vrams.append(self.sampler.measure(child))
            last = child
            if child.rc != 0:
                break
            secs.append(child.wall_s)
        rec = dict(base, child=last.summary() if last else None, timing_source="process-wall",
                   diagnostics=["this build's `enhance forward` has no --warmup/--runs/--report: seconds are whole-process "
                                "wall times of one forward each (start-up, weight loading and preparation included), no warm-up"])
        peak = max((v.get("process_peak_bytes") or 0 for v in vrams), default=None)
        rec["vram"] = dict(vrams[-1], process_peak_bytes=peak) if vrams else {}
        if not secs:
            rec.update(status="timeout" if last and last.timed_out else "error",
                       reason=f"exit {last.rc if last else '?'}")
            return self.finish(rec)
        rec.update(status="ok", seconds=[round(s, 6) for s in secs], runs=len(secs), warmup=0,
                   median_s=quantile(secs, 0.5), p95_s=quantile(secs, 0.95), memory={})
        return self.finish(rec)

    def torch_row(self, wl, variant, compile_mode=None):
        a = self.a
        precision = "fp16" if variant.startswith("fp16") else variant
        engine = "pytorch-compile" if compile_mode else "pytorch-eager"
        rid = f"{wl['name']}/{engine}/{variant}"
        base = {"type": "row", "id": rid, "workload": wl["name"], "arch": wl["arch"], "engine": engine,
                "variant": variant, "precision": precision, "device": a.torch_device}
        if not a.python:
            return self.skip(base, "no Python with torch")
        need = COMPILE_MIN_S if compile_mode else EAGER_MIN_S
        if self.left() < need:
            return self.skip(base, f"deadline ({self.left():.0f} s left, a {engine} row needs {need} s)")
        d = self.row_dir(rid)
        report = os.path.join(d, "report.json")
        cmd = [a.python, os.path.join(HERE, "torch_cuda_peer.py"), "--arch", wl["arch"], "--weights", wl["weights"],
               "--input", wl["input"], "--variant", variant, "--device", a.torch_device, "--warmup", str(a.warmup),
               "--runs", str(a.runs), "--report", report, "--save-output", d]
        if compile_mode:
            cmd += ["--compile", compile_mode]
        elif variant in PROFILED_VARIANTS:
            cmd += ["--profile"]
        if a.threads:
            cmd += ["--threads", str(a.threads)]
        child = Child(cmd, min(COMPILE_TIMEOUT_S if compile_mode else EAGER_TIMEOUT_S, self.left()))
        vram = self.sampler.measure(child)
        rec = dict(base, child=child.summary(), vram=vram, timing_source="report")
        if child.rc != 0 and "--profile" in cmd and timed_report(report):
            # the timed runs were written before the profiled forward: a profiler that took the process down
            # costs the profile, not the row
            rec["diagnostics"] = [f"exit {child.rc} after the timed runs' report (during --profile): profile lost"]
        elif child.rc != 0 or not os.path.exists(report):
            rec.update(status="timeout" if child.timed_out else "error",
                       reason="timed out" if child.timed_out else f"exit {child.rc}")
            return self.finish(rec)
        rep = read_json(report, {})
        rec.update(status="ok", report=rep, seconds=rep.get("seconds"), median_s=rep.get("median_s"),
                   p95_s=rep.get("p95_s"), memory=rep.get("memory", {}), backend=rep.get("backend"),
                   warmup=rep.get("warmup"), runs=rep.get("runs"), compile_s=rep.get("compile_s"),
                   profile=rep.pop("profile", None))
        return self.finish(rec)

    def finish(self, rec):
        rec["dir"] = self.row_dir(rec["id"])
        self.emit(rec)
        mib = lambda b: "n/a" if b is None else f"{b / 2**20:.0f} MiB"  # noqa: E731
        if rec["status"] == "ok":
            m = rec.get("memory") or {}
            log(f"row {rec['id']}: median {rec['median_s']:.4f} s p95 {rec['p95_s']:.4f} s; allocated "
                f"{mib(m.get('allocated_peak_bytes'))} reserved {mib(m.get('reserved_peak_bytes'))} process "
                f"{mib((rec.get('vram') or {}).get('process_peak_bytes'))} ({rec['child']['wall_s'] if rec.get('child') else '?'} s wall)")
        else:
            log(f"row {rec['id']}: {rec['status']} ({rec.get('reason')}); stderr: {(rec.get('child') or {}).get('stderr_tail', '')[-300:]!r}")

    def compare_outputs(self):
        import numpy as np
        for wl in self.a.workloads:
            ok = [r for r in self.rows if r["workload"] == wl["name"] and r["status"] == "ok"
                  and os.path.exists(os.path.join(r["dir"], "output.npy"))]
            ref = next((r for r in ok if r["id"].endswith("/pytorch-eager/fp32")), None) or \
                next((r for r in ok if r["id"].endswith("/enhance/fp32")), None)
            if ref is None:
                continue
            ref_out = np.load(os.path.join(ref["dir"], "output.npy"))
            for r in ok:
                if r is ref:
                    continue
                try:
                    c = compare(np.load(os.path.join(r["dir"], "output.npy")), ref_out)
                except Exception as e:  # noqa: BLE001
                    c = {"error": str(e)}
                append_jsonl(self.a.out, dict(type="compare", workload=wl["name"], row=r["id"], ref=ref["id"], **c))
                if "rel_l2" in c:
                    log(f"compare {r['id']} vs {ref['id']}: rel-L2 {c['rel_l2']:.3g} max-abs {c['max_abs']:.3g}")

    def main(self):
        a = self.a
        env = {k: os.environ.get(k) for k in ("PYTORCH_CUDA_ALLOC_CONF", "CUDA_MODULE_LOADING", "CUDA_VISIBLE_DEVICES",
                                               "ENHANCE_CUDA_LIBS", "LD_LIBRARY_PATH")}
        card = self.sampler.total_bytes or (host_memory_total() if a.rehearsal else None)
        meta = {"type": "meta", "rehearsal": a.rehearsal, "device": a.device, "torch_device": a.torch_device,
                "sampler": self.sampler.kind,
                "sampler_note": self.sampler.note, "card_total_bytes": card,
                "card_total_source": "nvml/nvidia-smi" if self.sampler.total_bytes else ("host MemTotal (rehearsal)" if card else None),
                "warmup": a.warmup, "runs": a.runs, "env": env, "enhance_capabilities": self.caps,
                "enhance_ok": a.enhance_ok, "enhance_reason": a.enhance_reason,
                "workloads": a.workloads, "deadline": a.deadline, "started": time.time()}
        append_jsonl(a.out, meta)
        log(f"harness: sampler {self.sampler.kind} {self.sampler.note}; card {card}; {len(a.workloads)} workloads; "
            f"{self.left():.0f} s to the deadline")
        for p in ("fp32", "tf32", "fp16"):
            for wl in a.workloads:
                self.enhance_row(wl, p)
                self.torch_row(wl, p)
        for wl in a.workloads:
            self.torch_row(wl, "fp16-cl")
            self.enhance_row(wl, "fp16", layout="nhwc")
        # enhance's "compile" knob: the forward captured once into a CUDA graph and replayed (before torch.compile,
        # whose compile time may take the rest of the budget)
        for wl in a.workloads:
            self.enhance_row(wl, "fp16", graph=True)
        if a.compile:
            for variant in ("tf32", "fp16"):
                for wl in a.workloads:
                    self.torch_row(wl, variant, compile_mode="default")
        else:
            for wl in a.workloads:
                self.skip({"type": "row", "id": f"{wl['name']}/pytorch-compile/tf32", "workload": wl["name"],
                           "arch": wl["arch"], "engine": "pytorch-compile", "variant": "tf32", "precision": "tf32",
                           "device": a.device}, "torch.compile not requested (--compile)")
        self.compare_outputs()
        append_jsonl(a.out, {"type": "end", "finished": time.time(), "left_s": round(self.left(), 1)})
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--enhance", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--workload", action="append", default=[], help="NAME=ARCH:WEIGHTS:INPUT (repeatable)")
    ap.add_argument("--device", default="cuda", help="enhance's --device")
    ap.add_argument("--torch-device", help="the PyTorch peer's device (default: --device)")
    ap.add_argument("--python", default=sys.executable, help="Python with torch for the peer ('' = no peer)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--fallback-runs", type=int, default=3, help="processes per row for a build without --report")
    ap.add_argument("--sampler", default="auto", choices=["auto", "nvml", "smi", "rss", "none"])
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--deadline", type=float, default=0)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--enhance-unavailable", default="", metavar="REASON",
                    help="skip the enhance rows with this reason (e.g. info says CUDA is unavailable)")
    ap.add_argument("--rehearsal", action="store_true")
    a = ap.parse_args()
    a.workloads = []
    for spec in a.workload:
        name, rest = spec.split("=", 1)
        arch, weights, inp = rest.split(":", 2)
        a.workloads.append({"name": name, "arch": arch, "weights": weights, "input": inp})
    a.torch_device = a.torch_device or a.device
    a.enhance_ok = not a.enhance_unavailable
    a.enhance_reason = a.enhance_unavailable
    os.makedirs(a.work, exist_ok=True)
    install_signal_handlers()
    return Harness(a).main()


if __name__ == "__main__":
    sys.exit(main())
