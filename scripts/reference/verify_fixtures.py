"""Reload every committed fixture from disk (config.json + weights.pth + inputs), rebuild the model from the
config (GPEN: from the state_dict alone), re-run, and print max |recomputed - stored| per file."""
import glob
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, errors, setup_torch  # noqa: E402
from rrdbnet import RRDBNet  # noqa: E402
from srvgg import SRVGGNetCompact  # noqa: E402
from realesrganer import RealESRGANer, load_realesrgan_state  # noqa: E402
from gpen import FullGenerator, config_from_state_dict, facegan_process  # noqa: E402
from retinaface import CFG_MNET, RetinaFace, detect, strip_module  # noqa: E402
from parsenet import ParseNet, mask_from_logits  # noqa: E402


def show(case, name, out, ref):
    e = errors(np.asarray(out), ref)
    print(f"{case:20s} {name:36s} max_abs={e['max_abs']:.3e} ndiff={e['ndiff']}")


def f64_noise(case, net, x, ref_outs, names):
    """Print max |float64 forward - stored float32| / max |stored| (the float32 noise scale a port should expect)."""
    import copy
    n64 = copy.deepcopy(net).double()
    outs = n64(torch.from_numpy(x).double())
    outs = outs if isinstance(outs, tuple) else (outs,)
    for n, o, r in zip(names, outs, ref_outs):
        print(f"{case:20s} {n:36s} float64_vs_float32 max_abs={np.abs(o.numpy() - r).max():.3e} max_ref={np.abs(r).max():.3g}")


def main():
    setup_torch(2)
    base = os.path.join(ROOT, "Tests", "Fixtures", "models")
    for cfgp in sorted(glob.glob(os.path.join(base, "*", "config.json"))):
        d = os.path.dirname(cfgp)
        cfg = json.load(open(cfgp))
        case = cfg["case"]
        L = lambda n: np.load(os.path.join(d, n))
        arch = cfg.get("arch")
        with torch.no_grad():
            if arch in ("RRDBNet", "SRVGGNetCompact"):
                net = (RRDBNet if arch == "RRDBNet" else SRVGGNetCompact)(**cfg["config"]).eval()
                net.load_state_dict(load_realesrgan_state(os.path.join(d, "weights.pth")), strict=True)
                i = 0
                while os.path.exists(os.path.join(d, f"input_{i}.npy")):
                    show(case, f"output_{i}.npy", net(torch.from_numpy(L(f"input_{i}.npy"))).numpy(), L(f"output_{i}.npy"))
                    f64_noise(case, net, L(f"input_{i}.npy"), [L(f"output_{i}.npy")], [f"output_{i}.npy"])
                    i += 1
            elif case == "realesrganer_x2":
                net = RRDBNet(**cfg["model"]["config"]).eval()
                net.load_state_dict(load_realesrgan_state(os.path.join(base, "rrdbnet_x2", "weights.pth")), strict=True)
                for c in cfg["cases"]:
                    up = RealESRGANer(2, net, tile=c["tile"], tile_pad=c["tile_pad"], pre_pad=c["pre_pad"])
                    show(case, c["output"], up.enhance(L(c["input"]), c["outscale"], c["alpha_upsampler"]), L(c["output"]))
            elif arch == "FullGenerator":
                sd = torch.load(os.path.join(d, "weights.pth"), weights_only=True)
                c = config_from_state_dict(sd)
                assert all(c[k] == cfg["config"][k] for k in c), (c, cfg["config"])
                net = FullGenerator(c["size"], c["style_dim"], c["n_mlp"], c["channel_multiplier"], narrow=c["narrow"]).eval()
                net.load_state_dict(sd, strict=True)
                show(case, "output.npy", net(torch.from_numpy(L("input.npy"))).numpy(), L("output.npy"))
                f64_noise(case, net, L("input.npy"), [L("output.npy")], ["output.npy"])
                show(case, "facegan_out_bgr.npy", facegan_process(net, L("facegan_in_bgr.npy")), L("facegan_out_bgr.npy"))
            elif arch == "RetinaFace":
                net = RetinaFace(CFG_MNET).eval()
                sd = torch.load(os.path.join(d, "weights.pth"), weights_only=True)
                assert all(k.startswith("module.") for k in sd)
                net.load_state_dict(strip_module(sd), strict=True)
                for n, o in zip(["loc.npy", "conf.npy", "landms.npy"], net(torch.from_numpy(L("input.npy")))):
                    show(case, n, o.numpy(), L(n))
                f64_noise(case, net, L("input.npy"), [L("loc.npy"), L("conf.npy"), L("landms.npy")],
                          ["loc.npy", "conf.npy", "landms.npy"])
                dets, lm = detect(net, L("image_bgr.npy"))
                show(case, "detect_dets.npy", dets, L("detect_dets.npy"))
                show(case, "detect_landms.npy", lm, L("detect_landms.npy"))
            elif arch == "ParseNet":
                net = ParseNet(**cfg["config"]).eval()
                net.load_state_dict(torch.load(os.path.join(d, "weights.pth"), weights_only=True), strict=True)
                m, im = net(torch.from_numpy(L("input.npy")))
                show(case, "out_mask.npy", m.numpy(), L("out_mask.npy"))
                show(case, "mask_uint8.npy", mask_from_logits(m), L("mask_uint8.npy"))
                f64_noise(case, net, L("input.npy"), [L("out_mask.npy"), L("out_img.npy")], ["out_mask.npy", "out_img.npy"])


if __name__ == "__main__":
    main()
