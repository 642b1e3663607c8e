"""ImageNet starts: files in exactly the layouts of the public ImageNet checkpoints, written
with the PyTorch twins (the real files cannot be downloaded here):

  - Cadene's pretrainedmodels Xception (xception-43020ad28.pth): classifier `fc` [1000, 2048];
  - the Xception file FaceForensics++'s code loads (xception-b5690688.pth): the same with
    every pointwise weight 2-D [out, in];
  - lukemelas' EfficientNet-PyTorch B0 (efficientnet-b0-355c32eb.pth): `_fc` [1000, 1280];

all plain state_dicts in PyTorch's legacy (pre-1.6) serialisation, as those files are.
tools/pth2safetensors.py converts each (the same values under cored's names and shapes, the
1000-class classifier kept and marked); `cored train --init FILE --init-head reset` starts
from it: with --lr 0 one epoch changes no weight, so last.safetensors holds the starting
point, whose every trainable non-classifier tensor must equal the source's (the BN running
statistics, which train-mode steps move, are checked against a run from shifted ones) and
whose classifier is [2, C] and PyTorch's default init (the values `cored init` gives).
`--init-head keep` (the default) refuses such a file, hinting at reset; files that fit no
layout are refused by the converter, a backbone of another model by cored."""
import contextlib
import io
import json
import os
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import clitest as t  # noqa: E402
import pth2safetensors  # noqa: E402
import twins  # noqa: E402

SEED = "5"
MOMENTUM = {"xception": 0.1, "efficientnet-b0": 0.01}  # BN running-statistics momentum
STEPS = 2  # 8 training images in batches of 4
# (layout, model, classifier in the file, cored's classifier)
LAYOUTS = [("cadene", "xception", "fc", "last_linear"),
           ("tstandley", "xception", "fc", "last_linear"),
           ("lukemelas", "efficientnet-b0", "_fc", "_fc")]


