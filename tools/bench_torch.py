"""PyTorch side of `make bench`: the twin of a cored model (tools/twins.py), timed the way
`cored bench` times cored: median seconds per step over repetitions after warm-up.
Measures the training step, the CoReD step (teacher forward + student eval forward +
student train forward with CE, KD and a term on the feature tap + backward + SGD), and
inference at the batch and at batch 1. Prints one JSON object. Run it in its own process
so its memory use is its own."""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import twins  # noqa: E402


def median_time(fn, reps, warmup, min_time):
    t0 = time.perf_counter()
    for _ in range(warmup):
        fn()
    per = (time.perf_counter() - t0) / max(warmup, 1)
    inner = int(min_time / per) + 1 if per > 0 else 1
    times = []
    for _ in range(reps):
        s = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - s) / inner)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--only", choices=["train", "cored", "infer", "infer1"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    out = {"model": a.model, "batch": a.batch, "size": a.size, "threads": a.threads}
    if a.only in (None, "train"):
        m = twins.build(a.model).train()
        opt = torch.optim.SGD(m.parameters(), lr=1e-4, momentum=0.1)
        x = torch.rand(a.batch, 3, a.size, a.size) * 2 - 1
        y = torch.arange(a.batch) % 2

        def step():
            opt.zero_grad()
            F.cross_entropy(m(x), y).backward()
            opt.step()

        out["train_img_s"] = a.batch / median_time(step, a.reps, a.warmup, a.min_time)
        out["train_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        del m, opt
    if a.only in (None, "cored"):
        student = twins.build(a.model)
        teacher = twins.build(a.model).eval()
        teacher.load_state_dict(student.state_dict())
        opt = torch.optim.SGD(student.parameters(), lr=1e-4, momentum=0.1)
        x = torch.rand(a.batch, 3, a.size, a.size) * 2 - 1
        y = torch.arange(a.batch) % 2

        def cored_step():
            with torch.no_grad():
                t_logits = teacher(x)
                student.eval()
                student(x)  # the pass that assigns confidence bands
            student.train()
            opt.zero_grad()
            logits, feats = student(x, return_features=True)
            kd = F.kl_div(F.log_softmax(logits / 20, 1), F.softmax(t_logits / 20, 1),
                          reduction="batchmean") * 0.5 * 400
            rep = feats.amax((2, 3)).mean()
            (1.5 * F.cross_entropy(logits, y) + kd + rep * rep).backward()
            opt.step()

        out["cored_img_s"] = a.batch / median_time(cored_step, a.reps, a.warmup, a.min_time)
        del student, teacher, opt
    for what, n in (("infer", a.batch), ("infer1", 1)):
        if a.only not in (None, what):
            continue
        m = twins.build(a.model).eval()
        x = torch.rand(n, 3, a.size, a.size) * 2 - 1

        def fwd():
            with torch.no_grad():
                m(x)

        out[f"{what}_img_s"] = n / median_time(fwd, a.reps, a.warmup, a.min_time)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
