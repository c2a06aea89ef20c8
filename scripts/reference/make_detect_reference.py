#!/usr/bin/env python3
"""Reference faces for `enhance detect`: GPEN's detect() (our PyTorch RetinaFace in retinaface.py) with the real
RetinaFace-MobileNet-0.25 weights that scripts/setup converts, on the offline photos.

  make_detect_reference.py [ASSETS_DIR] [OUT.json]
  (defaults: .cache/assets and Tests/Fixtures/faces/detect_reference.json; needs torch, numpy, safetensors and
  opencv-python-headless: images are read with cv2.imread as GPEN reads them, BGR, EXIF orientation applied)

Scores are written as detect() returns them: divided by the detection downscale on images over 1500 px (GPEN's
dets/ss), so they exceed 1 there; `downscale` records that factor.
"""
import hashlib
import json
import os
import sys

import cv2
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from retinaface import CFG_MNET, RetinaFace, detect, strip_module  # noqa: E402

PHOTOS = ["t1.jpg", "astronaut.png", "obama.jpg", "biden.jpg"]
WEIGHTS = "RetinaFace-mnet025.safetensors"


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def load_net(path):
    net = RetinaFace(CFG_MNET).eval()
    state = strip_module(load_file(path))
    own = net.state_dict()
    for k, v in state.items():
        if k not in own:
            raise SystemExit(f"{path}: unexpected key {k}")
        if tuple(own[k].shape) != tuple(v.shape):
            raise SystemExit(f"{path}: {k} has shape {tuple(v.shape)}, the model wants {tuple(own[k].shape)}")
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise SystemExit(f"{path}: missing keys {missing[:5]}")
    net.load_state_dict(state, strict=False)
    return net


def main(argv):
    assets = argv[1] if len(argv) > 1 else ".cache/assets"
    out = argv[2] if len(argv) > 2 else "Tests/Fixtures/faces/detect_reference.json"
    torch.set_num_threads(2)
    weights = os.path.join(assets, WEIGHTS)
    net = load_net(weights)
    images = {}
    for name in PHOTOS:
        path = os.path.join(assets, name)
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f"{path}: cannot read the image")
        h, w = img.shape[:2]
        dets, landms = detect(net, img, CFG_MNET, conf_thr=0.9, nms_thr=0.4)
        faces = []
        for d, lm in zip(dets, landms):
            faces.append({"box": [round(float(v), 3) for v in d[:4]], "score": round(float(d[4]), 6),
                          "landmarks": [[round(float(lm[k]), 3), round(float(lm[k + 5]), 3)] for k in range(5)]})
        downscale = 1000.0 / max(h, w) if max(h, w) > 1500 else 1.0
        images[name] = {"width": w, "height": h, "sha256": sha256(path), "downscale": downscale, "faces": faces}
        print(f"{name}: {w}x{h}, {len(faces)} faces", file=sys.stderr)
    doc = {"weights": WEIGHTS, "weights_sha256": sha256(weights), "threshold": 0.9, "nms": 0.4,
           "made_by": "scripts/reference/make_detect_reference.py (GPEN detect() in PyTorch " + torch.__version__ + ")",
           "images": images}
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv)
