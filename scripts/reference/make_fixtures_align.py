"""Alignment / paste-back fixtures (Tests/Fixtures/faces/): a real-photo crop, fixed detections, GPEN's
warp_and_crop_face, mask_postprocess and FaceEnhancement.process compositing (needs cv2, like upstream)."""
import json
import os

import numpy as np

from make_fixtures import OUT, photo_bgr, save_case
from align import enhance_faces, mask_postprocess, reference_points, warp_and_crop_face


def synthetic_parse_mask(seed: int) -> np.ndarray:
    """512x512 uint8 0/255: a face-like ellipse with a seeded wobbly edge and two holes (hat/background)."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:512, 0:512].astype(np.float64)
    ang = np.arctan2(yy - 280, xx - 256)
    r = 1 + 0.05 * np.sin(5 * ang + g.uniform(0, 6)) + 0.03 * np.cos(9 * ang + g.uniform(0, 6))
    e = ((xx - 256) / 190) ** 2 + ((yy - 280) / 230) ** 2
    m = (e < r ** 2).astype(np.uint8) * 255
    m[40:110, 180:330] = 0
    m[470:, :] = 255
    return m


def make_align():
    img_full = photo_bgr()
    y0, x0, H, W = 30, 140, 176, 168
    img = np.ascontiguousarray(img_full[y0:y0 + H, x0:x0 + W])
    # astronaut face (detections as in the golden case), shifted into the crop; a 2nd synthetic face and a skipped one
    lm0 = np.array([204.81, 247.38, 223.56, 202.49, 244.22, 100.78, 103.42, 129.24, 138.15, 140.56])
    lm0 = lm0 - np.array([x0] * 5 + [y0] * 5)
    faces = [
        ([177.93 - x0, 56.83 - y0, 273.12 - x0, 177.19 - y0, 0.9999], lm0),
        ([60.0, 70.0, 170.0, 176.0, 0.95], lm0 + np.array([25.0] * 5 + [35.0] * 5)),
        ([0.0, 0.0, 60.0, 60.0, 0.85], np.array([10, 30, 20, 12, 28, 15, 15, 25, 35, 35], np.float64)),
    ]
    dets = np.float32([f[0] for f in faces])
    lms = np.float32([f[1] for f in faces])
    pm = synthetic_parse_mask(4010)
    in_size = 128
    ref = reference_points(in_size)
    crop, tfm, tfm_inv = warp_and_crop_face(img, lms[0].reshape(2, 5), ref, in_size)
    restore = lambda c: 255 - c
    out1, crops1 = enhance_faces(img, dets[:1], lms[:1], restore, lambda ef: pm, in_size, 1.0)
    out2, crops2 = enhance_faces(img, dets, lms, restore, lambda ef: pm, in_size, 0.7)
    mp = mask_postprocess(pm / 255.0)
    files = {"image_bgr.npy": img, "parse_mask.npy": pm, "ref_pts_128.npy": ref, "ref_pts_512.npy": reference_points(512),
             "face0_tfm.npy": tfm, "face0_tfm_inv.npy": tfm_inv, "face0_crop.npy": crop,
             "face1_crop.npy": crops2[1], "mask_post_row256.npy": mp[256].copy(), "mask_post_col256.npy": mp[:, 256].copy(),
             "one_face_composite.npy": out1, "two_faces_alpha0p7_composite.npy": out2}
    cfg = {"case": "align_paste_small",
           "image": f"astronaut.png (public domain) rows {y0}:{y0 + H}, cols {x0}:{x0 + W}, uint8 HWC BGR",
           "in_size": in_size,
           "faces": [{"box_x1y1x2y2score": [float(v) for v in dets[i]], "landmarks_x1x5_y1y5": [float(v) for v in lms[i]]}
                     for i in range(3)],
           "float32_note": "boxes/landmarks are used as float32 (as the detector returns them)",
           "restore_fn": "restored face = 255 - crop (uint8), standing in for GPEN",
           "parse_fn": "every face's parse mask is parse_mask.npy (512x512 uint8 0/255, synthetic; seed 4010)",
           "cases": [
               {"output": "one_face_composite.npy", "faces": [0], "alpha": 1.0,
                "note": "face 0 box 95x120 -> min side < 100 -> 3x3 small-face filter"},
               {"output": "two_faces_alpha0p7_composite.npy", "faces": [0, 1, 2], "alpha": 0.7,
                "note": "face 1 (110x106 box, no filter) overlaps face 0 -> per-pixel max compositing; face 2 score 0.85 skipped"}],
           "steps": "GPEN FaceEnhancement.process (use_sr False): warp_and_crop_face (Umeyama on float32 points, "
                    "cv2.warpAffine flags=3 = bilinear, border 0) -> restore -> mask_postprocess(parse/255.) "
                    "(26-px border zeroed at 512, GaussianBlur 101/sigma 4 twice, float64 -> float32) -> "
                    "cv2.resize to in_size (INTER_LINEAR) -> warpAffine(tfm_inv) -> filter2D if min(box h,w) < 100 -> "
                    "addWeighted(ef, alpha, crop, 1-alpha) -> warpAffine(tfm_inv) -> max compositing -> convertScaleAbs",
           "mask_post": "mask_post_row256 / col256 = row 256 and column 256 of mask_postprocess(parse_mask/255.) (float32)"}
    save_case(os.path.join(OUT, "faces", "align_paste_small"), files, cfg)


FAMILIES = {"align": make_align}
