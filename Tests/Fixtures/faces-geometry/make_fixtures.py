"""Cuts small windows out of ../shared/golden/align_paste (upstream GPEN outputs) for the faces-geometry tests.

Run from the repository root: python3 Tests/Fixtures/faces-geometry/make_fixtures.py [GOLDEN_DIR]
Needs only NumPy. The windows are chosen so that every output pixel in them depends only on input pixels inside
the image window (warps and the 3x3 filter reach < 8 px), so the tests can rebuild them from the window alone.
"""
import os, sys
import numpy as np

golden = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '../../../../shared/golden/align_paste')
out = os.path.dirname(os.path.abspath(__file__))
g = lambda n: np.load(os.path.join(golden, n + '.npy'))

img = g('image_bgr')
comp2 = g('two_faces_composite')
# composite window: 64x64 where face 1 and face 2 masks meet (changed and unchanged pixels, mask gradient)
cy, cx = 150, 232            # top-left of the composite window
img_win = (cy - 16, cx - 16, 96, 96)   # y, x, h, w of the image window
y0, x0, h, w = img_win
np.save(os.path.join(out, 'image_window.npy'), np.ascontiguousarray(img[y0:y0 + h, x0:x0 + w]))
np.save(os.path.join(out, 'window_origin.npy'), np.array([y0, x0, cy, cx], np.int32))
np.save(os.path.join(out, 'two_faces_composite_window.npy'), np.ascontiguousarray(comp2[cy:cy + 64, cx:cx + 64]))
np.save(os.path.join(out, 'single_smallface_composite_window.npy'),
        np.ascontiguousarray(g('single_smallface_composite')[cy:cy + 64, cx:cx + 64]))
# parse mask bit-packed (0/255 -> bits, rows of 512 bits)
pm = g('parse_mask')
assert set(np.unique(pm)) <= {0, 255}
np.save(os.path.join(out, 'parse_mask_bits.npy'), np.packbits(pm > 0, axis=1))
mp = g('mask_post')
# two 64x64 windows of the blurred mask where it varies most (the soft face boundary)
best = sorted(((mp[y:y + 64, x:x + 64].std(), y, x) for y in range(0, 449, 16) for x in range(0, 449, 16)), reverse=True)
(_, my0, mx0) = best[0]
(_, my1, mx1) = next(b for b in best if abs(b[1] - my0) >= 128 or abs(b[2] - mx0) >= 128)
np.save(os.path.join(out, 'mask_post_windows.npy'),
        np.stack([mp[my0:my0 + 64, mx0:mx0 + 64], mp[my1:my1 + 64, mx1:mx1 + 64]]))
np.save(os.path.join(out, 'mask_post_origins.npy'), np.array([[my0, mx0], [my1, mx1]], np.int32))
for n in ['face_512_tfm', 'face_512_tfm_inv', 'face_256_tfm', 'face_256_tfm_inv', 'ref_pts_512', 'ref_pts_256']:
    np.save(os.path.join(out, n + '.npy'), g(n))
# crop window whose sources lie inside the image window: crop coords mapping into the image window's centre
tfm = g('face_512_tfm')
c = tfm @ np.array([x0 + w / 2, y0 + h / 2, 1.0])
ccy, ccx = int(c[1]) - 24, int(c[0]) - 24
np.save(os.path.join(out, 'crop_origin.npy'), np.array([ccy, ccx], np.int32))
np.save(os.path.join(out, 'face_512_crop_window.npy'), np.ascontiguousarray(g('face_512_crop')[ccy:ccy + 48, ccx:ccx + 48]))
changed = (comp2[cy:cy + 64, cx:cx + 64] != img[cy:cy + 64, cx:cx + 64]).any(axis=2).sum()
print('composite window changed pixels:', changed, 'of 4096; crop window origin', ccy, ccx)
