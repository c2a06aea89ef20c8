# Benchmark of the ORIGINAL GPEN FullGenerator (yangxy/GPEN, CPU fallbacks) with seeded random weights; also writes
# weights.pth / input.npy / output.npy so the Swift port can be checked on the same weights.
import sys, time, resource, os
sys.path.insert(0, os.path.join(os.environ.get('GPEN_UPSTREAM', '/tmp/gpenup'), 'face_model'))
import numpy as np, torch
from gpen_model import FullGenerator
size = int(sys.argv[1]) if len(sys.argv) > 1 else 512
out = sys.argv[2] if len(sys.argv) > 2 else '/tmp/gpen512'
reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
torch.set_num_threads(2)
torch.manual_seed(0)
cm, narrow = (2, 1) if size != 256 else (1, 0.5)
m = FullGenerator(size, 512, 8, cm, narrow=narrow, device='cpu').eval()
with torch.no_grad():
    for n, p in m.named_parameters():
        if 'noise.weight' in n: p.normal_(0, 0.3)
        elif n.endswith('activate.bias') or 'to_rgb' in n and n.endswith('.bias'): p.normal_(0, 0.1)
os.makedirs(out, exist_ok=True)
torch.save(m.state_dict(), f'{out}/weights.pth')
x = torch.rand(1, 3, size, size) * 2 - 1
np.save(f'{out}/input.npy', x.numpy())
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
with torch.no_grad():
    t = time.time(); y, _ = m(x); first = time.time() - t
    ts = []
    for _ in range(reps):
        t = time.time(); y, _ = m(x); ts.append(time.time() - t)
np.save(f'{out}/output.npy', y.numpy())
print(f'torch {torch.__version__} GPEN-{size}: warm-up {first:.3f} s, runs {" / ".join(f"{v:.3f}" for v in ts)}, median {sorted(ts)[len(ts)//2]:.3f} s; '
      f'peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024:.0f} MiB (after build {rss0:.0f} MiB); max|y| {y.abs().max():.3f}')
