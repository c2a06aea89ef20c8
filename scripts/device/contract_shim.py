#!/usr/bin/env python3
"""REHEARSAL ONLY: the enhance CLI contract the CUDA build adds, emulated over a build that lacks it, so that a CPU
rehearsal of scripts/device-check exercises the code paths the device will take (DEVICE_CHECK_SHIM=1).

  ENHANCE_REAL=/path/to/enhance contract_shim.py ARGS...

- `info --json`: the real output plus "cuda": {"available": false, "reason": "..."} when the build has no such key.
- `forward --help`: the real help plus the flags the contract adds (so capability probes see them).
- `forward ... [--precision fp32|tf32|fp16] [--warmup K] [--runs N] [--report FILE]`, when the real build lacks them:
  runs the real forward at fp32 (tf32/fp16 are NOT emulated: the numbers are fp32's), min(N, 2) times as separate
  processes, and writes a report in the contract's schema whose seconds are whole-process wall times, memory figures
  null, and whose backend and diagnostics say it is this shim.
Everything else is passed to the real binary unchanged. Never used on the device.
"""
import json
import os
import subprocess
import sys
import time

REAL = os.environ.get("ENHANCE_REAL", "")
ADDED = ("--precision", "--warmup", "--runs", "--report")


def real_help():
    r = subprocess.run([REAL, "forward", "--help"], capture_output=True, text=True, timeout=60)
    return r.stdout + r.stderr


def npy_shape(path):
    try:
        import numpy as np
        return list(np.load(path, mmap_mode="r").shape)
    except Exception:  # noqa: BLE001
        return None


def forward(argv):
    text = real_help()
    if all(f in text for f in ADDED) and "tf32" in text:
        os.execv(REAL, [REAL, "forward", *argv])
    opts, rest, i = {}, [], 0
    while i < len(argv):
        if argv[i] in ADDED and i + 1 < len(argv):
            opts[argv[i]] = argv[i + 1]
            i += 2
            continue
        rest.append(argv[i])
        i += 1
    precision = opts.get("--precision", "fp32")
    runs = int(opts.get("--runs", "1"))
    cmd = [REAL, "forward", *rest, "--precision", "fp32"]
    secs, rc, err = [], 0, ""
    for _ in range(max(1, min(runs, 2))):
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            rc, err = r.returncode, r.stderr
            break
        secs.append(time.perf_counter() - t)
        sys.stdout.write(r.stdout)
    if rc != 0:
        sys.stderr.write(err)
        return rc
    if "--report" in opts:
        def val(flag):
            return rest[rest.index(flag) + 1] if flag in rest else None
        s = sorted(secs)
        q = lambda p: s[0] + (s[-1] - s[0]) * p if len(s) > 1 else s[0]  # noqa: E731  (two points: linear)
        rep = {"device": val("--device") or "auto", "backend": f"contract-shim over {os.path.basename(REAL)} (REHEARSAL)",
               "precision": precision, "arch": val("--arch"), "input_shape": npy_shape(val("--input")),
               "warmup": 0, "runs": len(secs), "seconds": [round(x, 6) for x in secs], "median_s": q(0.5), "p95_s": q(0.95),
               "memory": {"weight_bytes": None, "live_peak_bytes": None, "reserved_peak_bytes": None,
                          "workspace_peak_bytes": None, "allocated_peak_bytes": None},
               "diagnostics": ["contract shim (rehearsal): the real build has no --report; seconds are whole-process wall "
                               "times, no warm-up" + ("" if precision == "fp32" else f"; {precision} ran as fp32")]}
        with open(opts["--report"], "w") as fh:
            json.dump(rep, fh, indent=1)
    return 0


def main():
    if not REAL:
        print("contract_shim: set ENHANCE_REAL", file=sys.stderr)
        return 2
    argv = sys.argv[1:]
    if argv[:1] == ["info"] and "--json" in argv:
        r = subprocess.run([REAL, *argv], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            sys.stderr.write(r.stderr)
            return r.returncode
        d = json.loads(r.stdout)
        d.setdefault("cuda", {"available": False, "reason": "contract shim (rehearsal): the real build has no CUDA backend"})
        print(json.dumps(d, indent=2))
        return 0
    if argv[:1] == ["forward"] and ("--help" in argv or "-h" in argv):
        print(real_help() + "\n(contract shim, rehearsal) --precision fp32|tf32|fp16  --warmup K  --runs N  --report FILE")
        return 0
    if argv[:1] == ["forward"]:
        return forward(argv[1:])
    os.execv(REAL, [REAL, *argv])


if __name__ == "__main__":
    sys.exit(main())
