"""Shared helpers of the device check (scripts/device-check): children with hard timeouts, comparisons, statistics,
seeded inputs, atomic JSON writes and the memory samplers (NVML, nvidia-smi, RSS for rehearsals).

Only the standard library and numpy; never imports torch (the harness must not create a CUDA context of its own).
"""
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

GIB = 1024 ** 3
MIB = 1024 ** 2


def log(msg):
    print(time.strftime("%H:%M:%S") + " " + msg, flush=True)


def strict(obj):
    """obj with every NaN or infinite float as None: strict JSON (Python writes `Infinity`, which JSON readers refuse;
    a non-finite output keeps its `"finite": false` and its failed status)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    return obj


def write_json(path, obj):
    """Atomic: write a sibling temporary file, then rename (a timeout never leaves half a file). Strict JSON."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(strict(obj), fh, indent=1, sort_keys=False, default=str, allow_nan=False)
        fh.write("\n")
    os.replace(tmp, path)


def append_jsonl(path, obj):
    with open(path, "a") as fh:
        fh.write(json.dumps(strict(obj), default=str, allow_nan=False) + "\n")
        fh.flush()


def read_json(path, default=None):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return default


def read_jsonl(path):
    out = []
    try:
        with open(path) as fh:
            for line in fh:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
    except OSError:
        pass
    return out


def tail(text, n=1500):
    text = text or ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text[-n:]


_ACTIVE = set()          # Popen objects of running children (own process groups), for kill_all
_ACTIVE_LOCK = threading.Lock()


def _register(proc):
    with _ACTIVE_LOCK:
        _ACTIVE.add(proc)


def _unregister(proc):
    with _ACTIVE_LOCK:
        _ACTIVE.discard(proc)


def kill_all():
    """SIGKILL every registered child's process group (they run in sessions of their own, which the run tool would
    leave running after the command returns)."""
    with _ACTIVE_LOCK:
        procs = list(_ACTIVE)
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def install_signal_handlers():
    """On SIGTERM/SIGINT/SIGHUP (e.g. the script's outer `timeout`): kill the children's groups, then exit."""
    def handler(signum, _frame):
        kill_all()
        log(f"signal {signum}: children killed, exiting")
        raise SystemExit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, handler)
    import atexit
    atexit.register(kill_all)


class Child:
    """One child process in its own process group, killed as a group (TERM, then KILL) at its timeout."""

    def __init__(self, cmd, timeout, env=None, cwd=None):
        self.cmd = [str(c) for c in cmd]
        self.timeout = max(1.0, float(timeout))
        self.env = env
        self.cwd = cwd
        self.proc = None
        self.rc = None
        self.timed_out = False
        self.stdout = ""
        self.stderr = ""
        self.wall_s = None

    def start(self):
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env,
                                     cwd=self.cwd, start_new_session=True)
        _register(self.proc)
        return self.proc.pid

    def wait(self):
        try:
            out, err = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.timed_out = True
            self._kill()
            try:
                out, err = self.proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                out, err = b"", b"(no output: the child did not die after SIGKILL within 10 s)"
        self.wall_s = time.monotonic() - self.t0
        _unregister(self.proc)
        self.rc = self.proc.returncode
        self.stdout = (out or b"").decode("utf-8", "replace")
        self.stderr = (err or b"").decode("utf-8", "replace")
        return self

    def _kill(self):
        for sig, pause in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 0.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + pause
            while time.monotonic() < deadline and self.proc.poll() is None:
                time.sleep(0.05)
            if self.proc.poll() is not None:
                return

    def run(self):
        self.start()
        return self.wait()

    def summary(self):
        return {"cmd": " ".join(self.cmd), "rc": self.rc, "timed_out": self.timed_out,
                "wall_s": None if self.wall_s is None else round(self.wall_s, 3),
                "stderr_tail": tail(self.stderr, 800), "stdout_tail": tail(self.stdout, 400)}


