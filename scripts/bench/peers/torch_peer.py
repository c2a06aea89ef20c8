#!/usr/bin/env python3
"""PyTorch eager peer for `enhance bench`, running the same architectures and weights the way upstream does.

Real-ESRGAN uses the project's PyTorch reference (scripts/reference/rrdbnet.py and realesrganer.py, written
from upstream): RRDBNet in eval mode under no_grad, RealESRGANer.enhance with tile 0 and pre_pad 0.
GPEN runs upstream's aligned mode (FaceGAN.process on a 512 face crop: bilinear resize to the model size,
BGR uint8 -> RGB [-1,1], FullGenerator from scripts/reference/gpen.py, back to BGR uint8 by truncation); the
bench compares it with `enhance restore --aligned`. `restore` runs upstream's whole-photo FaceEnhancement.process
(no SR): RetinaFace detection (scripts/reference/retinaface.py), per face warp_and_crop_face, FaceGAN.process,
FaceParse.process (bilinear resize to 512, ParseNet, argmax, colour map), mask_postprocess, warpAffine paste-back,
max compositing and the final blend (scripts/reference/align.py); the bench compares it with `enhance restore`.

Record contract: writes <output>/<stem>_out.png and appends one JSON line per image to
<output>/results.jsonl with `input`, `output`, `status`, `timings` and `peak_rss_bytes` (on cuda also
`vram_allocated_peak_bytes` and `vram_reserved_peak_bytes`: PyTorch's counters since the models were loaded).

  torch_peer.py --check realesrgan|gpen [cuda]
  torch_peer.py realesrgan --weights FILE(.pth|.safetensors) --input IMG_OR_DIR --output DIR --threads N
  torch_peer.py gpen --weights FILE --input IMG_OR_DIR --output DIR --threads N
  torch_peer.py restore --weights GPEN --parser PARSENET --detector RETINAFACE --input IMG_OR_DIR --output DIR --threads N
  (both: --device cpu|cuda, --precision fp32|tf32|fp16 — on cuda: fp32 with TF32 off, tf32 = PyTorch's default
  cudnn.allow_tf32, fp16 = model.half(); the network runs on the device, pre/post-processing on the host as upstream;
  cuda only: --channels-last, --compile MODE)
"""
import argparse
import json
import os
import resource
import struct
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
REFERENCE = os.path.join(ROOT, "scripts", "reference")


def read_safetensors(path):
    """name -> numpy array for F32/F16/I64 safetensors files (no dependency beyond numpy)."""
    import numpy as np
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        if n > 100 << 20:
            raise ValueError(f"{path}: header of {n} bytes is implausible")
        header = json.loads(fh.read(n))
        data = fh.read()
    kinds = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(data[b:e], dtype=kinds[v["dtype"]]).reshape(v["shape"]).copy()
    return out


def png_read(path):
    """8-bit gray/RGB/RGBA non-interlaced PNG -> BGR uint8 (H, W, 3), with numpy and zlib only (cv2.imread's result for
    such files); for machines whose Python has torch but not OpenCV (the GPU device's venv may lack it)."""
    import numpy as np
    import zlib
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG (OpenCV is not installed, so only PNG inputs are read)")
    pos, idat, hdr = 8, b"", None
    while pos < len(data):
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = hdr
    channels = {0: 1, 2: 3, 6: 4}.get(ctype)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"{path}: only 8-bit gray, RGB or RGBA non-interlaced PNGs without OpenCV")
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(h, 1 + w * channels)
    out = np.zeros((h, w * channels), dtype=np.int32)
    prev = np.zeros(w * channels, dtype=np.int32)
    for y in range(h):
        f, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if f == 0:
            cur = line
        elif f == 1:  # Sub: a running sum along the row per channel (what enhance and OpenCV write at level 1)
            cur = np.cumsum(line.reshape(w, channels), axis=0).reshape(-1) & 255
        elif f == 2:
            cur = (line + prev) & 255
        else:  # Average and Paeth depend on the reconstructed left neighbour: pixel by pixel (slow, rare here)
            cur = np.zeros_like(line)
            for x in range(w * channels):
                a = cur[x - channels] if x >= channels else 0
                b, c = prev[x], (prev[x - channels] if x >= channels else 0)
                if f == 3:
                    pred = (a + b) >> 1
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[x] = (line[x] + pred) & 255
        out[y], prev = cur, cur
    img = out.astype(np.uint8).reshape(h, w, channels)
    if channels == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[:, :, 2::-1] if channels >= 3 else img)


