"""Loader throughput: images/s of cored's loader (2 threads, batch 32, 128 px, shuffle +
flip + opposite-class CutMix) (a) decoding a folder of 128-px JPEGs and (b) reading a pack.
Targets: >= 2,000 img/s from JPEG files, >= 20,000 img/s from a pack.

    make && /usr/bin/python3 tools/bench_data.py [--images 2000] [--reps 5] [--seconds 3]

Generates the JPEGs (random 128-px crops of real photos, quality 90) under /tmp once,
packs them with `cored pack`, runs `cored bench --data` on both, and reports the median of
--reps runs of each case.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PHOTOS = ["/usr/lib/python3/dist-packages/sklearn/datasets/images/china.jpg",
          "/usr/lib/python3/dist-packages/sklearn/datasets/images/flower.jpg"]


def make_data(root, n):
    marker = os.path.join(root, ".complete-%d" % n)
    if os.path.exists(marker):
        return
    rng = np.random.default_rng(0)
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in PHOTOS if os.path.isfile(p)]
    if not photos:
        yy, xx = np.mgrid[0:480, 0:640]
        photos = [np.clip(np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1)
                          + rng.normal(0, 20, (480, 640, 3)), 0, 255).astype(np.uint8)]
    for i in range(n):
        cls = "real" if i % 2 == 0 else "fake"
        d = os.path.join(root, "Bench", "train", cls, "v%02d" % (i % 50))
        os.makedirs(d, exist_ok=True)
        ph = photos[i % len(photos)]
        s = int(rng.integers(128, min(ph.shape[:2])))
        y, x = int(rng.integers(0, ph.shape[0] - s + 1)), int(rng.integers(0, ph.shape[1] - s + 1))
        Image.fromarray(ph[y:y + s, x:x + s]).resize((128, 128), Image.BILINEAR).save(
            os.path.join(d, "%05d.jpg" % i), quality=90)
    open(marker, "w").close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--root", default="/tmp/cored-bench-data")
    a = ap.parse_args()
    cored = os.environ.get("CORED", os.path.join(REPO, "cored"))
    make_data(a.root, a.images)
    pack = os.path.join(a.root, ".cored-pack-128.bin")
    subprocess.run([cored, "pack", a.root, "--size", "128", "--splits", "train", "--quiet"], check=True,
                   stdout=subprocess.DEVNULL)
    results = {}
    for name, extra in (("jpeg files", []), ("pack", ["--pack", pack])):
        out = subprocess.run([cored, "bench", "--data", a.root, "--task", "Bench", *extra,
                              "--threads", str(a.threads), "--batch", "32", "--size", "128",
                              "--seconds", str(a.seconds), "--reps", str(a.reps), "--json"],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        results[name] = [r["loader_img_s"]]
        print("%-10s %2d threads: median %8.0f img/s   (%d runs, %.0f..%.0f)" % (
            name, a.threads, r["loader_img_s"], a.reps, r["loader_min_img_s"], r["loader_max_img_s"]))
    ok = statistics.median(results["jpeg files"]) >= 2000 and statistics.median(results["pack"]) >= 20000
    print("targets (>= 2,000 and >= 20,000 img/s): %s" % ("met" if ok else "MISSED"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