def quantile(xs, q):
    """Linear interpolation between closest ranks (NumPy's default), as docs/bench.md's median and p95."""
    xs = sorted(float(x) for x in xs)
    if not xs:
        return None
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def compare(actual, expected):
    """max-abs and relative L2 (‖a−b‖/‖b‖, in float64) of two arrays; shapes must agree."""
    import numpy as np
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    if a.shape != b.shape:
        return {"error": f"shape {list(a.shape)} != expected {list(b.shape)}"}
    finite = bool(np.isfinite(a).all())
    diff = a - b
    nb = float(np.linalg.norm(b))
    nd = float(np.linalg.norm(diff)) if finite else float("inf")
    rel = nd / nb if nb > 0 else (0.0 if nd == 0 else float("inf"))
    return {"shape": list(a.shape), "max_abs": float(np.abs(diff).max()) if finite and a.size else (0.0 if finite else float("inf")),
            "rel_l2": rel, "finite": finite}


def make_input(path, shape, low, high, seed):
    """Seeded uniform float32 NCHW input (numpy default_rng), written as .npy; reused when already there."""
    import numpy as np
    if os.path.exists(path):
        return path
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, high, size=shape).astype(np.float32)
    tmp = path + ".tmp.npy"
    np.save(tmp, x)
    os.replace(tmp, path)
    return path


def _image_io():
    """scripts/bench/peers/torch_peer.py's imread/imwrite (cv2, else Pillow, else numpy + zlib; no torch import)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "peers"))
    import torch_peer
    return torch_peer


def crop_photo(src, dst, y0, x0, h, w):
    """A crop of a photo written as PNG (the 8-bit image parity's inputs); reused when already there."""
    import numpy as np
    if os.path.exists(dst):
        return dst
    io = _image_io()
    img = io.imread(src)[y0:y0 + h, x0:x0 + w]
    if img.shape[:2] != (h, w):
        raise ValueError(f"{src}: crop {h}x{w} at ({y0}, {x0}) leaves the image ({img.shape[0]}x{img.shape[1]})")
    tmp = dst + ".tmp.png"
    io.imwrite(tmp, np.ascontiguousarray(img))
    os.replace(tmp, dst)
    return dst


def compare_images(actual, expected, steps=2):
    """8-bit agreement of two image files: the share of pixels whose every channel is within `steps` of the
    reference (the issue: fp16 within 2 steps on ≥ 99 % of pixels), the largest and mean channel difference and
    PSNR in dB. Sizes must agree."""
    import numpy as np
    io = _image_io()
    a = np.asarray(io.imread(actual), dtype=np.int16)
    b = np.asarray(io.imread(expected), dtype=np.int16)
    if a.shape != b.shape:
        return {"error": f"size {list(a.shape)} != reference {list(b.shape)}"}
    d = np.abs(a - b)
    mse = float((d.astype(np.float64) ** 2).mean())
    # identical images: PSNR null (JSON has no infinity), `identical` true
    return {"shape": list(a.shape), "steps": steps, "within_steps": float((d.max(axis=2) <= steps).mean()),
            "max_diff": int(d.max()), "mean_abs": float(d.mean()), "identical": mse == 0,
            "psnr_db": None if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)}


def photo_input(png, path, crop=None):
    """A PNG as RetinaFace's input: float32 NCHW BGR minus (104, 117, 123), optionally cropped (y0, x0, h, w)."""
    import numpy as np
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "peers"))
    from torch_peer import imread  # cv2, else Pillow, else numpy + zlib; torch_peer imports torch only when used
    bgr = imread(png).astype(np.float32)
    if crop:
        y0, x0, h, w = crop
        bgr = bgr[y0:y0 + h, x0:x0 + w]
    x = np.ascontiguousarray((bgr - np.array([104, 117, 123], np.float32)).transpose(2, 0, 1)[None])
    tmp = path + ".tmp.npy"
    np.save(tmp, x)
    os.replace(tmp, path)
    return path