def convert(*args):
    """The converter's main() in this process; returns (exit code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = pth2safetensors.main(list(args))
    return code, err.getvalue()


def public_file(layout, name, file_head, path):
    """Writes an ImageNet checkpoint in `layout`; returns its tensors under cored's names and
    shapes (what the conversion must give)."""
    torch.manual_seed(11)
    model = twins.MODELS[name](num_classes=1000)
    twins.randomize_bn(model, torch.Generator().manual_seed(12))
    want, sd = {}, {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            if layout == "lukemelas":
                sd[k] = v  # a torch >= 0.4 module's state_dict has them; the Xception files do not
            continue
        want[k] = v.numpy().copy()
        key = file_head + k[len("last_linear"):] if k.startswith("last_linear.") else k
        if layout == "tstandley" and k.endswith(".pointwise.weight"):
            v = v[:, :, 0, 0].clone()  # stored 2-D [out, in]
        sd[key] = v
    torch.save(sd, path, _use_new_zipfile_serialization=False)
    return want


def main():
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        t.make_data(data, size=64, per_class=(4, 2, 0, 0), tasks=("A",))
        converted = {}
        for layout, name, file_head, head in LAYOUTS:
            print(f"  {layout} ({name})")
            src = os.path.join(tmp, f"{layout}.pth")
            want = public_file(layout, name, file_head, src)
            if layout == "tstandley":
                sd = torch.load(src)
                t.check(sd["block1.rep.0.pointwise.weight"].dim() == 2 and "fc.weight" in sd,
                        "the tstandley-layout file holds 2-D pointwise weights and `fc`")
            dst = os.path.join(tmp, f"{layout}.safetensors")
            code, err = convert(src, dst)
            if not t.check(code == 0, f"{layout}: converts ({err.strip()})"):
                continue
            converted[layout] = dst
            got, meta = t.st.load(dst)
            t.check(meta.get("model") == name and meta.get("num_classes") == "1000",
                    f"{layout}: metadata names the model and 1000 classes ({meta})")
            if file_head != head:
                t.check(f"classifier fc -> {head}" in err and "fc ->" in meta.get("conversion", ""),
                        f"{layout}: says the classifier was renamed ({err.strip()})")
            if layout == "tstandley":
                t.check("pointwise weights [out, in] -> [out, in, 1, 1]" in err,
                        f"{layout}: says the pointwise weights were reshaped ({err.strip()})")
            t.check("--init-head reset" in err, f"{layout}: the converter points at --init-head reset")
            t.check(sorted(got) == sorted(want) and all(
                got[k].shape == want[k].shape and np.array_equal(got[k], want[k]) for k in want),
                f"{layout}: every tensor under cored's name and shape, values unchanged")
            t.check(got[f"{head}.weight"].shape[0] == 1000, f"{layout}: the 1000-class classifier is kept")

            # the starting point of a run from it: one epoch at lr 0 with BN frozen changes nothing
            run = os.path.join(tmp, f"run-{layout}")
            common = ["train", "--data", data, "--task", "A", "--model", name, "--size", "64",
                      "--batch", "4", "--epochs", "1", "--lr", "0", "--threads", "1",
                      "--loader-threads", "1", "--seed", SEED, "--quiet", "--init", dst]
            r = t.run(*common, "--out", run, "--init-head", "reset", ok=False)
            if not t.check(r.returncode == 0, f"{layout}: train --init-head reset runs ({r.stderr.strip()})"):
                continue
            last, _ = t.st.load(os.path.join(run, "last.safetensors"))
            body = [k for k in want if not k.startswith(head + ".")]
            stats = [k for k in body if k.endswith(("running_mean", "running_var"))]
            learned = [k for k in body if k not in stats]
            t.check(all(k in last and np.array_equal(last[k], want[k]) for k in learned),
                    f"{layout}: all {len(learned)} trainable backbone tensors of the starting point equal "
                    f"the source's")
            # Task 1 trains BN in train mode: each step moves a running statistic r to
            # (1 - m) r + m * (batch statistic), and the batch statistics do not depend on r.
            # So a run from the same file with shifted statistics must end shifted by
            # (1 - m)^steps times the shift: the source's statistics were the starting point.
            shifted = {k: (v + 1 if k.endswith("running_mean") else v * 2 if k.endswith("running_var") else v)
                       for k, v in got.items()}
            dst2 = os.path.join(tmp, f"{layout}-shifted.safetensors")
            t.st.save(dst2, shifted, meta)
            r = t.run(*common[:-1], dst2, "--out", run + "-shifted", "--init-head", "reset", ok=False)
            if t.check(r.returncode == 0, f"{layout}: the run from shifted statistics ({r.stderr.strip()})"):
                last2, _ = t.st.load(os.path.join(run + "-shifted", "last.safetensors"))
                f = (1 - MOMENTUM[name]) ** STEPS
                worst = max(np.max(np.abs((last[k] - last2[k]) - f * (want[k] - shifted[k]))
                                   / (1e-6 + 1e-6 * (np.abs(last[k]) + np.abs(last2[k])))) for k in stats)
                t.check(worst <= 1, f"{layout}: the {len(stats)} BN running statistics started from the "
                                    f"source's (worst error {worst:.2g} of the tolerance)")
            w, b = last[f"{head}.weight"], last[f"{head}.bias"]
            c = want[f"{head}.weight"].shape[1]
            t.check(w.shape == (2, c) and b.shape == (2,), f"{layout}: the classifier is [2, {c}] ({w.shape})")
            t.check(not np.array_equal(w, want[f"{head}.weight"][:2]), f"{layout}: the classifier is not the source's")
            fresh = os.path.join(tmp, f"init-{name}.safetensors")
            t.run("init", "--model", name, "--seed", SEED, "--size", "64", "--out", fresh)
            ref = t.st.load(fresh)[0]
            t.check(np.array_equal(w, ref[f"{head}.weight"]) and np.array_equal(b, ref[f"{head}.bias"]),
                    f"{layout}: the classifier is PyTorch's default init (as `cored init --seed {SEED}`)")
            bound = 1 / np.sqrt(c)
            t.check(np.abs(w).max() <= bound and np.abs(b).max() <= bound
                    and abs(w.std() / (bound / np.sqrt(3)) - 1) < 0.1,
                    f"{layout}: classifier uniform in +-1/sqrt({c})")
            with open(os.path.join(run, "config.json")) as f:
                cfg = json.load(f)
            t.check(cfg.get("init_head") == "reset", f"{layout}: config.json records init_head reset")

            # keep (the default): a complete checkpoint only, with the hint
            r = t.run(*common, "--out", run + "-keep", ok=False)
            t.check(r.returncode == 1 and dst in r.stderr and f"{head}.weight: file [1000," in r.stderr
                    and "--init-head reset" in r.stderr,
                    f"{layout}: --init-head keep refuses the 1000-class file with the hint ({r.stderr.strip()})")

        # a backbone of another model: named file and tensors, nothing trained
        if "lukemelas" in converted:
            run = os.path.join(tmp, "run-wrong")
            r = t.run("train", "--data", data, "--task", "A", "--model", "xception", "--size", "64",
                      "--batch", "4", "--epochs", "1", "--threads", "1", "--quiet", "--init",
                      converted["lukemelas"], "--init-head", "reset", "--out", run, ok=False)
            t.check(r.returncode == 1 and converted["lukemelas"] in r.stderr and "conv1.weight" in r.stderr
                    and "_conv_stem.weight" in r.stderr and "--model efficientnet-b0" in r.stderr,
                    f"--init-head reset refuses another model's backbone, naming tensors ({r.stderr.strip()})")
            t.check(not os.path.exists(os.path.join(run, "last.safetensors")), "  ... and writes no checkpoint")
        r = t.run("train", "--data", data, "--task", "A", "--out", os.path.join(tmp, "r"), "--init-head", "reset",
                  ok=False)
        t.check(r.returncode == 1 and "--init-head reset applies to --init" in r.stderr,
                f"--init-head without --init is refused ({r.stderr.strip()})")

        # the converter: files that fit no layout
        print("  refusals")
        if "cadene" in converted:
            code, err = convert(os.path.join(tmp, "cadene.pth"), os.path.join(tmp, "o.st"), "--swap-classes")
            t.check(code == 1 and "1000 classes" in err, f"--swap-classes on a 1000-class file is refused ({err})")
        resnet = {"conv1.weight": torch.zeros(64, 3, 7, 7), "bn1.weight": torch.ones(64),
                  "bn1.bias": torch.zeros(64), "bn1.running_mean": torch.zeros(64),
                  "bn1.running_var": torch.ones(64), "layer1.0.conv1.weight": torch.zeros(64, 64, 3, 3),
                  "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}
        torch.save(resnet, os.path.join(tmp, "resnet.pth"), _use_new_zipfile_serialization=False)
        code, err = convert(os.path.join(tmp, "resnet.pth"), os.path.join(tmp, "o.st"))
        t.check(code == 1 and "fits none of" in err and "fc.weight" in err,
                f"an ImageNet file of another architecture is refused ({err.strip()})")
        sd = torch.load(os.path.join(tmp, "tstandley.pth"))
        sd["block2.rep.1.pointwise.weight"] = sd["block2.rep.1.pointwise.weight"][:, :100].clone()
        torch.save(sd, os.path.join(tmp, "bad.pth"), _use_new_zipfile_serialization=False)
        code, err = convert(os.path.join(tmp, "bad.pth"), os.path.join(tmp, "o.st"), "--model", "xception")
        t.check(code == 1 and "block2.rep.1.pointwise.weight: file [256, 100]" in err,
                f"a pointwise weight of another shape is refused by name ({err.strip()})")
        sd = torch.load(os.path.join(tmp, "cadene.pth"))
        sd["fc.weight"] = sd["fc.weight"][:, :1024].clone()
        torch.save(sd, os.path.join(tmp, "badfc.pth"), _use_new_zipfile_serialization=False)
        code, err = convert(os.path.join(tmp, "badfc.pth"), os.path.join(tmp, "o.st"), "--model", "xception")
        t.check(code == 1 and "fc.weight" in err, f"a classifier over other features is refused ({err.strip()})")
        t.check(not os.path.exists(os.path.join(tmp, "o.st")), "nothing written on refusal")
    t.finish()


if __name__ == "__main__":
    main()
