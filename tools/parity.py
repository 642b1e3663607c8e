"""Parity of a cored model with its PyTorch twin (tools/twins.py), through the CLI.

On random weights (BN statistics randomised too) and a random batch, it compares:
  - logits and features, eval mode (`cored forward --features`);
  - logits and BN running statistics after a train-mode forward (`cored forward --train-mode`);
  - the cross-entropy loss and every parameter gradient (`cored grad`);
  - the losses of a few optimiser steps on the same batch (`cored grad --steps K`).
The reference runs in float64 on the same float32 weights and inputs, so the measured error
is cored's own float32 rounding.

How errors are measured:
  - forward tensors (logits, features, running statistics, losses):
    max|cored - ref| / max|ref|  (tolerance 1e-4; 1e-3 for losses after optimiser steps);
  - gradients: ||cored - ref||_2 / max(||ref||_2, ||ref gradient of the module's weight||_2)
    (tolerance 1e-3).
Why the L2 norm for gradients: near a ReLU or max-pool kink a float32 activation can
legitimately land on the other side of the kink than the float64 reference (PyTorch's own
float32 does the same at other elements). Such a flip changes a handful of gradient
elements by O(1) of their size; with few rows per channel (small batches, 4x4 maps) that is
a large max-norm error but a tiny L2 error, while a real bug changes most elements and fails
by orders of magnitude. Why the module's weight in the denominator: some gradients are
zero in exact arithmetic (a BN bias whose output feeds a linear layer and then a train-mode
BN gets the gradient sum(dy) = 0); their float32 value is rounding noise on the scale of the
module's other gradients, and is judged on that scale.
"""
import copy
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
import twins  # noqa: E402

CORED = os.environ.get("CORED", "./cored")
FWD_TOL = 1e-4
GRAD_TOL = 1e-3


def rel_err(got, want):
    """max|got - want| / max|want|"""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return float("inf")
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-12))


def rel_err_l2(got, want, scale_floor=0.0):
    """||got - want|| / max(||want||, scale_floor)"""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return float("inf")
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), scale_floor, 1e-30))


class Report:
    def __init__(self, name):
        self.name, self.failures, self.rows = name, 0, []

    def check(self, what, err, tol):
        ok = err <= tol
        self.failures += not ok
        self.rows.append((what, err, tol, ok))
        if not ok:
            print(f"  FAIL {self.name}: {what}: relative error {err:.3g} > {tol:g}")

    def summary(self):
        worst = max(self.rows, key=lambda r: r[1] / r[2])
        print(f"  {self.name}: {len(self.rows)} comparisons, {self.failures} failed; "
              f"largest error/tolerance: {worst[0]} {worst[1]:.3g} (tol {worst[2]:g})")


def run(*args):
    r = subprocess.run([CORED, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"cored {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return r


def check_model(name, n=4, size=64, seed=0, steps=3, optimizers=(("sgd", 0.05, 0.1),)):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    model = twins.build(name)
    twins.randomize_bn(model, gen)
    model.stochastic = False
    rep = Report(f"{name} n={n} {size}px")
    with tempfile.TemporaryDirectory() as tmp:
        w_path, x_path, l_path = (os.path.join(tmp, f) for f in ("w.st", "x.st", "l.st"))
        state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
        st.save(w_path, state, {"model": name})
        x = torch.randn(n, 3, size, size, generator=gen)
        labels = torch.tensor([i % 2 for i in range(n)], dtype=torch.int64)
        st.save(x_path, {"input": x.numpy()})
        st.save(l_path, {"labels": labels.numpy()})
        ref = copy.deepcopy(model).double()
        xd = x.double()

        # eval-mode forward with features
        y_path = os.path.join(tmp, "y.st")
        run("forward", "--model", name, "--weights", w_path, "--input", x_path, "--out", y_path,
            "--features")
        out, _ = st.load(y_path)
        ref.eval()
        with torch.no_grad():
            logits, feats = ref(xd, return_features=True)
        rep.check("eval logits", rel_err(out["logits"], logits.numpy()), FWD_TOL)
        rep.check("eval features", rel_err(out["features"], feats.numpy()), FWD_TOL)

        # train-mode forward: batch statistics, running-stat update
        run("forward", "--model", name, "--weights", w_path, "--input", x_path, "--out", y_path,
            "--train-mode")
        out, _ = st.load(y_path)
        tr = copy.deepcopy(model).double().train()
        with torch.no_grad():
            logits = tr(xd)
        rep.check("train logits", rel_err(out["logits"], logits.numpy()), FWD_TOL)
        sd = tr.state_dict()
        for k, v in sd.items():
            if k.endswith("running_mean") or k.endswith("running_var"):
                rep.check(k, rel_err(out[k], v.numpy()), FWD_TOL)

        # loss and every parameter gradient
        g_path = os.path.join(tmp, "g.st")
        run("grad", "--model", name, "--weights", w_path, "--input", x_path, "--labels", l_path,
            "--out", g_path)
        out, _ = st.load(g_path)
        tr = copy.deepcopy(model).double().train()
        loss = F.cross_entropy(tr(xd), labels)
        loss.backward()
        rep.check("loss", rel_err(out["loss"], [loss.item()]), FWD_TOL)
        grads = {k: p.grad.numpy() for k, p in tr.named_parameters()}
        for k, g in grads.items():
            sibling = k.rsplit(".", 1)[0] + ".weight"
            floor = np.linalg.norm(grads[sibling]) if sibling in grads else 0.0
            rep.check("grad." + k, rel_err_l2(out["grad." + k], g, floor), GRAD_TOL)

        # a few optimiser steps on the same batch
        for opt_name, lr, momentum in optimizers:
            run("grad", "--model", name, "--weights", w_path, "--input", x_path, "--labels", l_path,
                "--out", g_path, "--steps", str(steps), "--optimizer", opt_name, "--lr", str(lr),
                "--momentum", str(momentum))
            out, _ = st.load(g_path)
            tr = copy.deepcopy(model).double().train()
            if opt_name == "sgd":
                opt = torch.optim.SGD(tr.parameters(), lr=lr, momentum=momentum)
            elif opt_name == "adam":
                opt = torch.optim.Adam(tr.parameters(), lr=lr)
            else:
                opt = torch.optim.AdamW(tr.parameters(), lr=lr)
            losses = []
            for _ in range(steps):
                opt.zero_grad()
                loss = F.cross_entropy(tr(xd), labels)
                loss.backward()
                opt.step()
                losses.append(loss.item())
            rep.check(f"{opt_name} {steps}-step losses", rel_err(out["losses"], losses), GRAD_TOL)
    rep.summary()
    return rep.failures
