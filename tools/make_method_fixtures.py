"""Writes tests/fixtures/method.safetensors: inputs of CoReD's loss terms and what PyTorch
(float64 autograd) and scikit-learn compute from them. tests/test_method.c compares cored
with these values. Regenerate with `make fixtures` (Debian python3-torch, python3-sklearn).

Contents (all float; F64 where the value is an expectation):
  KD / DL      s, t [N,2] logits, y [N]: ce, kd = 0.5*20^2*KL(p_t^T || p_s^T) (batchmean),
               the official code's value (alpha*T^2 inside the KL target), and the gradient of
               DL's loss 1.5*CE + kd with respect to s.
  CoReD        features F [N,C,H,W] (NCHW), eval-mode logits z_e (the student's bands), the
               teacher's cell statistics (scalar and vector) and presence; L_Rep and its
               gradient with respect to F, in both modes.
  TG           weights w, teacher weights w_t, head mask, teacher logits: gamma, the penalty
               and its gradient.
  EWC          w, anchor, Fisher, lambda: the penalty and its gradient.
  AUC          score/label sets with ties and sklearn's roc_auc_score of each.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(2021)
out = {}
T, ALPHA = 20.0, 0.5


def f32(a):
    return np.asarray(a, np.float32)


# ---------------------------------------------------------------- KD / DL
N = 12
s = f32(rng.normal(0, 3, (N, 2)))
t = f32(rng.normal(0, 30, (N, 2)))
y = np.array([i % 2 for i in range(N)], np.int64)
S = torch.tensor(s, dtype=torch.float64, requires_grad=True)
Tt = torch.tensor(t, dtype=torch.float64)
Y = torch.tensor(y)
ce = F.cross_entropy(S, Y)
kd = F.kl_div(F.log_softmax(S / T, 1), F.softmax(Tt / T, 1), reduction="batchmean") * ALPHA * T * T
official = F.kl_div(F.log_softmax(S / T, 1), ALPHA * T * T * F.softmax(Tt / T, 1), reduction="batchmean")
loss = ce + kd + (1 - ALPHA) * ce
loss.backward()
out.update({"kd.s": s, "kd.t": t, "kd.y": y, "kd.ce": np.array([ce.item()]), "kd.kd": np.array([kd.item()]),
            "kd.official": np.array([official.item()]), "kd.grad_s": S.grad.numpy()})

# ---------------------------------------------------------------- CoReD representation loss
N, C, H, W = 16, 6, 3, 3
feat = f32(rng.normal(0, 1, (N, C, H, W)))
labels = np.array([i % 2 for i in range(N)], np.int64)
# eval-mode logits chosen to spread the images over the bands (and some below 0.5)
p_true = np.array([0.55, 0.65, 0.75, 0.85, 0.95, 0.3, 0.58, 0.92, 0.62, 0.99, 0.45, 0.71, 0.88, 0.57, 0.66, 0.97])
logit_gap = np.log(p_true / (1 - p_true))
ze = np.zeros((N, 2))
for i in range(N):
    ze[i, labels[i]] = logit_gap[i] / 2
    ze[i, 1 - labels[i]] = -logit_gap[i] / 2
ze = f32(ze)
present = np.ones(10, np.float32)
present[[3, 7]] = 0  # two cells the teacher never saw
mu_s = f32(rng.normal(1.0, 0.3, 10))
mu_v = f32(rng.normal(1.0, 0.3, (10, C)))


def cells_of(z, lab):
    p = torch.softmax(torch.tensor(z, dtype=torch.float64), 1)[torch.arange(len(lab)), torch.tensor(lab)]
    p = p.numpy().astype(np.float32)
    edges = np.float32([0.5, 0.6, 0.7, 0.8, 0.9])
    c = []
    for i, q in enumerate(p):
        if not q > 0.5:
            c.append(-1)
            continue
        b = 4
        for k in range(4):
            if q <= edges[k + 1]:
                b = k
                break
        c.append(int(lab[i]) * 5 + b)
    return np.array(c)


cells = cells_of(ze, labels)
for mode, mu in (("scalar", mu_s), ("vector", mu_v)):
    Fm = torch.tensor(feat, dtype=torch.float64, requires_grad=True)
    vmax = Fm.amax(dim=(2, 3))                       # [N, C]
    loss = torch.zeros(())
    for k in range(10):
        idx = np.nonzero(cells == k)[0]
        if len(idx) == 0 or not present[k]:
            continue
        if mode == "scalar":
            m_s = vmax[idx].mean(dim=1).mean()
            loss = loss + (m_s - float(mu[k])) ** 2
        else:
            m_s = vmax[idx].mean(dim=0)
            loss = loss + ((m_s - torch.tensor(mu[k], dtype=torch.float64)) ** 2).sum()
    loss.backward()
    out[f"rep.{mode}.mu"] = mu
    out[f"rep.{mode}.loss"] = np.array([loss.item()])
    out[f"rep.{mode}.grad"] = Fm.grad.numpy()
    # the unbiased estimate: cells with two images at least, minus the sample variance of
    # the cell's mean (per dimension)
    Fm = torch.tensor(feat, dtype=torch.float64, requires_grad=True)
    stat = Fm.amax(dim=(2, 3))
    stat = stat.mean(dim=1, keepdim=True) if mode == "scalar" else stat
    loss = torch.zeros(())
    for k in range(10):
        idx = np.nonzero(cells == k)[0]
        if len(idx) < 2 or not present[k]:
            continue
        x = stat[idx]
        target = torch.tensor(np.atleast_1d(mu[k]), dtype=torch.float64)
        loss = loss + ((x.mean(dim=0) - target) ** 2 - x.var(dim=0, unbiased=True) / len(idx)).sum()
    loss.backward()
    out[f"rep.{mode}.unbiased.loss"] = np.array([loss.item()])
    out[f"rep.{mode}.unbiased.grad"] = Fm.grad.numpy()
    # --rep-norm batch with a weight: each cell's term times (images in the cell) / N, in
    # units of a given teacher variance per dimension, averaged over the dimensions; with
    # the plain and the unbiased estimate
    var = f32(np.random.default_rng(7 + len(mode)).uniform(0.05, 0.5, 1 if mode == "scalar" else C))
    weight = 0.3
    out[f"rep.{mode}.var"] = var
    for est in ("plain", "unbiased"):
        Fm = torch.tensor(feat, dtype=torch.float64, requires_grad=True)
        stat = Fm.amax(dim=(2, 3))
        stat = stat.mean(dim=1, keepdim=True) if mode == "scalar" else stat
        v = torch.tensor(var, dtype=torch.float64)
        loss = torch.zeros(())
        for k in range(10):
            idx = np.nonzero(cells == k)[0]
            if len(idx) < (2 if est == "unbiased" else 1) or not present[k]:
                continue
            x = stat[idx]
            target = torch.tensor(np.atleast_1d(mu[k]), dtype=torch.float64)
            term = (x.mean(dim=0) - target) ** 2
            if est == "unbiased":
                term = term - x.var(dim=0, unbiased=True) / len(idx)
            loss = loss + weight * len(idx) / N * (term / v).mean()
        loss.backward()
        out[f"rep.{mode}.batch.{est}.loss"] = np.array([loss.item()])
        out[f"rep.{mode}.batch.{est}.grad"] = Fm.grad.numpy()
out["rep.batch.weight"] = np.array([0.3])
out.update({"rep.features": feat, "rep.labels": labels, "rep.eval_logits": ze, "rep.present": present,
            "rep.cells": cells.astype(np.int64)})

# the teacher's statistics of the same images (their cells from the same logits)
vmax = feat.astype(np.float64).max(axis=(2, 3))
t_scalar, t_vector, t_count = np.zeros(10), np.zeros((10, C)), np.zeros(10)
for k in range(10):
    idx = np.nonzero(cells == k)[0]
    t_count[k] = len(idx)
    if len(idx):
        t_scalar[k] = vmax[idx].mean(axis=1).mean()
        t_vector[k] = vmax[idx].mean(axis=0)
in_cell = cells >= 0


def floored_var(x):
    # the sample variance per dimension, floored as represent.c does
    v = np.atleast_1d(x.var(axis=0, ddof=1))
    return np.maximum(v, np.maximum(1e-3 * v.mean(), 1e-2 * np.atleast_1d((x ** 2).mean(axis=0))))


t_var_scalar = floored_var(vmax[in_cell].mean(axis=1))
t_var_vector = floored_var(vmax[in_cell])
out.update({"rep.teacher.scalar": t_scalar, "rep.teacher.vector": t_vector, "rep.teacher.count": t_count,
            "rep.teacher.var.scalar": t_var_scalar, "rep.teacher.var.vector": t_var_vector})

# LwF: distillation at T = 2 with weight 1, and its gradient with CE
S2 = torch.tensor(s, dtype=torch.float64, requires_grad=True)
kd2 = F.kl_div(F.log_softmax(S2 / 2, 1), F.softmax(Tt / 2, 1), reduction="batchmean") * 4
(F.cross_entropy(S2, Y) + kd2).backward()
out.update({"lwf.kd": np.array([kd2.item()]), "lwf.grad_s": S2.grad.numpy()})

# ---------------------------------------------------------------- TG
n = 40
w = f32(rng.normal(0, 1, n))
wt = f32(rng.normal(0, 1, n))
head = np.zeros(n, np.float32)
head[-6:] = 1
tl = f32(rng.normal(0, 2, (8, 2)))
ty = np.array([0, 1, 1, 0, 1, 0, 0, 1], np.int64)
gamma = torch.sigmoid(-F.cross_entropy(torch.tensor(tl, dtype=torch.float64), torch.tensor(ty))).item()
Wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
Hm = torch.tensor(head, dtype=torch.float64)
sp = 0.5 * (((Wt - torch.tensor(wt, dtype=torch.float64)) ** 2) * (1 - Hm)).sum()
cls = 0.5 * ((Wt ** 2) * Hm).sum()
pen = gamma * (sp + cls)
pen.backward()
out.update({"tg.w": w, "tg.anchor": wt, "tg.head": head, "tg.t": tl, "tg.y": ty, "tg.gamma": np.array([gamma]),
            "tg.value": np.array([pen.item()]), "tg.grad": Wt.grad.numpy()})

# ---------------------------------------------------------------- EWC
lam = 37.5
we = f32(rng.normal(0, 1, n))
anchor = f32(rng.normal(0, 1, n))
fisher = f32(rng.uniform(0, 2, n))
We = torch.tensor(we, dtype=torch.float64, requires_grad=True)
pe = lam / 2 * (torch.tensor(fisher, dtype=torch.float64) * (We - torch.tensor(anchor, dtype=torch.float64)) ** 2).sum()
pe.backward()
out.update({"ewc.w": we, "ewc.anchor": anchor, "ewc.fisher": fisher, "ewc.lambda": np.array([lam], np.float32),
            "ewc.value": np.array([pe.item()]), "ewc.grad": We.grad.numpy()})

# ---------------------------------------------------------------- AUC with ties (sklearn)
for k, (n_, levels) in enumerate(((50, 5), (200, 20), (31, 3), (1000, 1000))):
    sc = f32(rng.integers(0, levels, n_) / levels)
    lb = rng.integers(0, 2, n_).astype(np.int64)
    lb[0], lb[1] = 0, 1
    out[f"auc.{k}.scores"] = sc
    out[f"auc.{k}.labels"] = lb
    out[f"auc.{k}.value"] = np.array([roc_auc_score(lb, sc)])

path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures",
                                                           "method.safetensors")
os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
st.save(path, out, {"generator": "tools/make_method_fixtures.py"})
print(f"wrote {path}: {len(out)} tensors")
