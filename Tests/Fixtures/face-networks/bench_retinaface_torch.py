# ORIGINAL GPEN RetinaFace (cfg_re50) with seeded random weights (BN stats random); torchvision replaced by a
# structural stand-in (IntermediateLayerGetter + ResNet-50 v1.5). Writes weights.pth (module.-prefixed) and outputs.
import sys, time, resource, os
sys.path.insert(0, os.environ.get('FAKE_TORCHVISION', '/tmp/fakevision')); sys.path.insert(0, os.path.join(os.environ.get('GPEN_UPSTREAM', '/tmp/gpenup'), 'face_detect'))
import numpy as np, torch
from facemodels.retinaface import RetinaFace
from data.config import cfg_re50
H, W = int(sys.argv[1]), int(sys.argv[2]); out = sys.argv[3]; reps = int(sys.argv[4]) if len(sys.argv) > 4 else 3
torch.set_num_threads(2); torch.manual_seed(0)
net = RetinaFace(cfg=cfg_re50, phase='test').eval()
with torch.no_grad():
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.weight.normal_(0, (2.0 / (m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1])) ** 0.5)
            if m.bias is not None: m.bias.normal_(0, 0.1)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.normal_(1, 0.1); m.bias.normal_(0, 0.1); m.running_mean.normal_(0, 0.1); m.running_var.uniform_(0.5, 1.5)
os.makedirs(out, exist_ok=True)
sd = {('module.' + k): v for k, v in net.state_dict().items() if not k.startswith('body.fc') }
torch.save(sd, f'{out}/weights.pth')
x = torch.randn(1, 3, H, W) * 50
np.save(f'{out}/input.npy', x.numpy())
with torch.no_grad():
    t = time.time(); loc, conf, lm = net(x); first = time.time() - t
    ts = []
    for _ in range(reps):
        t = time.time(); loc, conf, lm = net(x); ts.append(time.time() - t)
for n, v in [('loc', loc), ('conf', conf), ('landms', lm)]: np.save(f'{out}/{n}.npy', v.numpy())
print(f'torch RetinaFace-R50 {H}x{W}: warm-up {first:.3f} s, runs {" / ".join(f"{v:.3f}" for v in ts)}, median {sorted(ts)[len(ts)//2]:.3f} s; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024:.0f} MiB')
