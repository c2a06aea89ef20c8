"""Shared helpers for the reference scripts: repo paths, error metrics, seeding."""
import os
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
GOLDEN = os.environ.get("ENHANCE_GOLDEN", os.path.abspath(os.path.join(ROOT, "..", "shared", "golden")))
if not os.path.isdir(GOLDEN):
    GOLDEN = "/work/shared/golden"
ASSETS = os.environ.get("ENHANCE_ASSETS", os.path.join(ROOT, ".cache", "assets"))


def setup_torch(threads: int = 2):
    """Deterministic CPU settings used by every reference script."""
    torch.set_num_threads(threads)
    # (no use_deterministic_algorithms: it changes the CPU conv path vs upstream runs)


def errors(out: np.ndarray, ref: np.ndarray) -> dict:
    """max |out-ref|, relative L2 ||out-ref||/||ref||, count of differing values."""
    o = out.astype(np.float64)
    r = ref.astype(np.float64)
    if o.shape != r.shape:
        return {"shape": f"{o.shape} vs {r.shape}", "max_abs": float("nan"), "rel": float("nan"), "ndiff": -1}
    d = np.abs(o - r)
    n = np.linalg.norm(r)
    return {"max_abs": float(d.max()) if d.size else 0.0,
            "rel": float(np.linalg.norm(o - r) / n) if n > 0 else float(d.max()),
            "ndiff": int((d > 0).sum()), "n": int(d.size)}
