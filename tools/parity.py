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
Kinks: near a ReLU or max-pool kink a float32 activation can legitimately land on the other
side of the kink than the float64 reference (PyTorch's own float32 does the same). Forward
values are continuous there, so forward checks need nothing; gradients are not, and in
Xception one flip can move a gradient by 1e-2 relative. So the gradient and optimiser-step
checks run with kink replay: `cored grad --decisions` writes the side cored took at every
ReLU (mask y > 0) and the argmax of every max pool, for every forward, and the float64 twin
follows those decisions (`twins.replay`), so only rounding separates the two. Every decision
must be consumed, in the same order and shape, or the check fails (the layer orders differ).
Why the L2 norm for gradients: a bug changes most elements and fails by orders of
magnitude, while rounding spread over few rows per channel (small batches, 4x4 maps) can
show a large max-norm error on a single element. Why the module's weight in the denominator:
some gradients are zero in exact arithmetic (a BN bias whose output feeds a linear layer and
then a train-mode BN gets the gradient sum(dy) = 0); their float32 value is rounding noise on
the scale of the module's other gradients, and is judged on that scale.
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

    def require(self, what, ok):
        """A condition that must hold (not an error measurement)."""
        self.failures += not ok
        if not ok:
            print(f"  FAIL {self.name}: {what}")

    def summary(self):
        worst = max(self.rows, key=lambda r: r[1] / r[2])
        print(f"  {self.name}: {len(self.rows)} comparisons, {self.failures} failed; "
              f"largest error/tolerance: {worst[0]} {worst[1]:.3g} (tol {worst[2]:g})")


def run(*args):
    r = subprocess.run([CORED, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"cored {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return r


def _save_case(tmp, name, model, n, size, gen):
    w_path, x_path, l_path = (os.path.join(tmp, f) for f in ("w.st", "x.st", "l.st"))
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    st.save(w_path, state, {"model": name})
    x = torch.randn(n, 3, size, size, generator=gen)
    labels = torch.tensor([i % 2 for i in range(n)], dtype=torch.int64)
    st.save(x_path, {"input": x.numpy()})
    st.save(l_path, {"labels": labels.numpy()})
    return w_path, x_path, l_path, x, labels


def _twin(name, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    model = twins.build(name)
    twins.randomize_bn(model, gen)
    model.stochastic = False
    return model, gen


class _Replaying:
    """Context: the twin follows cored's kink decisions with the given step prefix."""

    def __init__(self, decisions, prefix, rep, what):
        self.r, self.rep, self.what = twins.Replay(decisions, prefix), rep, what

    def __enter__(self):
        twins.replay(self.r)
        return self.r

    def __exit__(self, *exc):
        twins.replay(None)
        if exc[0] is None:
            left = self.r.unused()
            self.rep.require(f"{self.what}: {len(left)} kink decisions not consumed "
                             f"(first: {left[:3]})", not left)
        return False


def check_forward(name, n, size, seed=0):
    """Eval and train-mode forward only (logits, features, running statistics)."""
    model, gen = _twin(name, seed)
    rep = Report(f"{name} n={n} {size}px forward")
    with tempfile.TemporaryDirectory() as tmp:
        w_path, x_path, _, x, _ = _save_case(tmp, name, model, n, size, gen)
        _check_forward(rep, name, model, tmp, w_path, x_path, x.double())
    rep.summary()
    return rep.failures


def _check_forward(rep, name, model, tmp, w_path, x_path, xd):
    y_path = os.path.join(tmp, "y.st")
    run("forward", "--model", name, "--weights", w_path, "--input", x_path, "--out", y_path,
        "--features")
    out, _ = st.load(y_path)
    ref = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        logits, feats = ref(xd, return_features=True)
    rep.check("eval logits", rel_err(out["logits"], logits.numpy()), FWD_TOL)
    rep.check("eval features", rel_err(out["features"], feats.numpy()), FWD_TOL)

    # train-mode forward: batch statistics, running-stat update
    run("forward", "--model", name, "--weights", w_path, "--input", x_path, "--out", y_path,
        "--train-mode", "--features")
    out, _ = st.load(y_path)
    tr = copy.deepcopy(model).double().train()
    with torch.no_grad():
        logits, feats = tr(xd, return_features=True)
    rep.check("train logits", rel_err(out["logits"], logits.numpy()), FWD_TOL)
    rep.check("train features", rel_err(out["features"], feats.numpy()), FWD_TOL)
    for k, v in tr.state_dict().items():
        if k.endswith("running_mean") or k.endswith("running_var"):
            rep.check(k, rel_err(out[k], v.numpy()), FWD_TOL)


def check_model(name, n=4, size=64, seed=0, steps=3, optimizers=(("sgd", 0.05, 0.1),)):
    model, gen = _twin(name, seed)
    rep = Report(f"{name} n={n} {size}px")
    with tempfile.TemporaryDirectory() as tmp:
        w_path, x_path, l_path, x, labels = _save_case(tmp, name, model, n, size, gen)
        xd = x.double()
        _check_forward(rep, name, model, tmp, w_path, x_path, xd)

        # loss and every parameter gradient, the twin on cored's side of every kink
        g_path, d_path = os.path.join(tmp, "g.st"), os.path.join(tmp, "d.st")
        run("grad", "--model", name, "--weights", w_path, "--input", x_path, "--labels", l_path,
            "--out", g_path, "--decisions", d_path)
        out, _ = st.load(g_path)
        dec, _ = st.load(d_path)
        tr = copy.deepcopy(model).double().train()
        with _Replaying(dec, "s0.", rep, "gradients"):
            loss = F.cross_entropy(tr(xd), labels)
        loss.backward()
        rep.check("loss", rel_err(out["loss"], [loss.item()]), FWD_TOL)
        grads = {k: p.grad.numpy() for k, p in tr.named_parameters()}
        for k, g in grads.items():
            sibling = k.rsplit(".", 1)[0] + ".weight"
            floor = np.linalg.norm(grads[sibling]) if sibling in grads else 0.0
            rep.check("grad." + k, rel_err_l2(out["grad." + k], g, floor), GRAD_TOL)

        # a few optimiser steps on the same batch, each forward replaying cored's decisions
        for opt_name, lr, momentum in optimizers:
            run("grad", "--model", name, "--weights", w_path, "--input", x_path, "--labels", l_path,
                "--out", g_path, "--steps", str(steps), "--optimizer", opt_name, "--lr", str(lr),
                "--momentum", str(momentum), "--decisions", d_path)
            out, _ = st.load(g_path)
            dec, _ = st.load(d_path)
            tr = copy.deepcopy(model).double().train()
            if opt_name == "sgd":
                opt = torch.optim.SGD(tr.parameters(), lr=lr, momentum=momentum)
            elif opt_name == "adam":
                opt = torch.optim.Adam(tr.parameters(), lr=lr)
            else:
                opt = torch.optim.AdamW(tr.parameters(), lr=lr)
            losses = []
            for i in range(steps):
                opt.zero_grad()
                with _Replaying(dec, f"s{i}.", rep, f"{opt_name} step {i}"):
                    loss = F.cross_entropy(tr(xd), labels)
                loss.backward()
                opt.step()
                losses.append(loss.item())
            rep.check(f"{opt_name} {steps}-step losses", rel_err(out["losses"], losses), GRAD_TOL)
    rep.summary()
    return rep.failures
