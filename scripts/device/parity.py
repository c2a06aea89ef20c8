#!/usr/bin/env python3
"""Step 1 of the device check: numerical parity of `enhance forward --device cuda` (docs/device-check.md).

  parity.py --enhance BIN --out parity.json --work DIR [--device cuda] [--precisions fp32,tf32,fp16,fp16-nhwc]
            [--fixtures Tests/Fixtures/models] [--full gpen=W:S,x2plus=W:S] [--ref-threads 16]
            [--images NAME=upscale:MODEL:PNG,NAME=restore-aligned:GPEN:PNG:synthetic]
            [--jobs 3] [--timeout 120] [--deadline EPOCH_S] [--rehearsal]

1. Fixtures: every folder under --fixtures with a config.json and an input/output pair (input.npy with the outputs
   enhance writes, e.g. output.npy, loc/conf/landms/priors.npy, out_mask/out_img.npy; or input_K.npy with
   output_K.npy) runs at each precision (a precision with a layout, e.g. fp16-nhwc, adds --layout nhwc) and is
   compared with the PyTorch output stored there.
2. Full size (--full): synthetic real-size weights and a seeded input, enhance on --device against
   `enhance forward --device cpu --threads N --no-winograd` (oneDNN direct convolution) on the same files.

3. 8-bit images (--images): `enhance upscale` / `restore --aligned` of a photo on --device at each precision
   against the same command on the CPU in fp32 (`--threads N --no-winograd`): the share of pixels whose every
   channel is within 2 steps (the issue: fp16 images within 2 steps on ≥ 99 % of pixels), max and mean difference,
   PSNR. Gated (share ≥ 0.99) for real weights; a case marked `synthetic` is reported, not gated.

Per output: max-abs and relative L2 ‖a−b‖/‖b‖ (float64). Gate on the largest relative L2 of a case's outputs:
fp32 ≤ 1e-4, tf32 ≤ 1e-2, fp16 ≤ 1e-2. A failure is recorded, never fatal. parity.json is rewritten after every case,
so a timeout keeps what was done; cases that no longer fit before --deadline are recorded as not run.
"""
import argparse
import concurrent.futures as cf
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from devlib import Child, compare, compare_images, install_signal_handlers, log, write_json  # noqa: E402

GATES = {"fp32": 1e-4, "tf32": 1e-2, "fp16": 1e-2}
ARCH_KEYS = {"FullGenerator": "gpen", "RRDBNet": "rrdbnet", "SRVGGNetCompact": "srvgg", "RetinaFace": "retinaface",
             "ParseNet": "parsenet"}
IMAGE_STEPS, IMAGE_SHARE = 2, 0.99  # the issue: 8-bit images from fp16 within 2 steps on ≥ 99 % of pixels
MIN_CHILD_S = 8  # a case needs at least this much time before the deadline to start
# Cases known to exceed their gate for a reason outside the backend: recorded as they are, with this note.
KNOWN = {("retinaface_mnet", "fp16"): "known: PyTorch's own model.half() differs from this fp32 fixture by rel-L2 "
                                      "3.6e-2 (loc) / 4.1e-2 (landms) as well (main b2fed64's measurement)",
         ("retinaface_mnet", "tf32"): "known: PyTorch with every convolution's input and weight rounded to TF32 (as "
                                      "tensor cores take them) differs from this fp32 fixture by rel-L2 3.1e-2 (loc) / "
                                      "3.5e-2 (landms) as well (CPU torch, main 2026-12-05); the real-weight "
                                      "retinaface-real case is the detector's figure"}


def forward_capabilities(enhance):
    """What this build's `enhance forward` accepts (read off --help): precisions and the timing/report flags."""
    c = Child([enhance, "forward", "--help"], 30).run()
    text = c.stdout + c.stderr
    caps = {"precisions": [p for p in ("fp32", "tf32", "fp16") if p == "fp32" or p in text],
            "report": "--report" in text, "warmup": "--warmup" in text, "runs": "--runs" in text,
            "cuda_graph": "--cuda-graph" in text, "layout": "--layout" in text, "profile": "--profile" in text,
            "devices": [d for d in ("cpu", "cuda", "reference") if d in text]}
    return caps