def renoise_safetensors(src, dst, keys, seed):
    """Copies a safetensors file, replacing each tensor in `keys` by seeded normal noise with He scale
    (std = sqrt(2 / fan_in)). The synthetic RealESRGAN_x2plus carries the image through channels 0-2 only, and its
    conv_last reads nothing else, so its output does not depend on the 23 RRDB blocks; with conv_last re-noised it
    does, and a parity check then covers the whole network. Reused when `dst` exists."""
    import numpy as np
    if os.path.exists(dst):
        return dst
    with open(src, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n))
        data = bytearray(fh.read())
    rng = np.random.default_rng(seed)
    for k in keys:
        v = header[k]
        if v["dtype"] != "F32":
            raise ValueError(f"{src}: {k} is {v['dtype']}, not F32")
        b, e = v["data_offsets"]
        shape = v["shape"]
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        data[b:e] = rng.normal(0.0, (2.0 / fan_in) ** 0.5, size=shape).astype("<f4").tobytes()
    meta = header.get("__metadata__") or {}
    meta["device_check"] = f"{os.path.basename(src)} with {', '.join(keys)} re-noised (seed {seed})"
    header["__metadata__"] = {k: str(v) for k, v in meta.items()}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    tmp = dst + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(len(raw).to_bytes(8, "little"))
        fh.write(raw)
        fh.write(data)
    os.replace(tmp, dst)
    return dst


# ---------------------------------------------------------------- memory samplers

