"""`make bench`: cored and its PyTorch twins side by side on this machine.

For each model, cored (`cored bench --json`) and PyTorch 1.13 (tools/bench_torch.py) run in
separate processes, alternating, for several rounds with the same threads, batch and size;
the table shows the medians over rounds and the ratio cored / PyTorch. PyTorch runs twice
per round: as installed, and with glibc told to keep freed memory (the "tuned" column:
GLIBC_TUNABLES below; PyTorch as installed re-faults the activation buffers glibc returned
to the system at every step). The "served b1" row is cored serving single-image requests
with one model per thread, next to PyTorch's batch-1 figure with its threads inside the
layers (batch-1 work parallelises over images, not layers).

Two more sections follow (docs/distributed.md):
  * data parallel: the training step as 1 process x 2 threads against mpirun -np 2 x 1 thread,
    with the gradients summed after the backward pass (--bucket-mb 0) and in buckets during it
    (the default): images/s, rank 0's milliseconds per step inside the collectives, the part
    of that time the buckets hide, and the bytes summed per step (skipped without mpirun or
    without MPI in cored);
  * thread scaling: the training step's ops by class (GEMM convolutions and linear layers,
    depthwise convolutions, BatchNorm, element-wise, the rest of the step) and the loader, at
    1 and 2 threads: the parallel efficiency t1 / (2 t2).

Environment: CORED (binary, default ./cored), BENCH_MODELS (default
"tiny,efficientnet-b0,xception"), BENCH_ROUNDS (default 3), BENCH_THREADS (default 2),
BENCH_BATCH (default 32), BENCH_SIZE (default 128), BENCH_SECTIONS (default
"torch,mpi,threads").
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from bench_faces import cpu_name

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


MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
# profile slots (cored_prof_slot_name) by op class
CLASSES = [("GEMM (conv, 1x1, linear)", ("conv kxk", "conv 1x1", "linear")), ("depthwise conv", ("depthwise",)),
           ("BatchNorm", ("batchnorm",)),
           ("element-wise", ("relu", "silu", "sigmoid", "add", "chscale", "dropout", "dropconnect", "maxpool",
                             "avgpool"))]


def median(rows, key):
    return statistics.median(r[key] for r in rows)


def data_parallel(models, rounds, batch, size):
    """1 process x 2 threads against 2 ranks x 1 thread, the gradients summed after the
    backward pass and in buckets during it."""
    mpirun = shutil.which("mpirun")
    if not mpirun:
        print("\ndata parallel: skipped (no mpirun: tools/deps.sh mpi)")
        return {}
    probe = subprocess.run([mpirun, "-np", "2", CORED, "bench", "--model", "tiny", "--only", "train", "--size", "32",
                            "--batch", "4", "--reps", "1", "--warmup", "0", "--min-time", "0", "--threads", "1",
                            "--json"], capture_output=True, text=True, env=MPI_ENV)
    if probe.returncode != 0:
        print(f"\ndata parallel: skipped (cored under mpirun failed: {probe.stderr.strip()[-200:]})")
        return {}
    print(f"\ndata parallel: training step, batch {batch} (the global batch), {size} px, {rounds} rounds "
          "(medians); 'in coll.': rank 0's ms per step inside the collectives, waiting for the other rank "
          "included")
    print(f"  {'':16s} {'1x2 img/s':>10s} {'2x1 img/s':>10s} {'in coll.':>9s} {'buckets':>10s} {'in coll.':>9s}"
          f" {'hidden':>7s} {'summed/step':>12s}")
    out = {}
    base = ["bench", "--only", "train", "--batch", batch, "--size", size, "--json"]
    for model in models:
        res = {"one": [], "after": [], "buckets": []}
        for r in range(rounds):
            res["one"].append(run_json([CORED, *base, "--model", model, "--threads", "2"]))
            for key, mb in (("after", "0"), ("buckets", "4")):
                res[key].append(run_json([mpirun, "-np", "2", CORED, *base, "--model", model, "--threads", "1",
                                          "--bucket-mb", mb], MPI_ENV))
            print(f"  {model}: round {r + 1}/{rounds} done", file=sys.stderr)
        after, buck = median(res["after"], "comm_ms_per_step"), median(res["buckets"], "comm_ms_per_step")
        hidden = 1 - buck / after if after > 0 else 0
        print(f"  {model:16s} {median(res['one'], 'train_img_s'):10.1f} {median(res['after'], 'train_img_s'):10.1f}"
              f" {after:7.1f}ms {median(res['buckets'], 'train_img_s'):10.1f} {buck:7.1f}ms {100 * hidden:6.0f}%"
              f" {res['one'][0]['grad_bytes_per_step'] / 1e6:9.1f} MB")
        out[model] = res
    return out


def thread_scaling(models, rounds, batch, size):
    """The training step's ops by class and the loader, at 1 and 2 threads."""
    print(f"\nthread scaling: training step, batch {batch}, {size} px, 1 -> 2 threads, {rounds} rounds (medians); "
          "efficiency = t1 / (2 t2)")
    out = {}
    for model in models:
        res = {1: [], 2: []}
        for r in range(rounds):
            for th in (1, 2):
                res[th].append(run_json([CORED, "bench", "--model", model, "--only", "train", "--profile", "--threads",
                                         str(th), "--batch", batch, "--size", size, "--json"]))
        print(f"  {model}")
        rows = []
        for label, slots in CLASSES:
            t = {th: statistics.median(sum(v["forward_s"] + v["backward_s"] for k, v in x["profile"].items()
                                           if k in slots) for x in res[th]) for th in (1, 2)}
            rows.append((label, t))
        step = {th: statistics.median(x["profile_step_s"] for x in res[th]) for th in (1, 2)}
        prof = {th: sum(t[th] for _, t in rows) for th in (1, 2)}
        rows.append(("rest of the step", {th: max(step[th] - prof[th], 0) for th in (1, 2)}))
        rows.append(("whole step", step))
        for label, t in rows:
            if t[1] <= 0 or t[2] <= 0:
                continue
            print(f"    {label:26s} {1e3 * t[1]:9.2f} ms {1e3 * t[2]:9.2f} ms   {t[1] / (2 * t[2]):5.2f}"
                  f"   ({100 * t[1] / step[1]:4.1f}% of the step at 1 thread)")
        out[model] = res
    # the loader: decoding JPEGs, and reading a pack
    import bench_data
    root = os.path.join(tempfile.gettempdir(), "cored-bench-data")
    bench_data.make_data(root, 2000)
    pack = os.path.join(root, f".cored-pack-{size}.bin")
    subprocess.run([CORED, "pack", root, "--size", size, "--splits", "train", "--quiet"], check=True,
                   stdout=subprocess.DEVNULL)
    print("  loader (flip, CutMix, shuffle), images/s")
    for label, extra in (("decoding JPEGs", []), ("reading a pack", ["--pack", pack])):
        t = {th: run_json([CORED, "bench", "--data", root, "--task", "Bench", *extra, "--threads", str(th), "--batch",
                           batch, "--size", size, "--seconds", "1", "--reps", str(max(rounds, 3)),
                           "--json"])["loader_img_s"] for th in (1, 2)}
        print(f"    {label:26s} {t[1]:9.0f}    {t[2]:9.0f}      {t[2] / (2 * t[1]):5.2f}")
        out[f"loader {label}"] = t
    return out


