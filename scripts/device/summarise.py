#!/usr/bin/env python3
"""Step 3 of the device check: one device-check.json and a human summary.md from what steps 0-2 left in $OUT.

  summarise.py OUT_DIR [--steps STEPS.jsonl] [--rehearsal] [--wall-s S]

Reads OUT_DIR/{info.json, versions.txt, parity.json, timing.jsonl} (any may be missing) and writes
OUT_DIR/device-check.json and OUT_DIR/summary.md. The table has, per workload and engine/setting: median and p95
seconds, allocated / reserved / process VRAM in MiB, instances per 24 GiB card and per the card in use
(floor(card total / process peak)), the speed ratio against PyTorch eager at the same precision (the faster eager
variant of that precision: PyTorch median / ours) and the VRAM ratio ours-allocated / PyTorch max_memory_reserved.
Gates (the issue's): parity, 8-bit images (real weights), ≥ 2× speed, ≤ ½ VRAM, the bench's GPU table, each PASS / FAIL / NOT RUN. The speed and VRAM gates take, per
workload and precision, our best setting (eager NCHW, NHWC, CUDA graph) against PyTorch eager's best setting, as the
issue words it; the table keeps every pair.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from devlib import GIB, MIB, read_json, read_jsonl, write_json  # noqa: E402

CARD_24 = 24 * GIB
SPEED_GATE = 2.0
VRAM_GATE = 0.5


def fmt(v, spec=".4f", none="n/a"):
    if v is None:
        return none
    try:
        return format(v, spec)
    except (TypeError, ValueError):
        return str(v)


def mib(b):
    return None if b is None else b / MIB


def allocated_of(row):
    """Ours: allocated_peak_bytes, else live + weights + workspace (gpu.md §5); torch: max_memory_allocated."""
    m = row.get("memory") or {}
    if m.get("allocated_peak_bytes") is not None:
        return m["allocated_peak_bytes"]
    parts = [m.get(k) for k in ("live_peak_bytes", "weight_bytes", "workspace_peak_bytes")]
    if row.get("engine") == "enhance" and m.get("live_peak_bytes") is not None:
        return sum(p or 0 for p in parts)
    return None


def build_table(rows, compares, card_total):
    ok = [r for r in rows if r.get("status") == "ok"]
    rel = {c["row"]: c for c in compares if "rel_l2" in c}
    table, pairs = [], []
    for r in rows:
        vram = r.get("vram") or {}
        proc = vram.get("process_peak_bytes")
        m = r.get("memory") or {}
        t = {"id": r["id"], "workload": r["workload"], "engine": r["engine"], "variant": r["variant"],
             "precision": r["precision"], "status": r["status"], "reason": r.get("reason"),
             "median_s": r.get("median_s"), "p95_s": r.get("p95_s"), "runs": r.get("runs"),
             "timing_source": r.get("timing_source"), "compile_s": r.get("compile_s"),
             "allocated_bytes": allocated_of(r), "reserved_bytes": m.get("reserved_peak_bytes"),
             "weight_bytes": m.get("weight_bytes"), "process_bytes": proc, "sampler": vram.get("sampler"),
             "nvml_process_bytes": vram.get("nvml_process_peak_bytes"),
             "per_24gb": (CARD_24 // proc) if proc else None,
             "per_card": (card_total // proc) if proc and card_total else None,
             "rel_l2_vs": rel.get(r["id"], {}).get("rel_l2"), "rel_l2_ref": rel.get(r["id"], {}).get("ref")}
        if r["engine"] == "enhance" and r["status"] == "ok":
            peers = [p for p in ok if p["workload"] == r["workload"] and p["engine"] == "pytorch-eager"
                     and p["precision"] == r["precision"] and p.get("median_s")]
            if peers:
                best = min(peers, key=lambda p: p["median_s"])
                t["peer"] = best["id"]
                t["speed_x"] = best["median_s"] / r["median_s"] if r.get("median_s") else None
                peer_res = (best.get("memory") or {}).get("reserved_peak_bytes")
                t["vram_ratio"] = (t["allocated_bytes"] / peer_res) if t["allocated_bytes"] is not None and peer_res else None
                pairs.append({"workload": r["workload"], "precision": r["precision"], "ours": r["id"], "peer": best["id"],
                              "speed_x": t["speed_x"], "vram_ratio": t["vram_ratio"],
                              "comparable": r.get("timing_source") == "report"
                              and "contract-shim" not in str(r.get("backend") or ""),
                              "ours_allocated_bytes": t["allocated_bytes"], "peer_reserved_bytes": peer_res})
        table.append(t)
    return table, pairs


def conv_plan_stats(notes):
    """Counts in `forward --report` diagnostics: plan lines ("… cuDNN fwd algo 1, workspace …, math type 1, …"), their
    algorithms and math types, the dense-copy fallback lines (a strided view cuDNN refused), and algorithms cuDNN refused when they ran ("…: cuDNN
    algo 1 failed (…); trying the next one it offered", written right after the plan line it replaces, which is then
    not counted: the plan line that follows is the algorithm the layer runs)."""
    import re
    chosen, fallbacks, refused = [], 0, 0
    for line in notes:
        m = re.search(r"cuDNN (fwd|bwd-data) algo (-?\d+), workspace \d+ B, math type (\d+)", line)
        if m:
            chosen.append((f"{m.group(1)} {m.group(2)}", m.group(3)))
        if "runs on a dense copy" in line:
            fallbacks += 1
        if re.search(r"cuDNN algo -?\d+ failed .*trying the next one it offered", line):
            refused += 1
            if chosen:
                chosen.pop()
    algos, maths = {}, {}
    for algo, math in chosen:
        algos[algo] = algos.get(algo, 0) + 1
        maths[math] = maths.get(math, 0) + 1
    fmt_counts = lambda d: ", ".join(f"{k} ({v})" for k, v in sorted(d.items()))  # noqa: E731
    return {"plans": len(chosen), "algorithms": fmt_counts(algos), "math": fmt_counts(maths), "fallbacks": fallbacks,
            "refused": refused}


def profile_line(profile, top=3):
    """A row of the "where the time goes" table from a `--profile` object (ours or the PyTorch peer's), in ms."""
    if not profile or "error" in profile:
        return None
    ms = lambda v: None if v is None else v * 1000  # noqa: E731
    k = profile.get("by_kind") or {}
    wall, timed = profile.get("wall_s"), profile.get("timed_s")
    short = lambda n: n if len(n) <= 60 else n[:57] + "..."  # noqa: E731 - CUDA kernel names run to hundreds of characters
    tops = ", ".join(f"{short(e['name'])} {e['seconds'] * 1000:.2f} ms ×{e['calls']}" for e in (profile.get("entries") or [])[:top])
    return {"wall_ms": ms(wall), "conv_ms": ms(k.get("convolution")), "op_ms": ms(k.get("op")), "copy_ms": ms(k.get("copy")),
            "gap_ms": ms(max(0.0, wall - timed)) if wall is not None and timed is not None else None, "top": tops}


def best_per_setting(pairs, key, pick):
    """Per (workload, precision), the pair whose `key` is best by `pick` (max or min); pairs without it left out."""
    groups = {}
    for p in pairs:
        if p.get(key) is not None:
            groups.setdefault((p["workload"], p["precision"]), []).append(p)
    return [pick(g, key=lambda p: p[key]) for g in groups.values()]


def gate_from(values, test, what):
    vals = [v for v in values if v is not None]
    if not vals:
        return {"status": "NOT RUN", "detail": f"no {what} measured"}
    bad = [v for v in vals if not test(v)]
    return {"status": "FAIL" if bad else "PASS", "detail": f"{len(vals) - len(bad)} of {len(vals)} pass"}


def cases_gate(cases, none_ran, extra=lambda ran: "", failing=8):
    """PASS when every case that ran passed: "N of M cases pass[, K not run][extra]; failing: case precision (why)…";
    NOT RUN (`none_ran`) when none ran."""
    ran = [c for c in cases if c.get("status") in ("pass", "fail", "error")]
    notrun = [c for c in cases if c.get("status") == "not-run"]
    if not ran:
        return {"status": "NOT RUN", "detail": none_ran}
    bad = [c for c in ran if c["status"] != "pass"]
    return {"status": "FAIL" if bad else "PASS",
            "detail": f"{len(ran) - len(bad)} of {len(ran)} cases pass" + (f", {len(notrun)} not run" if notrun else "")
            + extra(ran)
            + (f"; failing: {'; '.join(c['case'] + ' ' + c.get('precision', '') + ' (' + str(c.get('reason') or c.get('status')) + ')' for c in bad[:failing])}" if bad else "")}


def bench_gate(bench):
    """The issue's "`enhance bench --device cuda --quick` runs end to end on the GPU and its table shows the study's
    columns beside PyTorch's": a sampled GPU, workloads of ours with seconds, the three VRAM layers and instances per
    card, and PyTorch peers with seconds."""
    if not bench:
        return {"status": "NOT RUN", "detail": "bench.json missing"}
    sums = bench.get("summaries") or []
    ours = [s for s in sums if not s.get("peer_of")]
    peers = [s for s in sums if s.get("peer_of") and s.get("median_s") is not None]
    complete = [s for s in ours if s.get("median_s") is not None and all((s.get("vram") or {}).get(k) is not None
                for k in ("allocated_bytes", "reserved_bytes", "process_bytes")) and (s.get("gpu_capacity") or {}).get("study_card")]
    missing = []
    if not (bench.get("gpu") or {}).get("name"):
        missing.append("no GPU sampled")
    if not complete:
        missing.append("no workload of ours with seconds, allocated/reserved/process VRAM and instances per card")
    if not peers:
        missing.append("no PyTorch peer with seconds")
    detail = (f"{len(complete)} of {len(ours)} workloads of ours complete ({', '.join(s['workload'] for s in complete)}); "
              f"{len(peers)} peers ({', '.join(s['workload'] for s in peers)})")
    return {"status": "FAIL" if missing else "PASS", "detail": detail + ("; " + "; ".join(missing) if missing else "")}


def selftest():
    """Gates and ratios on made-up GPU-like figures (no GPU needed): `summarise.py --selftest`."""
    import tempfile
    from devlib import append_jsonl
    d = tempfile.mkdtemp(prefix="summarise-selftest-")
    write_json(os.path.join(d, "parity.json"), {"counts": {}, "cases": [
        {"kind": "fixture", "case": "a", "precision": "fp32", "status": "pass", "rel_l2": 1e-6},
        {"kind": "full", "case": "b", "precision": "fp16", "status": "pass", "rel_l2": 1e-3},
        {"kind": "image", "case": "up", "precision": "fp16", "status": "pass", "gated": True, "within_steps": 0.9995, "max_diff": 3},
        {"kind": "image", "case": "up", "precision": "fp32", "status": "pass", "gated": True, "within_steps": 1.0, "max_diff": 1},
        {"kind": "image", "case": "gpen", "precision": "fp16", "status": "fail", "gated": False, "within_steps": 0.5, "max_diff": 90}]})
    t = os.path.join(d, "timing.jsonl")
    append_jsonl(t, {"type": "meta", "card_total_bytes": 140 * GIB, "sampler": "nvml"})

    prof = {"clock": "x", "wall_s": 0.02, "timed_s": 0.015, "by_kind": {"convolution": 0.012, "op": 0.002, "copy": 0.001},
            "entries": [{"kind": "convolution", "name": "cuDNN fwd algo 1", "calls": 10, "seconds": 0.012},
                        {"kind": "op", "name": "enh_epilogue_f32", "calls": 10, "seconds": 0.002}]}

    def row(rid, eng, var, prec, med, alloc, res, proc, src="report"):
        append_jsonl(t, {"type": "row", "id": rid, "workload": "w", "arch": "gpen", "engine": eng, "variant": var,
                         "precision": prec, "status": "ok", "median_s": med, "p95_s": med * 1.1, "timing_source": src,
                         "memory": {"allocated_peak_bytes": alloc, "reserved_peak_bytes": res},
                         "vram": {"process_peak_bytes": proc}, "profile": prof if rid == "w/enhance/fp32" else None})
    row("w/enhance/fp32", "enhance", "fp32", "fp32", 0.020, 500 * MIB, 600 * MIB, 1000 * MIB)
    row("w/pytorch-eager/fp32", "pytorch-eager", "fp32", "fp32", 0.050, 900 * MIB, 1200 * MIB, 2000 * MIB)
    row("w/enhance/fp16", "enhance", "fp16", "fp16", 0.015, 300 * MIB, 400 * MIB, 700 * MIB)
    row("w/pytorch-eager/fp16", "pytorch-eager", "fp16", "fp16", 0.020, 500 * MIB, 800 * MIB, 1500 * MIB)
    row("w/pytorch-eager/fp16-cl", "pytorch-eager", "fp16-cl", "fp16", 0.018, 500 * MIB, 700 * MIB, 1500 * MIB)
    row("w/enhance/fp16-nhwc", "enhance", "fp16-nhwc", "fp16", 0.012, 320 * MIB, 420 * MIB, 720 * MIB)
    full_vram = {"allocated_bytes": 1, "reserved_bytes": 2, "process_bytes": 3}
    write_json(os.path.join(d, "bench.json"), {"gpu": {"name": "H200"}, "summaries": [
        {"workload": "x2plus", "median_s": 0.1, "vram": full_vram, "gpu_capacity": {"study_card": 8}},
        {"workload": "restore", "median_s": None, "vram": {}, "errors": ["exit status 69"]},
        {"workload": "x2plus-torch", "peer_of": "x2plus", "median_s": 0.3}]})
    old = sys.argv
    sys.argv = ["summarise.py", d]
    try:
        import contextlib
        import io
        with contextlib.redirect_stdout(io.StringIO()):
            main()
    finally:
        sys.argv = old
    doc = read_json(os.path.join(d, "device-check.json"))
    g = doc["gates"]
    by = {x["id"]: x for x in doc["table"]}
    checks = [
        (g["parity"]["status"] == "PASS", "parity PASS"),
        (g["bench_quick"]["status"] == "PASS" and g["bench_quick"]["detail"].startswith("1 of 2 workloads of ours complete (x2plus); 1 peers"),
         f"bench gate PASS with one complete workload and a peer: {g['bench_quick']}"),
        (bench_gate({"gpu": {"name": "H200"}, "summaries": [{"workload": "x2plus", "median_s": 0.1, "vram": full_vram,
                                                              "gpu_capacity": {"study_card": 8}}]})["status"] == "FAIL",
         "bench gate FAIL without a PyTorch peer"),
        (bench_gate(None)["status"] == "NOT RUN", "bench gate NOT RUN without bench.json"),
        (g["images_8bit"]["status"] == "PASS" and "lowest 99.9500% within 2 steps (up fp16, max diff 3)" in g["images_8bit"]["detail"],
         f"images PASS, the synthetic case not gated: {g['images_8bit']}"),
        (g["speed_2x"]["status"] == "FAIL", "speed FAIL (fp16's best pair 0.018/0.012 = 1.5)"),
        ([p["ours"] for p in g["speed_2x"]["pairs"]] == ["w/enhance/fp32", "w/enhance/fp16-nhwc"],
         "speed gate: one pair per workload and precision, our fastest setting"),
        ([p["ours"] for p in g["vram_half"]["pairs"]] == ["w/enhance/fp32", "w/enhance/fp16"],
         "vram gate: our leanest setting per workload and precision"),
        (g["vram_half"]["status"] == "PASS", "vram PASS (500/1200, 300/700)"),
        (abs(by["w/enhance/fp32"]["speed_x"] - 2.5) < 1e-9, "fp32 speed 2.5"),
        (by["w/enhance/fp16"]["peer"] == "w/pytorch-eager/fp16-cl", "fp16 peer = the faster eager variant"),
        (abs(by["w/enhance/fp16"]["vram_ratio"] - 300 / 700) < 1e-9, "fp16 vram ratio vs that peer's reserved"),
        (by["w/enhance/fp32"]["per_24gb"] == 24 and by["w/enhance/fp32"]["per_card"] == 143, "instances 24 / 143"),
    ]
    line = profile_line(prof)
    checks.append((abs(line["gap_ms"] - 5) < 1e-9 and abs(line["conv_ms"] - 12) < 1e-9
                   and line["top"].startswith("cuDNN fwd algo 1 12.00 ms ×10, enh_epilogue_f32"), f"profile line {line}"))
    with open(os.path.join(d, "summary.md")) as fh:
        summary = fh.read()
    checks.append(("| w/enhance/fp32 | 20.00 | 12.00 | 2.00 | 1.00 | 5.00 | cuDNN fwd algo 1 12.00 ms ×10" in summary,
                   "summary.md's profile table has the profiled row"))
    write_json(os.path.join(d, "strict.json"), {"rel_l2": float("inf"), "v": [float("nan"), 1.5]})
    with open(os.path.join(d, "strict.json")) as fh:
        checks.append((json.load(fh) == {"rel_l2": None, "v": [None, 1.5]}, "non-finite floats written as null (strict JSON)"))
    checks.append((profile_line({"error": "CUPTI"}) is None and profile_line(None) is None, "no profile, no line"))
    stats = conv_plan_stats(["conv2d [1,64,32,32] → Tensor: cuDNN fwd algo 1, workspace 0 B, math type 1, fp16 nhwc",
                             "conv2d [1,64,32,32] → Tensor: cuDNN fwd algo 6, workspace 8 B, math type 1, fp16 nhwc",
                             "convTranspose2d [1,8,4,4] → T: cuDNN bwd-data algo 1, workspace 0 B, math type 0, fp16 nhwc",
                             "conv2d [1,40,8,8] of 48 stored channels: cuDNN refused the strided NHWC input (x); this shape runs on a dense copy",
                             "conv2d [1,8,8,8] → T: cuDNN fwd algo 7, workspace 0 B, math type 1, fp16 nhwc",
                             "conv2d [1,8,8,8]: cuDNN algo 7 failed (x: CUDNN_STATUS_NOT_SUPPORTED); trying the next one it offered",
                             "conv2d [1,8,8,8] → T: cuDNN fwd algo 1, workspace 0 B, math type 1, fp16 nhwc",
                             "kernels.cu for sm_90: cached"])
    checks.append((stats == {"plans": 4, "algorithms": "bwd-data 1 (1), fwd 1 (2), fwd 6 (1)", "math": "0 (1), 1 (3)", "fallbacks": 1,
                             "refused": 1},
                   f"plan stats {stats}"))
    bad = [m for ok, m in checks if not ok]
    print("summarise selftest:", "ok" if not bad else f"FAILED: {bad}", f"({d})")
    return 1 if bad else 0


def main():
    if sys.argv[1:] == ["--selftest"]:
        return selftest()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--steps")
    ap.add_argument("--rehearsal", action="store_true")
    ap.add_argument("--wall-s", type=float)
    a = ap.parse_args()
    out = a.out
    info = read_json(os.path.join(out, "info.json"))
    parity = read_json(os.path.join(out, "parity.json"))
    bench = read_json(os.path.join(out, "bench.json"))
    lines = read_jsonl(os.path.join(out, "timing.jsonl"))
    steps = read_jsonl(a.steps) if a.steps else []
    try:
        with open(os.path.join(out, "versions.txt")) as fh:
            versions = fh.read()
    except OSError:
        versions = ""
    meta = next((x for x in lines if x.get("type") == "meta"), {})
    rows = [x for x in lines if x.get("type") == "row"]
    compares = [x for x in lines if x.get("type") == "compare"]
    cuda = (info or {}).get("cuda") if isinstance(info, dict) else None
    card_total = meta.get("card_total_bytes") or (cuda or {}).get("memory_total_bytes")
    table, pairs = build_table(rows, compares, card_total)

    # Gates.
    gates = {}
    cases = (parity or {}).get("cases", [])
    gates["parity"] = cases_gate([c for c in cases if c.get("kind") in ("fixture", "full")],
                                 "no parity case ran" if parity else "parity.json missing")
    # 8-bit images (the issue: fp16 within 2 steps on ≥ 99 % of pixels), real weights only; synthetic ones are shown.
    def lowest(ran):
        worst = min((c for c in ran if c.get("within_steps") is not None), key=lambda c: c["within_steps"], default=None)
        return (f"; lowest {worst['within_steps']:.4%} within 2 steps ({worst['case']} {worst['precision']}, "
                f"max diff {worst['max_diff']})" if worst else "")
    gates["images_8bit"] = cases_gate([c for c in cases if c.get("kind") == "image" and c.get("gated")],
                                      "no image case with real weights ran", extra=lowest, failing=6)
    gates["bench_quick"] = bench_gate(bench)
    # A build without --report is timed per process (start-up included): shown, but not gated.
    comparable = [p for p in pairs if p["comparable"]]
    fastest = best_per_setting(comparable, "speed_x", max)
    gates["speed_2x"] = gate_from([p["speed_x"] for p in fastest], lambda v: v >= SPEED_GATE,
                                  "ours-vs-PyTorch pair (our best setting per workload and precision)")
    if len(comparable) < len(pairs):
        gates["speed_2x"]["detail"] += (f" ({len(pairs) - len(comparable)} pair(s) left out: ours timed per process "
                                        "(a build without --report, or the rehearsal's contract shim))")
    leanest = best_per_setting(pairs, "vram_ratio", min)
    gates["vram_half"] = gate_from([p["vram_ratio"] for p in leanest], lambda v: v <= VRAM_GATE,
                                   "ours-allocated / PyTorch-reserved pair (our leanest setting per workload and precision)")
    for g, chosen in (("speed_2x", fastest), ("vram_half", leanest)):
        gates[g]["pairs"] = [{k: p[k] for k in ("workload", "precision", "ours", "peer",
                                                 "speed_x" if g == "speed_2x" else "vram_ratio")} for p in chosen]

    doc = {"rehearsal": a.rehearsal or bool(meta.get("rehearsal")) or bool((parity or {}).get("rehearsal")),
           "generated": time.strftime("%Y-%m-%dT%H:%M:%S"), "wall_s": a.wall_s, "steps": steps,
           "gates": gates, "table": table, "pairs": pairs, "card_total_bytes": card_total,
           "card_24gb_bytes": CARD_24, "info": info, "versions": versions[-20000:],
           "parity": parity, "timing": {"meta": meta, "compare": compares,
                                        "rows": [{k: v for k, v in r.items() if k not in ("report",)} for r in rows]}}
    write_json(os.path.join(out, "device-check.json"), doc)

    # summary.md
    md = []
    title = "# Device check" + (" — REHEARSAL (CPU, no GPU: numbers are not GPU results)" if doc["rehearsal"] else "")
    md.append(title)
    md.append("")
    md.append(f"Generated {doc['generated']}" + (f", wall {a.wall_s:.0f} s" if a.wall_s else "") + ".")
    if cuda:
        if cuda.get("available"):
            md.append(f"GPU: {cuda.get('device')} (sm {cuda.get('compute_capability')}), driver {cuda.get('driver')}, "
                      f"cuDNN {cuda.get('cudnn')}, NVRTC {cuda.get('nvrtc')}, "
                      f"{fmt(mib(cuda.get('memory_total_bytes')), '.0f')} MiB.")
        else:
            md.append(f"enhance: CUDA unavailable: {cuda.get('reason')}")
    elif info is None:
        md.append("enhance info: missing (see log.txt).")
    elif isinstance(info, dict) and info.get("error"):
        md.append(f"**enhance: {info['error']}** (see log.txt and versions.txt)")
    else:
        md.append("enhance info: no \"cuda\" key (a build without the CUDA backend).")
    if "contract shim" in str((cuda or {}).get("reason", "")) or any("contract-shim" in str(r.get("backend")) for r in rows):
        md.append("**enhance ran through the rehearsal's contract shim**: its tf32/fp16 rows and parity cases are fp32 "
                  "results, its seconds are per process.")
    if meta:
        md.append(f"Memory sampler: {meta.get('sampler')} {meta.get('sampler_note') or ''}; card total "
                  f"{fmt(mib(card_total), '.0f')} MiB ({meta.get('card_total_source')}); "
                  f"PYTORCH_CUDA_ALLOC_CONF={(meta.get('env') or {}).get('PYTORCH_CUDA_ALLOC_CONF')}, "
                  f"CUDA_MODULE_LOADING={(meta.get('env') or {}).get('CUDA_MODULE_LOADING')}.")
    md.append("")
    md.append("## Gates")
    md.append("")
    md.append("| gate | result | detail |")
    md.append("|---|---|---|")
    names = {"bench_quick": "enhance bench --device cuda --quick: study's columns beside PyTorch's",
             "parity": "parity (fp32 ≤ 1e-4, tf32/fp16 ≤ 1e-2 rel-L2)",
             "images_8bit": "8-bit images ≥ 99 % of pixels within 2 steps of the CPU (real weights)",
             "speed_2x": "speed ≥ 2× PyTorch eager, same precision",
             "vram_half": "VRAM: ours allocated ≤ ½ PyTorch reserved"}
    for k, g in gates.items():
        md.append(f"| {names[k]} | **{g['status']}** | {g['detail']} |")
    if pairs:
        md.append("")
        md.append("| workload | precision | ours | PyTorch peer | speed × | VRAM ratio |")
        md.append("|---|---|---|---|---|---|")
        for p in pairs:
            md.append(f"| {p['workload']} | {p['precision']} | {p['ours'].split('/', 1)[1]} | {p['peer'].split('/', 1)[1]} | "
                      f"{fmt(p['speed_x'], '.2f')}{'' if p['comparable'] else ' (ours per process: not gated)'} | "
                      f"{fmt(p['vram_ratio'], '.3f')} |")
    md.append("")
    md.append("## Speed and VRAM")
    md.append("")
    md.append("Seconds: whole forward incl. upload and download (median / p95 of the timed runs). VRAM in MiB: allocated "
              "(ours: live + weights + workspace; PyTorch: max_memory_allocated), reserved (pool / max_memory_reserved), "
              "process (sampler peak minus idle baseline, context included). ×24G / ×card = floor(card / process peak). "
              "speed × = PyTorch eager median (faster variant of the same precision) / ours. rel-L2 vs the workload's "
              "PyTorch fp32 output.")
    md.append("")
    md.append("| workload | engine | setting | status | median s | p95 s | alloc MiB | reserved MiB | process MiB | ×24G | ×card | speed × | VRAM ratio | rel-L2 |")
    md.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for t in table:
        status = t["status"] if t["status"] == "ok" else f"{t['status']}: {t.get('reason') or ''}"
        if t.get("timing_source") == "process-wall":
            status += " (process wall)"
        if t.get("compile_s") is not None:
            status += f" (compile {t['compile_s']:.0f} s)"
        md.append(f"| {t['workload']} | {t['engine']} | {t['variant']} | {status} | {fmt(t['median_s'])} | {fmt(t['p95_s'])} | "
                  f"{fmt(mib(t['allocated_bytes']), '.0f')} | {fmt(mib(t['reserved_bytes']), '.0f')} | "
                  f"{fmt(mib(t['process_bytes']), '.0f')} | {fmt(t['per_24gb'], 'd')} | {fmt(t['per_card'], 'd')} | "
                  f"{fmt(t.get('speed_x'), '.2f', '')} | {fmt(t.get('vram_ratio'), '.3f', '')} | {fmt(t.get('rel_l2_vs'), '.2e', '')} |")
    if not table:
        md.append("| (no timing rows: timing.jsonl missing or empty) | | | | | | | | | | | | | |")
    md.append("")
    md.append("## Convolution plans of our rows")
    md.append("")
    md.append("From each enhance row's report diagnostics: cuDNN algorithms and math types the plans got (math type 0: "
              "default, TF32 allowed; 1: tensor ops; 2: tensor ops with down-conversion; 3: FMA, no TF32), and layers "
              "whose strided input (a channel view) cuDNN refused (they ran on a dense copy); \"refused algorithms\": algorithms cuDNN's "
              "heuristics offered and its engine refused when they ran (the plan then took the next one offered).")
    md.append("")
    md.append("| row | plans | algorithms (count) | math types (count) | dense-copy fallbacks | refused algorithms |")
    md.append("|---|---|---|---|---|---|")
    for r in rows:
        if r.get("engine") != "enhance" or r.get("status") != "ok":
            continue
        notes = ((r.get("report") or {}).get("diagnostics")) or []
        plan_stats = conv_plan_stats(notes)
        md.append(f"| {r['id']} | {plan_stats['plans']} | {plan_stats['algorithms'] or '-'} | {plan_stats['math'] or '-'} | "
                  f"{plan_stats['fallbacks']} | {plan_stats['refused']} |")
    md.append("")
    md.append("## Where the time goes (one profiled forward per row)")
    md.append("")
    md.append("After each eager enhance row's timed runs, `forward --profile` ran one more forward with CUDA events around "
              "every kernel, cuDNN call and copy; PyTorch's fp32 / fp16 / fp16-cl rows one more under torch.profiler "
              "(kernel device times; its kinds are read off kernel names). ms of that forward: convolutions (cuDNN), "
              "other ops, host↔device copies, and the wall time not inside any of them (launch gaps, host work).")
    md.append("")
    md.append("| row | wall ms | conv ms | other ops ms | copies ms | outside ops ms | largest |")
    md.append("|---|---|---|---|---|---|---|")
    profiled = 0
    for r in rows:
        line = profile_line(r.get("profile")) if r.get("status") == "ok" else None
        if line is None:
            if (r.get("profile") or {}).get("error"):
                md.append(f"| {r['id']} | profile failed: {r['profile']['error']} | | | | | |")
            continue
        profiled += 1
        md.append(f"| {r['id']} | {fmt(line['wall_ms'], '.2f')} | {fmt(line['conv_ms'], '.2f')} | {fmt(line['op_ms'], '.2f')} | "
                  f"{fmt(line['copy_ms'], '.2f')} | {fmt(line['gap_ms'], '.2f')} | {line['top']} |")
    if not profiled:
        md.append("| (no profiled rows) | | | | | | |")
    md.append("")
    md.append("## enhance bench --device cuda --quick (step 2b)")
    md.append("")
    if bench:
        gpu = bench.get("gpu") or {}
        md.append(f"GPU sampled: {gpu.get('name', 'none')} ({fmt(mib(gpu.get('total_bytes')), '.0f')} MiB), "
                  f"{gpu.get('sampler', 'process VRAM not sampled')}. Whole process per run (start-up, loading, "
                  "decode and encode included).")
        md.append("")
        md.append("| workload | variant | runs | median s | p95 s | GPU util | alloc MiB | reserved MiB | process MiB | ×24G | ×card | PSNR | peer ratio | errors |")
        md.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for sm in bench.get("summaries", []):
            v = sm.get("vram") or {}
            c = sm.get("gpu_capacity") or {}
            ratios = ", ".join(f"{k} {x:.2f}" for k, x in (sm.get("peer_ratios") or {}).items())
            md.append(f"| {sm.get('workload')} | {sm.get('variant')} | {len(sm.get('runs') or [])} | {fmt(sm.get('median_s'))} | "
                      f"{fmt(sm.get('p95_s'))} | {fmt(sm.get('gpu_utilisation'), '.0%')} | {fmt(mib(v.get('allocated_bytes')), '.0f')} | "
                      f"{fmt(mib(v.get('reserved_bytes')), '.0f')} | {fmt(mib(v.get('process_bytes')), '.0f')} | "
                      f"{fmt(c.get('study_card'), 'd')} | {fmt(c.get('this_card'), 'd')} | {fmt(sm.get('psnr'), '.2f')} | "
                      f"{ratios} | {'; '.join(sm.get('errors') or [])[:160]} |")
        for n in bench.get("notes") or []:
            md.append(f"- note: {n}")
    else:
        md.append("bench.json missing (see log.txt).")
    md.append("")
    md.append("## Parity")
    md.append("")
    if parity:
        md.append(f"{(parity.get('counts') or {})} — gates rel-L2: {parity.get('gates_rel_l2')}")
        md.append("")
        md.append("| case | kind | precision | status | rel-L2 | max-abs | s | note |")
        md.append("|---|---|---|---|---|---|---|---|")
        for c in parity.get("cases", []):
            if c.get("kind") == "image":
                continue
            note = c.get("reason") or ""
            md.append(f"| {c.get('case')} | {c.get('kind')} | {c.get('precision', '')} | {c.get('status')} | "
                      f"{fmt(c.get('rel_l2'), '.2e', '')} | {fmt(c.get('max_abs'), '.2e', '')} | {fmt(c.get('seconds'), '.1f', '')} | {note[:120]} |")
        images = [c for c in parity.get("cases", []) if c.get("kind") == "image"]
        if images:
            md.append("")
            md.append("### 8-bit images (against the same command on the CPU in fp32)")
            md.append("")
            md.append("| case | model | precision | status | within 2 steps | max diff | PSNR dB | s | note |")
            md.append("|---|---|---|---|---|---|---|---|---|")
            for c in images:
                share = c.get("within_steps")
                md.append(f"| {c.get('case')} | {c.get('model', '')} | {c.get('precision', '')} | {c.get('status')} | "
                          f"{'' if share is None else f'{share:.4%}'} | {c.get('max_diff', '')} | {'identical' if c.get('identical') else fmt(c.get('psnr_db'), '.1f', '')} | "
                          f"{fmt(c.get('seconds'), '.1f', '')} | {(c.get('reason') or '')[:120]} |")
    else:
        md.append("parity.json missing.")
    if steps:
        md.append("")
        md.append("## Steps")
        md.append("")
        md.append("| step | status | seconds | note |")
        md.append("|---|---|---|---|")
        for s in steps:
            md.append(f"| {s.get('step')} | {s.get('status')} | {fmt(s.get('seconds'), '.0f', '')} | {s.get('note', '')} |")
    with open(os.path.join(out, "summary.md"), "w") as fh:
        fh.write("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
