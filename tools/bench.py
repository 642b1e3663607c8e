"""`make bench`: cored and its PyTorch twins side by side on this machine.

For each model, cored (`cored bench --json`) and PyTorch 1.13 (tools/bench_torch.py) run in
separate processes, alternating, for several rounds with the same threads, batch and size;
the table shows the medians over rounds and the ratio cored / PyTorch. PyTorch runs twice
per round: as installed, and with glibc told to keep freed memory (the "tuned" column;
see docs/PERFORMANCE.md). The "served b1" row is cored serving single-image requests with
one model per thread, next to PyTorch's batch-1 figure with its threads inside the layers
(the comparison the issue asks for: batch-1 work parallelises over images, not layers).

Environment: CORED (binary, default ./cored), BENCH_MODELS (default
"tiny,efficientnet-b0,xception"), BENCH_ROUNDS (default 3), BENCH_THREADS (default 2),
BENCH_BATCH (default 32), BENCH_SIZE (default 128).
"""
import json
import os
import statistics
import subprocess
import sys

CORED = os.environ.get("CORED", "./cored")
HERE = os.path.dirname(os.path.abspath(__file__))
TUNED = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
# (cored key, PyTorch key, label)
METRICS = [("train_img_s", "train_img_s", "train step"), ("cored_img_s", "cored_img_s", "CoReD step"),
           ("infer_img_s", "infer_img_s", "inference b{batch}"),
           ("infer1_img_s", "infer1_img_s", "inference b1"),
           ("serve1_img_s", "infer1_img_s", "served b1")]


def run_json(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    models = os.environ.get("BENCH_MODELS", "tiny,efficientnet-b0,xception").split(",")
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    threads = os.environ.get("BENCH_THREADS", "2")
    batch = os.environ.get("BENCH_BATCH", "32")
    size = os.environ.get("BENCH_SIZE", "128")
    common = ["--model", None, "--threads", threads, "--batch", batch, "--size", size]
    print(f"cored vs PyTorch {rounds} rounds, {threads} threads, batch {batch}, {size} px "
          f"(images/s, medians over rounds)")
    results = {}
    for model in models:
        args = list(common)
        args[1] = model
        res = {"cored": [], "torch": [], "torch_tuned": []}
        for r in range(rounds):
            res["cored"].append(run_json([CORED, "bench", "--json", *args]))
            res["torch"].append(run_json(["/usr/bin/python3", os.path.join(HERE, "bench_torch.py"), *args]))
            env = dict(os.environ, GLIBC_TUNABLES=TUNED)
            res["torch_tuned"].append(run_json(["/usr/bin/python3", os.path.join(HERE, "bench_torch.py"), *args], env))
            print(f"  {model}: round {r + 1}/{rounds} done", file=sys.stderr)
        results[model] = res
        print(f"\n{model}")
        print(f"  {'':18s} {'cored':>9s} {'PyTorch':>9s} {'ratio':>6s} {'tuned':>9s} {'ratio':>6s}")
        for key, tkey, label in METRICS:
            c = statistics.median(x[key] for x in res["cored"])
            t = statistics.median(x[tkey] for x in res["torch"])
            tt = statistics.median(x[tkey] for x in res["torch_tuned"])
            spread = max(x[key] for x in res["cored"]) / max(min(x[key] for x in res["cored"]), 1e-9) - 1
            tspread = max(x[tkey] for x in res["torch"]) / max(min(x[tkey] for x in res["torch"]), 1e-9) - 1
            print(f"  {label.format(batch=batch):18s} {c:9.2f} {t:9.2f} {c / t:5.2f}x {tt:9.2f} {c / tt:5.2f}x"
                  f"   (spread cored {100 * spread:.0f}%, PyTorch {100 * tspread:.0f}%)")
        c = statistics.median(x["train_peak_rss_mib"] for x in res["cored"])
        t = statistics.median(x["train_peak_rss_mib"] for x in res["torch"])
        tt = statistics.median(x["train_peak_rss_mib"] for x in res["torch_tuned"])
        print(f"  {'train peak RSS MiB':18s} {c:9.0f} {t:9.0f} {c / t:5.2f}x {tt:9.0f} {c / tt:5.2f}x")
        g = statistics.median(x["train_gflops"] for x in res["cored"])
        gi = statistics.median(x["infer_gflops"] for x in res["cored"])
        print(f"  cored: training step {g:.1f} GFLOP/s, inference b{batch} {gi:.1f} GFLOP/s")
    out = os.environ.get("BENCH_JSON")
    if out:
        with open(out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
