"""Small parity fixtures for the face networks, computed with the ORIGINAL upstream model code.

Usage: python generate.py /path/to/yangxy-GPEN-checkout   (torch CPU; writes next to this file)

- gpen32/: FullGenerator(32, 8, 2, channel_multiplier=1, narrow=1/64) from face_model/gpen_model.py (CPU paths of
  op/upfirdn2d.py and op/fused_act.py), every parameter randomised from seed 2001 (noise weights and activation
  biases included, which default to zero and would hide bugs); weights.pth is its plain state_dict (kernel buffers
  included, like GPEN-BFR-512.pth), input.npy a 1x3x32x32 float32 RGB tensor in [-1, 1), output.npy the raw output.
- parsenet16/: ParseNet(16, 16, min_feat_size=4, base_ch=4, parsing_ch=19, res_depth=1, relu_type='LeakyReLU',
  norm_type='bn', ch_range=[4, 8]) from face_parse/parse_model.py, seed 2002, BatchNorm running statistics random;
  out_mask.npy / out_img.npy are its two outputs for input.npy.
"""
import os, sys
import numpy as np
import torch

up = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
torch.set_num_threads(1)

sys.path.insert(0, os.path.join(up, 'face_model'))
from gpen_model import FullGenerator
torch.manual_seed(2001)
g = FullGenerator(32, 8, 2, channel_multiplier=1, narrow=1 / 64, device='cpu').eval()
with torch.no_grad():
    for n, p in g.named_parameters():
        if 'style' in n and n.endswith('weight'): p.normal_(0, 100)
        elif 'style' in n and n.endswith('bias'): p.normal_(0, 10)
        elif 'modulation.bias' in n: p.normal_(1, 0.2)
        elif n.endswith('.bias') or 'noise.weight' in n: p.normal_(0, 0.3)
        else: p.normal_(0, 1)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    y, _ = g(x)
d = os.path.join(here, 'gpen32'); os.makedirs(d, exist_ok=True)
torch.save(g.state_dict(), os.path.join(d, 'weights.pth'))
np.save(os.path.join(d, 'input.npy'), x.numpy()); np.save(os.path.join(d, 'output.npy'), y.numpy())

sys.path.insert(0, os.path.join(up, 'face_parse'))
from parse_model import ParseNet
torch.manual_seed(2002)
net = ParseNet(16, 16, 4, 4, 19, res_depth=1, relu_type="LeakyReLU", norm_type="bn", ch_range=[4, 8]).eval()
with torch.no_grad():
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.weight.normal_(0, (2.0 / (m.in_channels * 9)) ** 0.5)
            if m.bias is not None: m.bias.normal_(0, 0.1)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.normal_(1, 0.2); m.bias.normal_(0, 0.2); m.running_mean.normal_(0, 0.2); m.running_var.uniform_(0.5, 1.5)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    mask, img = net(x)
d = os.path.join(here, 'parsenet16'); os.makedirs(d, exist_ok=True)
torch.save(net.state_dict(), os.path.join(d, 'weights.pth'))
for n, v in [('input', x), ('out_mask', mask), ('out_img', img)]: np.save(os.path.join(d, n + '.npy'), v.numpy())
print('ok')
