"""GPEN alignment, mask post-processing and paste-back (align_faces.py + FaceEnhancement.process semantics).

Written from ../shared/docs/gpen.md §3.3-3.6. Points are float [5,2] (x, y); transforms float64 [2,3]; images uint8 HWC
BGR. Reference points and the Umeyama fit are pure NumPy; warps, blurs and the uint8 arithmetic use OpenCV
(cv2, optional dependency) exactly as upstream calls it, so this module needs cv2 only for those steps.
"""
import numpy as np

TEMPLATE_96x112 = [[30.29459953, 51.69630051], [65.53179932, 51.50139999], [48.02519989, 71.73660278],
                   [33.54930115, 92.3655014], [62.72990036, 92.20410156]]
SMALL_FACE_KERNEL = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 16


def reference_points(size: int, inner_padding_factor=0.25) -> np.ndarray:
    """5 reference points for an SxS crop: square (+8 x), inner padding (+28), scale S/168. float64 [5,2]."""
    pts = np.array(TEMPLATE_96x112, np.float64)
    crop = np.array([96, 112])
    diff = crop.max() - crop
    pts = pts + diff / 2
    crop = crop + diff
    pad = crop * inner_padding_factor * 2
    pts = pts + pad / 2
    crop = crop + np.round(pad).astype(np.int32)
    scale = np.float32(size) / crop[0]
    return pts * scale


def umeyama(src: np.ndarray, dst: np.ndarray, estimate_scale=True, scale=1.0):
    """Similarity (rotation, uniform scale, translation) mapping src -> dst; returns (3x3 T, scale)."""
    n, dim = src.shape
    sm, dm = src.mean(axis=0), dst.mean(axis=0)
    sd, dd = src - sm, dst - dm
    A = dd.T @ sd / n
    d = np.ones((dim,), np.double)
    if np.linalg.det(A) < 0:
        d[dim - 1] = -1
    T = np.eye(dim + 1, dtype=np.double)
    U, S, V = np.linalg.svd(A)
    T[:dim, :dim] = U @ np.diag(d) @ V
    if estimate_scale:
        scale = 1.0 / sd.var(axis=0).sum() * (S @ d)
    T[:dim, dim] = dm - scale * (T[:dim, :dim] @ sm.T)
    T[:dim, :dim] *= scale
    return T, scale


def similarity(landmarks_2x5, ref_pts):
    """(tfm image->crop, tfm_inv crop->image), both float64 [2,3], fitted on float32 points like upstream."""
    src = np.float32(landmarks_2x5).T
    ref = np.float32(ref_pts)
    T, s = umeyama(src, ref)
    Ti, _ = umeyama(ref, src, False, scale=1.0 / s)
    return T[:2], Ti[:2]


def warp_and_crop_face(img, landmarks_2x5, ref_pts, size):
    import cv2
    tfm, tfm_inv = similarity(landmarks_2x5, ref_pts)
    return cv2.warpAffine(img, tfm, (size, size), flags=3), tfm, tfm_inv


def mask_postprocess(mask, thres=26):
    """Zero a `thres` border, GaussianBlur (101x101, sigma 4) twice in float64, return float32."""
    import cv2
    mask = mask.copy()
    mask[:thres, :] = 0
    mask[-thres:, :] = 0
    mask[:, :thres] = 0
    mask[:, -thres:] = 0
    mask = cv2.GaussianBlur(mask, (101, 101), 4)
    mask = cv2.GaussianBlur(mask, (101, 101), 4)
    return mask.astype(np.float32)


def enhance_faces(img, dets, landms, restore, parse, in_size=512, alpha=1.0, threshold=0.9):
    """FaceEnhancement.process without SR: returns (composite uint8, list of crops)."""
    import cv2
    h, w = img.shape[:2]
    ref = reference_points(in_size)
    full_mask = np.zeros((h, w), np.float32)
    full_img = np.zeros(img.shape, np.uint8)
    crops = []
    for box, lm in zip(dets, landms):
        if box[4] < threshold:
            continue
        fh, fw = box[3] - box[1], box[2] - box[0]
        of, _, tfm_inv = warp_and_crop_face(img, np.reshape(lm, (2, 5)), ref, in_size)
        crops.append(of)
        ef = restore(of)
        m = mask_postprocess(parse(ef) / 255.0)
        m = cv2.resize(m, (in_size, in_size))
        m = cv2.warpAffine(m, tfm_inv, (w, h), flags=3)
        if min(fh, fw) < 100:
            ef = cv2.filter2D(ef, -1, SMALL_FACE_KERNEL)
        ef = cv2.addWeighted(ef, alpha, of, 1.0 - alpha, 0.0)
        t = cv2.warpAffine(ef, tfm_inv, (w, h), flags=3)
        sel = (m - full_mask) > 0
        full_mask[sel] = m[sel]
        full_img[sel] = t[sel]
    fm = full_mask[:, :, None]
    return cv2.convertScaleAbs(img * (1 - fm) + full_img * fm), crops
