"""An independent float64 PyTorch reference of K training steps of every continual method,
written from the method's definition (docs/method.md), not from cored's C code. It is what
`cored grad --method M` is compared against (tests/parity_method_step.py).

One step s (s = 0..K-1, K steps on the same batch; the teacher, its statistics and the
anchors stay fixed, the student's BN running statistics evolve):

  - CutMix (a fixed box [x0,x1) x [y0,y1), x = width axis): x_m[i] = x[i] with the box pasted
    from x[partner[i]] (the un-mixed batch) where labels[partner[i]] != labels[i]. Every
    forward below uses x_m, except the teacher's representation statistics.
  - Student training forward on x_m: BN batch statistics and running-statistic updates
    (PyTorch momentum), or with freeze_bn BN in eval mode (running statistics, no update);
    dropout and drop-connect never applied. Logits z_S, tap f (twins' return_features).
  - Teacher (dl, cored, tg, lwf): eval mode, logits z_T on x_m (no gradient).
  - CE = mean cross-entropy of z_S; KL(T) = mean over images of KL(softmax(z_T/T) || softmax(z_S/T)).
      train, tl:  total = CE
      dl:         total = (2 - a) CE + kd,   kd = a T^2 KL(T)
      cored:      dl + rep
      lwf:        total = CE + kd,           kd = lambda_lwf T_lwf^2 KL(T_lwf)
      tg:         total = CE + reg, reg = gamma (1/2 sum_{not head} (w - w_T)^2 + 1/2 sum_{head} w^2),
                  gamma = sigmoid(-CE(z_T, y)), a constant
      ewc:        total = CE + reg, reg = (lambda/2) sum F (w - w*)^2, w* = the weights as loaded
    over the trainable parameters (BN weight/bias included, running statistics not).
  - CoReD's rep: cells = label*5 + band of p = softmax(z)[y] (bands (0.5,0.6] ... (0.9,1.0];
    p <= 0.5 in no cell). An image's statistic: the tap's spatial max per channel, averaged
    over channels (scalar) or kept (vector). Teacher: once, before step 0, eval mode on the
    UN-mixed x, cells from its own logits; mu_T(cell) = mean over the cell's images.
    (rep_teacher_bn="student", cored's --rep-teacher-bn student: the teacher's features under
    batch statistics when the student trains with batch statistics; its cells still from its
    eval-mode logits. The default "running" is the definition above.)
    Student at step s: cells from a no-grad eval-mode forward of the current student on x_m
    (running statistics as they are at the start of the step) or, with freeze_bn, from the
    training forward's logits; statistics from the training forward's tap, with gradient.
    rep = sum over cells present on both sides of (mu_S - mu_T)^2 (squared L2 for vectors);
    rep_estimate="unbiased" (--rep-estimate unbiased): over the cells with two student images
    at least, minus each cell's sample variance of its mean, s^2 / k (per dimension).
    rep_norm="none" (--rep-norm none, the paper's) is the sum above. rep_norm="batch" (cored's
    default): each cell's term (per dimension) is multiplied by k / N (k the cell's student
    images, N the batch) and divided by the teacher's variance of the statistic, averaged
    over the dimensions. The variance: the sample variance (N - 1) over every teacher image
    that lies in a cell, per dimension, floored at the larger of 1e-3 times its mean over
    the dimensions and 1e-2 times the statistic's mean square over those images, plus 1e-12. The whole term is multiplied by rep_weight (None: 1 with none, 0.1 with batch).
  - Backward, then a torch.optim step (SGD, Adam or AdamW with the given hyper-parameters).

Replay: with `decisions` (what `cored grad --decisions` wrote) the student's training forward
of step s follows cored's kinks (twins.Replay, prefix 's<s>.'), and cored's cells
('s<s>.cells', 'teacher.cells') and tap argmax ('s<s>.tap_argmax') are used instead of the
reference's own, each checked: a cell may differ from the reference's only where the
reference's p lies within CELL_EDGE_TOL of a band edge, and the tap at cored's argmax must
equal the reference's maximum within TAP_TOL of the tap's largest magnitude. Violations are
returned in `result["problems"]`.
"""
import copy
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import twins  # noqa: E402

METHODS = ("train", "tl", "dl", "cored", "tg", "lwf", "ewc")
TEACHER_METHODS = ("dl", "cored", "tg", "lwf")
HEADS = {"tiny": "fc.", "xception": "last_linear.", "efficientnet-b0": "_fc."}
EDGES = (0.5, 0.6, 0.7, 0.8, 0.9)
NCELLS = 10
CELL_EDGE_TOL = 1e-4
TAP_TOL = 1e-5
TERMS = ("ce", "kd", "rep", "reg", "total")