def png_write(path, bgr):
    """BGR uint8 (H, W, 3) -> 8-bit RGB PNG (filter 0), numpy and zlib only."""
    import numpy as np
    import zlib
    h, w, _ = bgr.shape
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                 + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def imread(path):
    """cv2.imread(path, IMREAD_COLOR); without OpenCV, Pillow; without either, png_read."""
    try:
        import cv2
    except ImportError:
        try:
            import numpy as np
            from PIL import Image
            return np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB"))[:, :, ::-1])
        except ImportError:
            return png_read(path)
    return cv2.imread(path, cv2.IMREAD_COLOR)


def imwrite(path, img):
    try:
        import cv2
    except ImportError:
        return png_write(path, img)
    return cv2.imwrite(path, img)


def load_state(path):
    import torch
    if path.endswith(".safetensors"):
        return {k: torch.from_numpy(v) for k, v in read_safetensors(path).items()}
    sd = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("params_ema", "params"):
        if isinstance(sd, dict) and key in sd:
            return sd[key]
    return sd


def check(kind, device="cpu"):
    try:
        import torch  # noqa: F401
        if kind == "restore":
            import cv2  # noqa: F401  (warpAffine and friends; realesrgan and gpen fall back to a numpy PNG codec)
    except Exception as e:  # noqa: BLE001
        print(f"torch peer unavailable: {e}", file=sys.stderr)
        return 3
    if device == "cuda" and not torch.cuda.is_available():
        print(f"torch peer: this torch ({torch.__version__}) has no usable CUDA device", file=sys.stderr)
        return 5
    needed = {"realesrgan": ("rrdbnet.py", "realesrganer.py"), "gpen": ("gpen.py",),
              "restore": ("gpen.py", "parsenet.py", "retinaface.py", "align.py")}[kind]
    ok = all(os.path.exists(os.path.join(REFERENCE, f)) for f in needed)
    if not ok:
        print(f"torch peer: the PyTorch reference for {kind} is not in {REFERENCE}", file=sys.stderr)
    return 0 if ok else 4


def on_device(model, a):
    """`model` moved to a.device in a.precision, behind a module that takes and returns host float32 tensors (the
    copy back synchronises, so timings include the GPU work)."""
    import torch
    if a.device == "cpu":
        if a.precision != "fp32" or a.channels_last or a.compile:
            raise SystemExit(f"--precision {a.precision}, --channels-last and --compile need --device cuda")
        return model
    # tf32 = PyTorch's defaults: TF32 in cuDNN convolutions, not in matmul (as scripts/device/torch_cuda_peer.py)
    torch.backends.cudnn.allow_tf32 = a.precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = False
    dtype = torch.float16 if a.precision == "fp16" else torch.float32
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    inner = model.to(a.device, dtype).to(memory_format=fmt)
    if a.compile:
        # compiled at the first forward of every process (inductor's on-disk cache, filled by the bench's warm-up,
        # shortens later ones): its time is inside the run, as for a user's one-shot command
        inner = torch.compile(inner, mode=a.compile)

    class OnDevice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            y = self.inner(x.to(a.device, dtype).contiguous(memory_format=fmt))
            if isinstance(y, (tuple, list)):
                return type(y)(t.float().cpu() if torch.is_tensor(t) else t for t in y)
            return y.float().cpu()

    return OnDevice().eval()