def discover(fixtures):
    """(case name, arch key, weights, input, {output name: expected file}) for every usable pair; skipped folders."""
    cases, skipped = [], []
    for name in sorted(os.listdir(fixtures)):
        d = os.path.join(fixtures, name)
        cfg_path = os.path.join(d, "config.json")
        if not os.path.isfile(cfg_path):
            continue
        with open(cfg_path) as fh:
            cfg = json.load(fh)
        arch = cfg.get("arch") or cfg.get("model", {}).get("arch")
        key = ARCH_KEYS.get(arch)
        weights = os.path.join(d, "weights.pth")
        if not os.path.exists(weights) and cfg.get("model", {}).get("weights"):
            weights = os.path.normpath(os.path.join(d, cfg["model"]["weights"]))
        files = set(os.listdir(d))
        pairs = []
        k = 0
        while f"input_{k}.npy" in files:
            if f"output_{k}.npy" in files:
                pairs.append((f"{name}/{k}", os.path.join(d, f"input_{k}.npy"), {"output": os.path.join(d, f"output_{k}.npy")}))
            k += 1
        if "input.npy" in files:
            # Whatever enhance writes is matched by name against the fixture's .npy files after the run.
            expected = {f[:-4]: os.path.join(d, f) for f in files if f.endswith(".npy") and f != "input.npy"}
            pairs.append((name, os.path.join(d, "input.npy"), expected))
        if key == "srvgg" and cfg.get("config", {}).get("act_type") == "leakyrelu":
            # The keys cannot tell leakyrelu from relu (no PReLU weights) and `enhance forward` detects relu; it has no
            # flag for act_type, so this pair differs on every device (rel-L2 0.03 on the CPU). The tests pass act_type.
            skipped.append({"case": name, "status": "skipped",
                            "reason": "act_type leakyrelu is not in the keys and `enhance forward` has no flag for it"})
            continue
        if key is None or not os.path.exists(weights) or not pairs:
            why = ("architecture " + str(arch) + " has no forward runner" if key is None else
                   "no weights file" if not os.path.exists(weights) else
                   "no input/output pair (input.npy or input_K.npy with output_K.npy)")
            skipped.append({"case": name, "status": "skipped", "reason": why})
            continue
        for case, inp, expected in pairs:
            cases.append({"case": case, "arch": key, "weights": weights, "input": inp, "expected": expected})
    return cases, skipped