def cutmix(x, labels, partner, box):
    """The mixed batch and the mask of the samples that received a box."""
    if box is None or partner is None:
        return x, torch.zeros(len(labels), dtype=torch.bool)
    x0, y0, x1, y1 = box
    xm = x.clone()
    marked = labels[partner] != labels
    for i in range(len(labels)):
        if marked[i]:
            xm[i, :, y0:y1, x0:x1] = x[partner[i], :, y0:y1, x0:x1]
    return xm, marked


def true_prob(logits, labels):
    return torch.softmax(logits.detach(), 1)[torch.arange(len(labels)), labels]


def cells_of(p, labels):
    """cell = label*5 + band of the true-class probability p; -1 where p <= 0.5."""
    out = []
    for q, y in zip(p.tolist(), labels.tolist()):
        if not q > EDGES[0]:
            out.append(-1)
            continue
        band = 4
        for k in range(4):
            if q <= EDGES[k + 1]:
                band = k
                break
        out.append(int(y) * 5 + band)
    return np.array(out, np.int64)


def near_edge(q, tol=CELL_EDGE_TOL):
    return min(abs(q - e) for e in EDGES) <= tol


def _normalise_cells(c):
    c = np.asarray(c, np.int64).copy()
    c[(c < 0) | (c >= NCELLS)] = -1
    return c


def _replayed_cells(what, own, p, given, problems):
    """cored's cells, checked against the reference's own: they may differ only at a band edge."""
    if given is None:
        return own
    given = _normalise_cells(given).reshape(-1)
    if given.shape != own.shape:
        problems.append(f"{what}: cored's cells have shape {given.shape}, expected {own.shape}")
        return own
    for i in np.nonzero(given != own)[0]:
        if not near_edge(float(p[i])):
            problems.append(f"{what}: image {i}: cored's cell {given[i]}, the reference's {own[i]} "
                            f"(p = {float(p[i]):.7f}, not within {CELL_EDGE_TOL:g} of a band edge)")
    return given


def image_stats(tap, mode):
    """[N] (scalar) or [N, C] (vector): the spatial max per channel, averaged over channels."""
    v = tap.flatten(2).amax(2)
    return v.mean(1) if mode == "scalar" else v


def tap_max(tap, argmax, what, problems, stat):
    """Per image and channel the tap's spatial maximum; with cored's argmax, gathered there."""
    flat = tap.flatten(2)
    mine = flat.detach().amax(2)
    if argmax is None:
        v = flat.amax(2)
    else:
        idx = torch.from_numpy(np.asarray(argmax).astype(np.int64))
        if tuple(idx.shape) != tuple(mine.shape):
            problems.append(f"{what}: cored's tap_argmax has shape {tuple(idx.shape)}, "
                            f"expected {tuple(mine.shape)}")
            v = flat.amax(2)
        elif idx.min() < 0 or idx.max() >= flat.shape[2]:
            problems.append(f"{what}: cored's tap_argmax out of range")
            v = flat.amax(2)
        else:
            v = flat.gather(2, idx.unsqueeze(2)).squeeze(2)
            scale = max(float(flat.detach().abs().max()), 1e-30)
            err = float((mine - v.detach()).abs().max()) / scale
            stat["tap_argmax_err"] = max(stat.get("tap_argmax_err", 0.0), err)
            if err > TAP_TOL:
                problems.append(f"{what}: the tap at cored's argmax is {err:.3g} (relative to max|tap|) "
                                f"below the reference's maximum (> {TAP_TOL:g})")
    return v


def cell_means(stats, cells):
    """{cell: mean statistic of its images} over the cells that have images."""
    out = {}
    for k in range(NCELLS):
        idx = np.nonzero(cells == k)[0]
        if len(idx):
            out[k] = stats[torch.from_numpy(idx)].mean(0)
    return out


def kl(zs, zt, t):
    return F.kl_div(F.log_softmax(zs / t, 1), F.softmax(zt / t, 1), reduction="batchmean")


class _Replaying:
    def __init__(self, decisions, prefix, problems, what):
        self.r = twins.Replay(decisions, prefix) if decisions is not None else None
        self.problems, self.what = problems, what

    def __enter__(self):
        twins.replay(self.r)
        return self.r

    def __exit__(self, *exc):
        twins.replay(None)
        if exc[0] is None and self.r is not None:
            left = [k for k in self.r.unused() if k[len(self.r.prefix):].split(".")[0] in ("relu", "maxpool")]
            if left:
                self.problems.append(f"{self.what}: {len(left)} kink decisions not consumed (first: {left[:3]})")
        return False


