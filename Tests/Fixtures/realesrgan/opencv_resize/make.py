# Regenerates the OpenCV resize fixtures (run with a Python that has opencv-python-headless 5.0.0.93 and numpy):
#   python make.py
# Each case: input src_*.npy and cv2.resize outputs; names encode the kind and the destination size (W x H).
import cv2, numpy as np, os
here = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(1234)
u8 = rng.integers(0, 256, size=(9, 13, 3), dtype=np.uint8)
u16 = rng.integers(0, 65536, size=(9, 13, 3), dtype=np.uint16)
f32 = rng.random((9, 13), dtype=np.float32)
np.save(f"{here}/src_u8.npy", u8); np.save(f"{here}/src_u16.npy", u16); np.save(f"{here}/src_f32.npy", f32)
for (w, h) in [(31, 20), (45, 31), (5, 4), (13, 9), (26, 18)]:
    np.save(f"{here}/lanczos4_u8_{w}x{h}.npy", cv2.resize(u8, (w, h), interpolation=cv2.INTER_LANCZOS4))
    np.save(f"{here}/lanczos4_u16_{w}x{h}.npy", cv2.resize(u16, (w, h), interpolation=cv2.INTER_LANCZOS4))
    np.save(f"{here}/linear_f32_{w}x{h}.npy", cv2.resize(f32, (w, h), interpolation=cv2.INTER_LINEAR))
    np.save(f"{here}/cubic_f32_{w}x{h}.npy", cv2.resize(f32, (w, h), interpolation=cv2.INTER_CUBIC))
print(cv2.__version__)
