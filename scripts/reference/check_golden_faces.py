"""Face-model parts of check_golden.py: GPEN FullGenerator + FaceGAN, RetinaFace mnet, ParseNet."""
import json
import os

import numpy as np
import torch

from gpen import FullGenerator, facegan_img2tensor, facegan_process
from parsenet import ParseNet, faceparse_img2tensor, mask_from_logits
from retinaface import CFG_MNET, RetinaFace, detect, priors, strip_module


def run(g, report, want):
    run_models(g, report, want)
    run_align(g, report, want)


def run_models(g, report, want):
    if want("gpen_fullgenerator"):
        d = os.path.join(g, "gpen_fullgenerator")
        c = json.load(open(os.path.join(d, "config.json")))["config"]
        m = FullGenerator(c["size"], c["style_dim"], c["n_mlp"], c["channel_multiplier"], tuple(c["blur_kernel"]),
                          c["lr_mlp"], c["isconcat"], c["narrow"]).eval()
        m.load_state_dict(torch.load(os.path.join(d, "weights.pth"), weights_only=True), strict=True)
        with torch.no_grad():
            report("gpen_fullgenerator", "output.npy", m(torch.from_numpy(np.load(os.path.join(d, "input.npy")))).numpy(),
                   np.load(os.path.join(d, "output.npy")))
            face = np.load(os.path.join(d, "facegan_in_bgr.npy"))
            t = facegan_img2tensor(face)
            report("gpen_fullgenerator", "facegan_in_tensor.npy", t.numpy(), np.load(os.path.join(d, "facegan_in_tensor.npy")))
            report("gpen_fullgenerator", "facegan_raw_out.npy", m(t).numpy(), np.load(os.path.join(d, "facegan_raw_out.npy")))
        report("gpen_fullgenerator", "facegan_out_bgr.npy", facegan_process(m, face),
               np.load(os.path.join(d, "facegan_out_bgr.npy")))
    if want("retinaface_mnet"):
        d = os.path.join(g, "retinaface_mnet")
        net = RetinaFace(CFG_MNET).eval()
        net.load_state_dict(strip_module(torch.load(os.path.join(d, "weights.pth"), weights_only=True)), strict=True)
        img = np.load(os.path.join(d, "image_bgr.npy"))
        x = np.float32(img) - np.float32([104, 117, 123])
        x = np.ascontiguousarray(x.transpose(2, 0, 1))[None]
        report("retinaface_mnet", "input.npy", x, np.load(os.path.join(d, "input.npy")))
        with torch.no_grad():
            outs = net(torch.from_numpy(x))
        for name, o in zip(["loc.npy", "conf.npy", "landms.npy"], outs):
            report("retinaface_mnet", name, o.numpy(), np.load(os.path.join(d, name)))
        report("retinaface_mnet", "priors.npy", priors(CFG_MNET, img.shape[0], img.shape[1]).numpy(),
               np.load(os.path.join(d, "priors.npy")))
        dets, lm = detect(net, img, CFG_MNET)
        report("retinaface_mnet", "detect_dets.npy", dets, np.load(os.path.join(d, "detect_dets.npy")))
        report("retinaface_mnet", "detect_landms.npy", lm, np.load(os.path.join(d, "detect_landms.npy")))
    if want("parsenet"):
        d = os.path.join(g, "parsenet")
        c = json.load(open(os.path.join(d, "config.json")))["config"]
        net = ParseNet(**c).eval()
        net.load_state_dict(torch.load(os.path.join(d, "weights.pth"), weights_only=True), strict=True)
        img = np.load(os.path.join(d, "image_bgr.npy"))
        x = faceparse_img2tensor(img)
        report("parsenet", "input.npy", x.numpy(), np.load(os.path.join(d, "input.npy")))
        with torch.no_grad():
            mask, im = net(x)
        report("parsenet", "out_mask.npy", mask.numpy(), np.load(os.path.join(d, "out_mask.npy")))
        report("parsenet", "out_img.npy", im.numpy(), np.load(os.path.join(d, "out_img.npy")))
        report("parsenet", "mask_uint8.npy", mask_from_logits(mask), np.load(os.path.join(d, "mask_uint8.npy")))


def run_align(g, report, want):
    if not want("align_paste"):
        return
    try:
        import cv2  # noqa: F401
    except ImportError:
        print("align_paste skipped: needs cv2")
        return
    from align import enhance_faces, mask_postprocess, reference_points, similarity, warp_and_crop_face
    d = os.path.join(g, "align_paste")
    cfg = json.load(open(os.path.join(d, "config.json")))
    L = lambda n: np.load(os.path.join(d, n))
    img = L("image_bgr.npy")
    for s in (512, 256):
        report("align_paste", f"ref_pts_{s}.npy", reference_points(s), L(f"ref_pts_{s}.npy"))
    lm = np.float32(cfg["cases"][0]["faces"][0]["landmarks_x1x5_y1y5"]).reshape(2, 5)
    for s in (512, 256):
        crop, tfm, tfm_inv = warp_and_crop_face(img, lm, reference_points(s), s)
        report("align_paste", f"face_{s}_tfm.npy", tfm, L(f"face_{s}_tfm.npy"))
        report("align_paste", f"face_{s}_tfm_inv.npy", tfm_inv, L(f"face_{s}_tfm_inv.npy"))
        report("align_paste", f"face_{s}_crop.npy", crop, L(f"face_{s}_crop.npy"))
    pm = L("parse_mask.npy")
    report("align_paste", "mask_post.npy", mask_postprocess(pm / 255.0), L("mask_post.npy"))
    for case in cfg["cases"]:
        dets = np.float32([f["box_x1y1x2y2score"] for f in case["faces"]])
        lms = np.float32([f["landmarks_x1x5_y1y5"] for f in case["faces"]])
        out, crops = enhance_faces(img, dets, lms, lambda c: 255 - c, lambda ef: pm, case["in_size"], case["alpha"])
        report("align_paste", case["output"], out, L(case["output"]))
        for j, cn in enumerate(case["crops"]):
            if cn.startswith("two_faces"):
                report("align_paste", cn, crops[j], L(cn))