def run_realesrgan(a):
    import torch
    sys.path.insert(0, REFERENCE)
    from realesrganer import RealESRGANer
    from rrdbnet import RRDBNet
    t0 = time.perf_counter()
    torch.set_num_threads(a.threads)
    sd = load_state(a.weights)
    cin = sd["conv_first.weight"].shape[1]
    scale = {3: 4, 12: 2, 48: 1}[cin]
    blocks = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("body."))
    model = RRDBNet(num_in_ch=3, num_out_ch=3, scale=scale, num_feat=64, num_block=blocks, num_grow_ch=32)
    model.load_state_dict(sd, strict=True)
    model.eval()
    upsampler = RealESRGANer(scale, on_device(model, a), tile=0, tile_pad=10, pre_pad=0)

    def upscale(img):
        with torch.no_grad():
            out = upsampler.enhance(img)
        return out[0] if isinstance(out, tuple) else out

    return run_files(a, time.perf_counter() - t0, "upscale", upscale)


def run_gpen_aligned(a):
    import numpy as np
    import torch
    sys.path.insert(0, REFERENCE)
    t0 = time.perf_counter()
    torch.set_num_threads(a.threads)
    model, size = load_gpen(a.weights, a)

    def restore(img):
        if img.shape[:2] != (size, size):
            import cv2  # the bench's aligned input is already size×size; other sizes need OpenCV's bilinear resize
            img = cv2.resize(img, (size, size))
        x = img
        x = torch.from_numpy(x.astype(np.float32) / 255.0)
        x = ((x - 0.5) / 0.5).permute(2, 0, 1).unsqueeze(0).flip(1)
        with torch.no_grad():
            y = model(x)
        if isinstance(y, tuple):
            y = y[0]
        y = (y * 0.5 + 0.5).squeeze(0).flip(0).permute(1, 2, 0).clamp(0, 1).numpy()
        return (y * 255).astype(np.uint8)

    return run_files(a, time.perf_counter() - t0, "restore", restore)


def load_gpen(path, a):
    """FullGenerator for a GPEN-BFR-512/256 state dict (size from the encoder depth) on a.device; returns (model, size)."""
    import torch
    from gpen import FullGenerator
    sd = load_state(path)
    n_ecd = sum(1 for k in sd if k.startswith("ecd") and k.endswith(".weight"))
    size = 2 ** (n_ecd + 1)  # ecd0 … ecd{L-2}: L - 1 convs, L = log2(size)
    cm, narrow = (1, 0.5) if size == 256 else (2, 1.0)
    model = FullGenerator(size, 512, 8, cm, narrow=narrow)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=True)
    return on_device(model.eval(), a), size


def run_restore(a):
    """Upstream's FaceEnhancement.process without SR on whole photos (stages: detect, restore, parse, paste)."""
    import cv2
    import numpy as np
    import torch
    sys.path.insert(0, REFERENCE)
    from align import enhance_faces
    from gpen import facegan_img2tensor, facegan_tensor2img
    from parsenet import ParseNet, faceparse_img2tensor, mask_from_logits
    from retinaface import CFG_MNET, CFG_RE50, RetinaFace, detect, strip_module
    t0 = time.perf_counter()
    torch.set_num_threads(a.threads)
    gpen, size = load_gpen(a.weights, a)
    parser = ParseNet(512, 512, 32, 64, 19, 10, "LeakyReLU", "bn", (32, 256))
    parser.load_state_dict(load_state(a.parser), strict=True)
    parser = on_device(parser.eval(), a)
    dsd = strip_module(load_state(a.detector))
    cfg = CFG_MNET if any(k.startswith("body.stage1") for k in dsd) else CFG_RE50
    detector = RetinaFace(cfg)
    detector.load_state_dict(dsd, strict=True)
    detector = on_device(detector.eval(), a)
    stages = {}

    def timed(name, f):
        def g(*args):
            t = time.perf_counter()
            r = f(*args)
            stages[name] = stages.get(name, 0.0) + time.perf_counter() - t
            return r
        return g

    def restore_face(of):
        with torch.no_grad():
            y = gpen(facegan_img2tensor(of))
        return facegan_tensor2img(y[0] if isinstance(y, tuple) else y)

    def parse(ef):
        with torch.no_grad():
            logits, _ = parser(faceparse_img2tensor(cv2.resize(ef, (512, 512))))
        return mask_from_logits(logits)

    def whole(img):
        stages.clear()
        t = time.perf_counter()
        dets, landms = timed("detect", lambda im: detect(detector, im, cfg))(img)
        out, _ = enhance_faces(img, dets, landms, timed("restore", restore_face), timed("parse", parse), in_size=size)
        stages["paste"] = time.perf_counter() - t - sum(stages.values())
        stages["faces"] = float(len([d for d in dets if d[4] >= 0.9]))
        return out

    return run_files(a, time.perf_counter() - t0, "total", whole, extra=stages)


