"""Cost of a CoReD step against a TL step: the same model, data, batch and threads, trained
for a few epochs each with `cored adapt`; the ratio of the median per-epoch training
images/s (log.csv; validation and data loading excluded). Runs alternate, several rounds.

usage: bench_method.py [--model tiny] [--size 128] [--batch 32] [--threads 2] [--rounds 3]
"""
import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import clitest  # noqa: E402

CORED = os.environ.get("CORED", "./cored")


def ips(run):
    rows = list(csv.DictReader(open(os.path.join(run, "log.csv"))))
    return statistics.median(float(r["images_per_s"]) for r in rows[1:] or rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--images", type=int, default=128, help="transfer images per class")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        clitest.make_data(data, size=a.size, per_class=(a.batch, 8, 8, a.images))
        common = ["--model", a.model, "--size", str(a.size), "--batch", str(a.batch), "--threads", str(a.threads),
                  "--quiet"]
        t1 = os.path.join(tmp, "t1")
        subprocess.run([CORED, "train", "--data", data, "--task", "A", "--epochs", "1", "--out", t1, *common], check=True)
        res = {"tl": [], "dl": [], "cored": []}
        for r in range(a.rounds):
            for m in res:
                out = os.path.join(tmp, f"{m}{r}")
                subprocess.run([CORED, "adapt", "--data", data, "--from", f"{t1}/best.safetensors", "--sources", "A",
                                "--target", "B", "--method", m, "--epochs", str(a.epochs), "--out", out, *common],
                               check=True)
                res[m].append(ips(out))
        med = {m: statistics.median(v) for m, v in res.items()}
        print(f"{a.model} {a.size} px batch {a.batch}, {a.threads} threads, {a.rounds} rounds (training images/s, median):")
        for m, v in med.items():
            print(f"  {m:6s} {v:8.1f} img/s   step cost vs tl: {med['tl'] / v:.2f}x   (runs: "
                  + ", ".join(f"{x:.1f}" for x in res[m]) + ")")


if __name__ == "__main__":
    main()