def build_twin(name, state):
    """A float64 twin holding the given float32 state (numpy arrays, PyTorch names)."""
    m = twins.build(name)
    sd = m.state_dict()
    load = {}
    for k, v in sd.items():
        if k in state:
            load[k] = torch.from_numpy(np.asarray(state[k])).to(v.dtype).reshape(v.shape)
        elif k.endswith("num_batches_tracked"):
            load[k] = v
        else:
            raise KeyError(f"state lacks '{k}'")
    m.load_state_dict(load)
    m.stochastic = False
    return m.double()


def run_steps(name, student, x, labels, method="train", *, teacher=None, partner=None, box=None,
              freeze_bn=False, rep="scalar", rep_teacher_bn="running", rep_estimate="plain", rep_norm="batch",
              rep_weight=None, temperature=20.0, alpha=0.5, lwf_temperature=2.0,
              lwf_lambda=1.0, ewc_lambda=100.0, fisher=None, steps=3, optimizer="sgd", lr=0.05,
              momentum=0.1, nesterov=False, weight_decay=None, decisions=None, dtype=torch.float64):
    """K steps of `method` in float64.

    student, teacher: dict name -> float32 numpy (state_dict names); fisher: dict param -> array
    (EWC). x: float32 [N,3,S,S]; labels, partner: integer [N]; box: (x0, y0, x1, y1) or None.
    decisions: cored's decision tensors (dict) to replay, or None. dtype: float64, or float32
    to measure a case's conditioning (PyTorch's own float32 against the float64 reference).

    Returns a dict: terms [max(K,1), 5] (ce, kd, rep, reg, total per step), losses [K],
    loss (total of step 0), grads {param: step-0 gradient}, weights {name: state after K steps},
    marked (CutMix mask), cells / own_cells per step, teacher_cells, problems (replay
    violations, strings), stat (measured replay margins).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method}")
    if freeze_bn and method == "train":
        raise ValueError("freeze_bn applies to continual methods only")
    problems, stat = [], {}
    x = torch.from_numpy(np.asarray(x, np.float32)).to(dtype)
    y = torch.from_numpy(np.asarray(labels).astype(np.int64))
    part = None if partner is None else torch.from_numpy(np.asarray(partner).astype(np.int64))
    xm, marked = cutmix(x, y, part, box)

    net = build_twin(name, student).to(dtype)
    params = dict(net.named_parameters())
    head = HEADS[name]

    tnet = None
    if method in TEACHER_METHODS:
        if teacher is None:
            raise ValueError(f"{method} needs a teacher")
        tnet = build_twin(name, teacher).to(dtype).eval()
        for p in tnet.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            z_t = tnet(xm)

    # fixed anchors
    if method == "tg":
        w_t = {k: torch.from_numpy(np.asarray(teacher[k])).to(dtype) for k in params}
        with torch.no_grad():
            gamma = float(torch.sigmoid(-F.cross_entropy(z_t, y)))
        stat["gamma"] = gamma
    if method == "ewc":
        anchor = {k: p.detach().clone() for k, p in params.items()}
        fish = {k: torch.from_numpy(np.asarray(fisher[k])).to(dtype) for k in params}

    # the teacher's representation statistics: once, eval mode, un-mixed batch
    teacher_cells = None
    if method == "cored":
        with torch.no_grad():
            zt0, ft0 = tnet(x, return_features=True)
            if rep_teacher_bn == "student" and not freeze_bn:
                # the teacher's features under batch statistics (a copy: its running
                # statistics, which its eval-mode logits use, stay as they are)
                _, ft0 = copy.deepcopy(tnet).train()(x, return_features=True)
            elif rep_teacher_bn not in ("running", "student"):
                raise ValueError(rep_teacher_bn)
        p_t = true_prob(zt0, y)
        own = cells_of(p_t, y)
        teacher_cells = _replayed_cells("teacher cells", own, p_t,
                                        None if decisions is None else decisions.get("teacher.cells"), problems)
        if decisions is not None and "teacher.cells" not in decisions:
            problems.append("cored wrote no 'teacher.cells'")
        st0 = image_stats(ft0, rep)
        mu_t = cell_means(st0, teacher_cells)
        in_cell = torch.from_numpy(np.nonzero(np.asarray(teacher_cells) >= 0)[0])
        var_t = st0[in_cell].var(0, unbiased=True) if len(in_cell) > 1 else torch.zeros_like(st0[0])
        var_t = torch.clamp(torch.atleast_1d(var_t), min=0)
        sq_t = torch.atleast_1d((st0[in_cell] ** 2).mean(0)) if len(in_cell) else torch.zeros_like(var_t)
        var_t = torch.maximum(var_t, torch.maximum(1e-3 * var_t.mean(), 1e-2 * sq_t) + 1e-12)
        if rep_norm not in ("none", "batch"):
            raise ValueError(rep_norm)
        lam = rep_weight if rep_weight else (0.1 if rep_norm == "batch" else 1.0)
        stat["teacher_p"] = p_t.numpy()

    if optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, nesterov=nesterov,
                              weight_decay=weight_decay or 0.0)
    elif optimizer == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay or 0.0)
    elif optimizer == "adamw":
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01 if weight_decay is None else weight_decay)
    else:
        raise ValueError(optimizer)

    terms, losses, grads = [], [], None
    cells_used, own_cells, student_p = [], [], []
    for s in range(max(steps, 1)):
        pre = f"s{s}."
        # the student's cells, before its training forward (running statistics as they are now)
        if method == "cored" and not freeze_bn:
            net.eval()
            with torch.no_grad():
                ze = net(xm)
            p_s = true_prob(ze, y)
        net.train(not freeze_bn)
        opt.zero_grad()
        with _Replaying(decisions, pre, problems, f"step {s}"):
            z_s, tap = net(xm, return_features=True)
        net.train()

        ce = F.cross_entropy(z_s, y)
        zero = torch.zeros((), dtype=dtype)
        kd = rep_t = reg = zero
        total = ce
        if method in ("dl", "cored"):
            kd = alpha * temperature ** 2 * kl(z_s, z_t, temperature)
            total = (2 - alpha) * ce + kd
        elif method == "lwf":
            kd = lwf_lambda * lwf_temperature ** 2 * kl(z_s, z_t, lwf_temperature)
            total = ce + kd
        elif method == "tg":
            sp = sum(((p - w_t[k]) ** 2).sum() for k, p in params.items() if not k.startswith(head))
            cls = sum((p ** 2).sum() for k, p in params.items() if k.startswith(head))
            reg = gamma * (0.5 * sp + 0.5 * cls)
            total = ce + reg
        elif method == "ewc":
            reg = ewc_lambda / 2 * sum((fish[k] * (p - anchor[k]) ** 2).sum() for k, p in params.items())
            total = ce + reg
        if method == "cored":
            if freeze_bn:
                p_s = true_prob(z_s, y)
            own = cells_of(p_s, y)
            given = None
            if decisions is not None:
                given = decisions.get(pre + "cells")
                if given is None:
                    problems.append(f"cored wrote no '{pre}cells'")
            cells = _replayed_cells(f"step {s} cells", own, p_s, given, problems)
            if decisions is not None and pre + "tap_argmax" not in decisions:
                problems.append(f"cored wrote no '{pre}tap_argmax'")
            v = tap_max(tap, None if decisions is None else decisions.get(pre + "tap_argmax"),
                        f"step {s} tap", problems, stat)
            if rep == "scalar":
                v = v.mean(1)
            mu_s = cell_means(v, cells)
            rep_t = zero
            for k in sorted(set(mu_s) & set(mu_t)):
                members = np.nonzero(cells == k)[0]
                term = (mu_s[k] - mu_t[k]) ** 2
                if rep_estimate == "unbiased":
                    # cells of two images at least, minus the sample variance of their mean
                    if len(members) < 2:
                        continue
                    xs = v[torch.from_numpy(members)]
                    term = term - xs.var(0, unbiased=True) / len(members)
                if rep_norm == "batch":
                    term = len(members) / len(cells) * (torch.atleast_1d(term) / var_t).mean()
                rep_t = rep_t + lam * term.sum()
            total = total + rep_t
            cells_used.append(cells)
            own_cells.append(own)
            student_p.append(p_s.numpy())
        terms.append([float(ce), float(kd), float(rep_t), float(reg), float(total)])
        if steps == 0:
            total.backward()
            grads = {k: p.grad.detach().numpy().copy() for k, p in params.items()}
            break
        losses.append(float(total))
        total.backward()
        if s == 0:
            grads = {k: p.grad.detach().numpy().copy() for k, p in params.items()}
        opt.step()

    return {"terms": np.array(terms), "losses": np.array(losses), "loss": terms[0][4], "grads": grads,
            "weights": {k: v.detach().numpy().copy() for k, v in net.state_dict().items()},
            "marked": marked.numpy(), "cells": cells_used, "own_cells": own_cells, "student_p": student_p,
            "teacher_cells": teacher_cells, "problems": problems, "stat": stat}