def main():
    models = os.environ.get("BENCH_MODELS", "tiny,efficientnet-b0,xception").split(",")
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    threads = os.environ.get("BENCH_THREADS", "2")
    batch = os.environ.get("BENCH_BATCH", "32")
    size = os.environ.get("BENCH_SIZE", "128")
    sections = os.environ.get("BENCH_SECTIONS", "torch,mpi,threads").split(",")
    common = ["--model", None, "--threads", threads, "--batch", batch, "--size", size]
    print(f"on {cpu_name()}, {os.cpu_count()} cores")
    results = {}
    if "mpi" in sections:
        results["data_parallel"] = data_parallel(models, rounds, batch, size)
    if "threads" in sections:
        results["thread_scaling"] = thread_scaling(models, rounds, batch, size)
    if "torch" in sections:
        print(f"\ncored vs PyTorch {rounds} rounds, {threads} threads, batch {batch}, {size} px "
              f"(images/s, medians over rounds)")
    for model in (models if "torch" in sections else []):
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
        peak = statistics.median(x.get("fma_peak_gflops", 0) for x in res["cored"])
        of_peak = (lambda v: f" ({100 * v / peak:.0f}% of the FMA peak)") if peak > 0 else (lambda v: "")
        print(f"  cored: training step {g:.1f} GFLOP/s{of_peak(g)}, inference b{batch} {gi:.1f} GFLOP/s{of_peak(gi)}"
              + (f"; FMA peak {peak:.0f} GFLOP/s (measured)" if peak > 0 else ""))
        step = statistics.median(x["train_img_s"] / x["cored_img_s"] for x in res["cored"])
        floor = statistics.median(1 + x["train_img_s"] / x["infer_img_s"] for x in res["cored"])
        print(f"  cored: CoReD step {step:.2f}x a TL step's time; its eval-mode band pass alone, a batch of"
              f" inference, makes 1 + t_infer / t_train = {floor:.2f}x")
        lat = [statistics.median(1e3 / x["infer1_img_s"] for x in res[k]) for k in ("cored", "torch", "torch_tuned")]
        print(f"  batch-1 latency: cored {lat[0]:.2f} ms, PyTorch {lat[1]:.2f} ms, tuned {lat[2]:.2f} ms")
    out = os.environ.get("BENCH_JSON")
    if out:
        with open(out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