class Sampler:
    """Peak of a memory figure while a child runs, minus an idle baseline taken right before it starts.

    kinds: nvml (device-level `used` from nvidia-ml-py, 10 ms; also the child's per-process figure when NVML lists
    it), smi (`nvidia-smi --query-gpu=memory.used -lms 10`), rss (the largest VmHWM in the child's process group,
    for CPU rehearsals), none.
    """

    def __init__(self, kind="auto", device_index=0, period_s=0.01):
        self.period = period_s
        self.index = device_index
        self.kind = "none"
        self.note = ""
        self.total_bytes = None
        self._nvml = None
        if kind == "rss":
            self.kind = "rss"
            return
        if kind == "none":
            return
        if kind in ("auto", "nvml"):
            try:
                import pynvml  # nvidia-ml-py
                pynvml.nvmlInit()
                self._h = pynvml.nvmlDeviceGetHandleByIndex(device_index)
                self.total_bytes = int(pynvml.nvmlDeviceGetMemoryInfo(self._h).total)
                self._nvml = pynvml
                self.kind = "nvml"
                return
            except Exception as e:  # noqa: BLE001
                self.note = f"nvml unavailable: {e}"
                if kind == "nvml":
                    return
        try:
            r = subprocess.run(["nvidia-smi", f"--id={device_index}", "--query-gpu=memory.used,memory.total",
                                "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=20)
            if r.returncode == 0 and r.stdout.strip():
                self.total_bytes = int(float(r.stdout.split(",")[1])) * MIB
                self.kind = "smi"
                return
            self.note += f"; nvidia-smi rc {r.returncode}: {tail(r.stderr, 200)}"
        except Exception as e:  # noqa: BLE001
            self.note += f"; nvidia-smi unavailable: {e}"

    def used_now(self):
        if self.kind == "nvml":
            return int(self._nvml.nvmlDeviceGetMemoryInfo(self._h).used)
        if self.kind == "smi":
            r = subprocess.run(["nvidia-smi", f"--id={self.index}", "--query-gpu=memory.used",
                                "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=20)
            return int(float(r.stdout.strip().splitlines()[0])) * MIB
        return 0

    def baseline(self, seconds=0.3):
        if self.kind not in ("nvml", "smi"):
            return 0
        vals = []
        end = time.monotonic() + seconds
        while time.monotonic() < end or not vals:
            try:
                vals.append(self.used_now())
            except Exception:  # noqa: BLE001
                break
            time.sleep(self.period if self.kind == "nvml" else 0.1)
        vals.sort()
        return vals[len(vals) // 2] if vals else 0

    def measure(self, child):
        """Runs `child` (a Child) under the sampler. Returns a dict of figures (bytes)."""
        base = self.baseline()
        res = {"sampler": self.kind, "baseline_bytes": base, "samples": 0}
        stop = threading.Event()
        peak = {"dev": None, "proc": None, "rss": None}
        smi = None
        pid_holder = {}

        def poll_nvml():
            while not stop.is_set():
                try:
                    u = int(self._nvml.nvmlDeviceGetMemoryInfo(self._h).used)
                    peak["dev"] = u if peak["dev"] is None else max(peak["dev"], u)
                    res["samples"] += 1
                    pid = pid_holder.get("pid")
                    if pid is not None and res["samples"] % 5 == 0:
                        for getter in ("nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses"):
                            fn = getattr(self._nvml, getter, None)
                            if fn is None:
                                continue
                            try:
                                for p in fn(self._h):
                                    if p.pid == pid and p.usedGpuMemory is not None:
                                        peak["proc"] = max(peak["proc"] or 0, int(p.usedGpuMemory))
                            except Exception:  # noqa: BLE001
                                pass
                            break
                except Exception:  # noqa: BLE001
                    pass
                stop.wait(self.period)

        def poll_smi():
            for line in smi.stdout:
                try:
                    u = int(float(line.strip())) * MIB
                except ValueError:
                    continue
                peak["dev"] = u if peak["dev"] is None else max(peak["dev"], u)
                res["samples"] += 1

        def poll_rss():
            # The largest VmHWM of any process in the child's process group (wrappers exec or spawn the real work).
            while not stop.is_set():
                pgid = pid_holder.get("pid")
                if pgid is not None:
                    for entry in os.listdir("/proc"):
                        if not entry.isdigit():
                            continue
                        try:
                            with open(f"/proc/{entry}/stat") as fh:
                                if int(fh.read().rsplit(")", 1)[1].split()[2]) != pgid:
                                    continue
                            with open(f"/proc/{entry}/status") as fh:
                                for line in fh:
                                    if line.startswith("VmHWM:"):
                                        peak["rss"] = max(peak["rss"] or 0, int(line.split()[1]) * 1024)
                                        res["samples"] += 1
                        except (OSError, ValueError, IndexError):
                            pass
                stop.wait(0.02)

        thread = None
        if self.kind == "nvml":
            thread = threading.Thread(target=poll_nvml, daemon=True)
        elif self.kind == "smi":
            smi = subprocess.Popen(["nvidia-smi", f"--id={self.index}", "--query-gpu=memory.used",
                                    "--format=csv,noheader,nounits", "-lms", "10"],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
            _register(smi)
            thread = threading.Thread(target=poll_smi, daemon=True)
        elif self.kind == "rss":
            thread = threading.Thread(target=poll_rss, daemon=True)
        if thread:
            thread.start()
        try:
            pid_holder["pid"] = child.start()
            child.wait()
        finally:
            stop.set()
            if smi is not None:
                try:
                    os.killpg(smi.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    smi.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(smi.pid, signal.SIGKILL)
                _unregister(smi)
            if thread:
                thread.join(timeout=5)
        if peak["dev"] is not None:
            res["device_peak_bytes"] = peak["dev"]
            res["process_peak_bytes"] = max(0, peak["dev"] - base)
        if peak["proc"] is not None:
            res["nvml_process_peak_bytes"] = peak["proc"]
        if peak["rss"] is not None:
            res["rss_peak_bytes"] = peak["rss"]
            res["process_peak_bytes"] = peak["rss"]
        return res


def host_memory_total():
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


if __name__ == "__main__":
    # `devlib.py input PATH N C H W LOW HIGH SEED`: writes a seeded uniform input (used by scripts/device-check).
    if len(sys.argv) == 10 and sys.argv[1] == "input":
        _, _, p, n, c, h, w, lo, hi, seed = sys.argv
        make_input(p, (int(n), int(c), int(h), int(w)), float(lo), float(hi), int(seed))
        print(p)
    elif len(sys.argv) in (4, 8) and sys.argv[1] == "photo":
        # `devlib.py photo PNG PATH [Y0 X0 H W]`: a photo as RetinaFace's input (BGR minus the mean, NCHW)
        print(photo_input(sys.argv[2], sys.argv[3], tuple(map(int, sys.argv[4:8])) if len(sys.argv) == 8 else None))
    elif len(sys.argv) == 8 and sys.argv[1] == "crop":
        # `devlib.py crop SRC DST Y0 X0 H W`: a PNG crop of a photo
        print(crop_photo(sys.argv[2], sys.argv[3], *map(int, sys.argv[4:8])))
    elif len(sys.argv) >= 6 and sys.argv[1] == "renoise":
        # `devlib.py renoise SRC DST SEED KEY...`
        print(renoise_safetensors(sys.argv[2], sys.argv[3], sys.argv[5:], int(sys.argv[4])))
    else:
        print(__doc__)
        sys.exit(2)