class Parity:
    def __init__(self, a):
        self.a = a
        self.lock = threading.Lock()
        self.results = []
        self.doc = {"rehearsal": a.rehearsal, "device": a.device, "gates_rel_l2": GATES, "enhance": a.enhance,
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "cases": self.results}

    def save(self):
        with self.lock:
            res = self.results
            ran = [r for r in res if r.get("status") in ("pass", "fail", "error")]
            self.doc["counts"] = {s: sum(1 for r in res if r.get("status") == s)
                                  for s in ("pass", "fail", "error", "not-run", "skipped")}
            self.doc["all_pass"] = bool(ran) and all(r["status"] == "pass" for r in ran)
            self.doc["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            write_json(self.a.out, self.doc)

    def add(self, rec):
        with self.lock:
            self.results.append(rec)
        self.save()

    def left(self):
        return self.a.deadline - time.time() if self.a.deadline else float("inf")

    def forward(self, weights, arch, inp, outdir, device, precision, extra=()):
        os.makedirs(outdir, exist_ok=True)
        cmd = [self.a.enhance, "forward", "--weights", weights, "--arch", arch, "--input", inp, "--output", outdir,
               "--device", device, "--precision", precision, *extra]
        timeout = min(self.a.timeout, max(1.0, self.left()))
        return Child(cmd, timeout).run()

    def run_case(self, kind, case, arch, weights, inp, expected, setting, ref_dir=None):
        # a setting is a precision, optionally with a layout: "fp16-nhwc" runs --precision fp16 --layout nhwc
        precision, _, layout = setting.partition("-")
        rec = {"kind": kind, "case": case, "arch": arch, "precision": setting, "device": self.a.device,
               "gate_rel_l2": GATES[precision], "input": os.path.relpath(inp)}
        if precision not in self.caps["precisions"]:
            rec.update(status="not-run", reason=f"this build's `enhance forward` has no --precision {precision}")
            return self.add(rec)
        if layout and not self.caps.get("layout"):
            rec.update(status="not-run", reason="this build's `enhance forward` has no --layout")
            return self.add(rec)
        if layout and self.a.device != "cuda":
            rec.update(status="not-run", reason=f"--layout {layout} needs --device cuda (this run: {self.a.device})")
            return self.add(rec)
        if self.left() < MIN_CHILD_S:
            rec.update(status="not-run", reason="deadline")
            return self.add(rec)
        outdir = os.path.join(self.a.work, "parity", case.replace("/", "_"), setting)
        c = self.forward(weights, arch, inp, outdir, self.a.device, precision, ["--layout", layout] if layout else ())
        rec["seconds"] = round(c.wall_s, 3)
        if c.rc != 0:
            why = ("timed out" if c.timed_out else
                   "CUDA unavailable (exit 69)" if c.rc == 69 else f"exit {c.rc}")
            rec.update(status="error", reason=why, stderr_tail=c.stderr[-600:])
            return self.add(rec)
        rec["outputs"] = {}
        import numpy as np
        written = sorted(f[:-4] for f in os.listdir(outdir) if f.endswith(".npy"))
        for name in written:
            ref = expected.get(name) if ref_dir is None else os.path.join(ref_dir, name + ".npy")
            if ref is None or not os.path.exists(ref):
                continue
            try:
                rec["outputs"][name] = compare(np.load(os.path.join(outdir, name + ".npy")), np.load(ref))
            except Exception as e:  # noqa: BLE001
                rec["outputs"][name] = {"error": str(e)}
        if not rec["outputs"]:
            rec.update(status="error", reason=f"no written output matches the reference (wrote {written})")
            return self.add(rec)
        bad = [n for n, o in rec["outputs"].items() if "error" in o or not o.get("finite", False)]
        rels = [o["rel_l2"] for o in rec["outputs"].values() if "rel_l2" in o]
        rec["rel_l2"] = max(rels) if rels else None
        if rels:
            rec["worst_output"] = max((o["rel_l2"], n) for n, o in rec["outputs"].items() if "rel_l2" in o)[1]
        rec["max_abs"] = max((o["max_abs"] for o in rec["outputs"].values() if "max_abs" in o), default=None)
        ok = not bad and rec["rel_l2"] is not None and rec["rel_l2"] <= GATES[precision]
        rec["status"] = "pass" if ok else "fail"
        if bad:
            rec["reason"] = f"outputs with errors or non-finite values: {bad}"
        elif not ok:
            rec["reason"] = f"{rec['worst_output']}: rel-L2 {rec['rel_l2']:.3g} > {GATES[precision]:g}"
            if (case, precision) in KNOWN:
                rec["reason"] += "; " + KNOWN[(case, precision)]
        self.add(rec)
        log(f"parity {kind} {case} {setting}: {rec['status']} rel-L2 {rec['rel_l2']:.3g} max-abs {rec['max_abs']:.3g} "
            f"({rec['seconds']} s)")

    def cpu_reference(self, kind, name, run, **fields):
        """A CPU fp32 reference (oneDNN direct convolution, --ref-threads): `run(extra flags)` gives (child, result or
        None); returns the result, or None with the failure recorded."""
        if self.left() < MIN_CHILD_S:
            self.add({"kind": kind, "case": name, "status": "not-run", "reason": "deadline"})
            return None
        c, result = run(["--threads", str(self.a.ref_threads), "--no-winograd"])
        rec = {"kind": kind, "case": name, **fields, "device": "cpu", "precision": "fp32", "seconds": round(c.wall_s, 3),
               "threads": self.a.ref_threads}
        if result is None:
            rec.update(status="error", reason="timed out" if c.timed_out else f"exit {c.rc}", stderr_tail=c.stderr[-600:])
            self.add(rec)
            return None
        self.doc.setdefault("references", []).append(rec)
        log(f"parity reference {name} on the CPU ({self.a.ref_threads} threads): {rec['seconds']} s")
        return result

    def reference(self, name, arch, weights, inp):
        """enhance forward on the CPU as the full-size reference; returns its folder or None."""
        outdir = os.path.join(self.a.work, "parity", f"full_{name}", "cpu-ref")

        def run(extra):
            c = self.forward(weights, arch, inp, outdir, "cpu", "fp32", extra)
            return c, outdir if c.rc == 0 else None
        return self.cpu_reference("full-ref", name, run, arch=arch)

    def image_run(self, spec, outdir, device, precision, extra=()):
        """`enhance upscale|restore --aligned` of the case's photo into `outdir`; (child, the PNG it wrote or None)."""
        os.makedirs(outdir, exist_ok=True)
        cmd = [self.a.enhance, "upscale", spec["png"], "-m", spec["model"]] if spec["command"] == "upscale" else \
              [self.a.enhance, "restore", spec["png"], "--gpen", spec["model"], "--aligned"]
        cmd += ["-o", outdir, "--ext", "png", "--device", device, "--precision", precision, "--quiet", *extra]
        c = Child(cmd, min(self.a.timeout, max(1.0, self.left()))).run()
        pngs = sorted(f for f in os.listdir(outdir) if f.endswith(".png"))
        return c, (os.path.join(outdir, pngs[0]) if c.rc == 0 and len(pngs) == 1 else None)

    def image_reference(self, name, spec):
        """The case on the CPU in fp32: the reference image, or None."""
        return self.cpu_reference("image-ref", name,
                                  lambda extra: self.image_run(spec, os.path.join(self.a.work, "images", name, "cpu-ref"),
                                                               "cpu", "fp32", extra))

    def run_image(self, name, spec, setting, ref_png):
        precision, _, layout = setting.partition("-")
        rec = {"kind": "image", "case": name, "command": spec["command"], "model": os.path.basename(spec["model"]),
               "precision": setting, "device": self.a.device, "gated": not spec["synthetic"],
               "gate": f"≥ {IMAGE_SHARE:.0%} of pixels within {IMAGE_STEPS} steps of the CPU fp32 image"}
        if (layout or precision != "fp32") and self.a.device != "cuda":
            rec.update(status="not-run", reason=f"{setting} needs --device cuda (this run: {self.a.device})")
            return self.add(rec)
        if self.left() < MIN_CHILD_S:
            rec.update(status="not-run", reason="deadline")
            return self.add(rec)
        c, png = self.image_run(spec, os.path.join(self.a.work, "images", name, setting), self.a.device, precision,
                                ["--layout", layout] if layout else ())
        rec["seconds"] = round(c.wall_s, 3)
        if png is None:
            rec.update(status="error", reason="timed out" if c.timed_out else f"exit {c.rc}" if c.rc else "no single PNG written",
                       stderr_tail=c.stderr[-600:])
            return self.add(rec)
        m = compare_images(png, ref_png, IMAGE_STEPS)
        rec.update(m)
        ok = "error" not in m and m["within_steps"] >= IMAGE_SHARE
        rec["status"] = "pass" if ok else "fail"
        if not ok:
            rec["reason"] = m.get("error") or f"{m['within_steps']:.4%} of pixels within {IMAGE_STEPS} steps < {IMAGE_SHARE:.0%}"
        if spec["synthetic"]:
            rec["reason"] = ((rec.get("reason") or "") + "; " if not ok else "") + "synthetic weights: reported, not gated"
        self.add(rec)
        if "error" not in m:
            log(f"parity image {name} {setting}: {rec['status']} {m['within_steps']:.4%} within {IMAGE_STEPS} steps, "
                f"max {m['max_diff']}, " + ("identical" if m["identical"] else f"PSNR {m['psnr_db']:.1f} dB") + f" ({rec['seconds']} s)")

    def main(self):
        a = self.a
        self.caps = forward_capabilities(a.enhance)
        self.doc["forward_capabilities"] = self.caps
        precisions = [p for p in a.precisions.split(",") if p]
        cases, skipped = discover(a.fixtures) if a.fixtures else ([], [])
        for s in skipped:
            s["kind"] = "fixture"
            self.results.append(s)
        self.save()
        log(f"parity: {len(cases)} fixture pairs × {precisions} on {a.device}; {len(skipped)} folders skipped; "
            f"forward accepts precisions {self.caps['precisions']}")
        full = []
        for spec in filter(None, (a.full or "").split(",")):
            name, rest = spec.split("=", 1)
            arch, weights, inp = rest.split(":", 2)
            full.append((name, arch, weights, inp))
        images = []
        for spec in filter(None, (a.images or "").split(",")):
            name, rest = spec.split("=", 1)
            parts = rest.split(":")
            images.append((name, {"command": parts[0], "model": parts[1], "png": parts[2], "synthetic": "synthetic" in parts[3:]}))
        # The CPU references run one at a time beside the device children (their own executor, so they neither wait
        # for the fixtures nor hold a device slot); the images' first, they are small.
        with cf.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool, cf.ThreadPoolExecutor(max_workers=1) as cpu:
            image_refs = {name: cpu.submit(self.image_reference, name, spec) for name, spec in images}
            refs = {name: cpu.submit(self.reference, name, arch, w, inp) for name, arch, w, inp in full}
            futs = [pool.submit(self.run_case, "fixture", c["case"], c["arch"], c["weights"], c["input"], c["expected"], p)
                    for c in cases for p in precisions]
            for name, spec in images:
                ref_png = image_refs[name].result()
                for p in precisions:
                    if ref_png is None:
                        self.add({"kind": "image", "case": name, "precision": p, "status": "not-run", "reason": "no CPU reference",
                                  "gated": not spec["synthetic"]})
                    else:
                        futs.append(pool.submit(self.run_image, name, spec, p, ref_png))
            for name, arch, w, inp in full:
                ref_dir = refs[name].result()
                if ref_dir is None:
                    for p in precisions:
                        self.add({"kind": "full", "case": name, "arch": arch, "precision": p, "status": "not-run",
                                  "reason": "no CPU reference"})
                    continue
                for p in precisions:
                    futs.append(pool.submit(self.run_case, "full", name, arch, w, inp, {}, p, ref_dir))
            for f in futs:
                try:
                    f.result()
                except Exception as e:  # noqa: BLE001
                    self.add({"kind": "internal", "status": "error", "reason": repr(e)})
        self.save()
        c = self.doc["counts"]
        log(f"parity: {c['pass']} pass, {c['fail']} fail, {c['error']} error, {c['not-run']} not run, {c['skipped']} skipped")
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--enhance", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precisions", default="fp32,tf32,fp16")
    ap.add_argument("--fixtures", default="Tests/Fixtures/models")
    ap.add_argument("--full", default="", help="name=arch:weights:input,… (comma-separated)")
    ap.add_argument("--images", default="", help="name=upscale:MODEL:PNG or name=restore-aligned:GPEN:PNG[:synthetic],…")
    ap.add_argument("--ref-threads", type=int, default=16)
    ap.add_argument("--jobs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--deadline", type=float, default=0, help="absolute time (epoch seconds); 0 = none")
    ap.add_argument("--rehearsal", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    install_signal_handlers()
    return Parity(a).main()


if __name__ == "__main__":
    sys.exit(main())