def run_files(a, load_s, stage, compute, extra=None):
    """Runs `compute` (BGR uint8 image -> BGR uint8 image) on every input file and appends one record per file to
    <output>/results.jsonl: decode, `stage` and encode seconds, the model load time on the first record, the
    process's peak RSS; on cuda also PyTorch's own device counters since the models were loaded
    (`vram_allocated_peak_bytes` = max_memory_allocated, `vram_reserved_peak_bytes` = max_memory_reserved)."""
    files = sorted(os.path.join(a.input, f) for f in os.listdir(a.input)) if os.path.isdir(a.input) else [a.input]
    os.makedirs(a.output, exist_ok=True)
    cuda = None
    if getattr(a, "device", "cpu") == "cuda":
        import torch
        cuda = torch.cuda
        cuda.synchronize()
        cuda.reset_peak_memory_stats()
    for f in files:
        rec = {"input": f, "status": "ok", "timings": {"load": load_s}}
        try:
            t = time.perf_counter()
            img = imread(f)
            if img is None:
                raise ValueError("cannot decode")
            rec["timings"]["decode"] = time.perf_counter() - t
            t = time.perf_counter()
            out = compute(img)
            rec["timings"][stage] = time.perf_counter() - t
            for k, v in (extra or {}).items():
                if k == "faces":
                    rec["faces"] = int(v)
                else:
                    rec["timings"][k] = v
            t = time.perf_counter()
            dst = os.path.join(a.output, os.path.splitext(os.path.basename(f))[0] + "_out.png")
            imwrite(dst, out)
            rec["timings"]["encode"] = time.perf_counter() - t
            rec["output"] = dst
        except Exception as e:  # noqa: BLE001
            rec["status"], rec["error"] = "failed", str(e)
        rec["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if cuda is not None:
            rec["vram_allocated_peak_bytes"] = cuda.max_memory_allocated()
            rec["vram_reserved_peak_bytes"] = cuda.max_memory_reserved()
        with open(os.path.join(a.output, "results.jsonl"), "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        load_s = 0.0
    return 0


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "--check":
        return check(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "cpu")
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["realesrgan", "gpen", "restore"])
    ap.add_argument("--parser", help="ParseNet weights (restore)")
    ap.add_argument("--detector", help="RetinaFace weights in the PyTorch key layout (restore)")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--precision", choices=["fp32", "tf32", "fp16"], default="fp32")
    ap.add_argument("--channels-last", action="store_true", help="cuda: model and input in channels_last (NHWC)")
    ap.add_argument("--compile", metavar="MODE", help="cuda: torch.compile(model, mode=MODE), e.g. default")
    a = ap.parse_args()
    if check(a.kind, a.device) != 0:
        return 3
    if a.kind == "restore":
        if not (a.parser and a.detector):
            ap.error("restore needs --parser and --detector")
        return run_restore(a)
    return run_gpen_aligned(a) if a.kind == "gpen" else run_realesrgan(a)


if __name__ == "__main__":
    sys.exit(main())
