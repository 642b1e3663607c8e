"""Data-parallel training under mpirun (docs/distributed.md): N ranks against one process.

  * --sync-bn: N ranks with global batch B give the weights and losses of one process with
    batch B (within 1e-4 relative) for task 1 (tiny, and EfficientNet-B0 with its dropout and
    drop-connect) and for every continual method that has its own
    distributed part (CoReD's representation term, TG's gamma, EWC's penalty), with the
    default augmentation (the shards are cut from the very batch one process would draw);
    -np 3 once, for shards of unequal size and a last batch of its own size;
  * the gradients summed in buckets during backward give the bits of one sum after it;
  * without --sync-bn (per-rank BN statistics) the ranks still hold the same weights: every
    step is checked (CORED_DIST_CHECK=1 compares a checksum of each rank's weights);
  * only rank 0 writes the run; a run interrupted under -np 2 resumes under -np 3;
  * cored protocol under -np 2 --sync-bn reports what one process reports, its test scores
    (split across the ranks) one process's;
  * a failing rank (a corrupt image with --strict) and a killed rank stop the whole job
    within seconds, naming the rank.
Skipped, with a message, when cored was built without MPI or mpirun is missing."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

import clitest as t

MPIRUN = shutil.which("mpirun")
# Under the sanitizer build (make SANITIZE=1 test) LeakSanitizer would report the allocations
# Open MPI's plug-ins keep until exit (in modules unloaded by then, so no suppression can name
# them); cored's own leaks are checked by every other test of that build.
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", CORED_DIST_CHECK="1",
           OMPI_MCA_rmaps_base_oversubscribe="1",
           ASAN_OPTIONS=":".join(x for x in (os.environ.get("ASAN_OPTIONS"), "detect_leaks=0") if x))
COMMON = ["--model", "tiny", "--size", "32", "--batch", "16", "--threads", "1", "--loader-threads", "1", "--quiet",
          "--save-every", "0"]


def mpirun(np_, *args, ok=True, timeout=300):
    r = subprocess.run([MPIRUN, "--oversubscribe", "-np", str(np_), t.CORED, *args], capture_output=True, text=True,
                       env=ENV, timeout=timeout)
    if ok and r.returncode != 0:
        raise RuntimeError(f"mpirun -np {np_} cored {' '.join(args)} exited {r.returncode}:\n{r.stderr[-3000:]}")
    return r


def close(a, b, rel=1e-4, model_only=False):
    """Every tensor of a within rel (relative to the tensor's largest magnitude) of b's.
    model_only: the model's weights and running statistics, not the optimiser's state, and
    not the tensors that hold only rounding noise (all below 1e-6: the biases of a BN whose
    output reaches another BN before anything else, whose gradient is zero in exact arithmetic)."""
    ta, tb = t.tensors(a), t.tensors(b)
    if sorted(ta) != sorted(tb):
        return False, "different tensors"
    worst, name = 0.0, ""
    for k in ta:
        x, y = ta[k].astype(np.float64), tb[k].astype(np.float64)
        scale = max(np.abs(x).max(initial=0), np.abs(y).max(initial=0), 1e-12)
        if model_only and (k.startswith("cored.") or scale < 1e-6):
            continue
        d = np.abs(x - y).max(initial=0) / scale
        if d > worst:
            worst, name = d, k
    return worst <= rel, f"worst {worst:.2e} at {name}"


def procs(marker):
    """Pids of the processes whose command line holds marker (mpirun and its ranks)."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            if marker.encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                found.append(int(pid))
        except (OSError, ValueError):
            continue
    return found


def kill_job(marker):
    """SIGKILL to mpirun and every rank (they are not all in mpirun's process group), then
    waits until they are gone."""
    for _ in range(200):
        pids = procs(marker)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.05)


def losses(run):
    rows = open(f"{run}/log.csv").read().splitlines()[1:]
    return np.array([[float(v) for v in r.split(",")[1:6]] for r in rows])


def same_losses(a, b, rel=1e-4):
    la, lb = losses(a), losses(b)
    return la.shape == lb.shape and np.all(np.abs(la - lb) <= rel * np.maximum(np.abs(la), 1e-3))


def equivalent(one, many, what, model_only=False):
    ok, how = close(f"{one}/last.safetensors", f"{many}/last.safetensors", model_only=model_only)
    t.check(ok, f"{what}: weights within 1e-4 of one process ({how})")
    t.check(same_losses(one, many), f"{what}: logged losses within 1e-4 of one process")
    print(f"  {what}: {how}")


def main():
    if not MPIRUN or os.environ.get("CORED_MPI_BUILT", "1") != "1":
        print("  skipped: cored was built without Open MPI (tools/deps.sh mpi, then make MPI=1)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        # 48 training images per task: 3 steps of 16 per epoch; val 2 x 10
        t.make_data(data, per_class=(24, 10, 4, 24))
        out = lambda name: os.path.join(tmp, name)  # noqa: E731

        # task 1, 3 steps: one process against -np 2 --sync-bn (default augmentation)
        a1 = ["train", "--data", data, "--task", "A", "--epochs", "1", *COMMON]
        t.run(*a1, "--out", out("one"))
        mpirun(2, *a1, "--sync-bn", "--out", out("two"))
        equivalent(out("one"), out("two"), "task 1, -np 2 --sync-bn")
        # the gradients summed in buckets during backward (27 of them) or in one sum after it:
        # the same sums to the bit (each element is added in rank order either way)
        for mb in ("0.01", "0"):
            mpirun(2, *a1, "--sync-bn", "--bucket-mb", mb, "--out", out(f"bucket{mb}"))
            d = json.load(open(f"{out(f'bucket{mb}')}/summary.json"))["distributed"]
            early = d["gradient_bytes_started_during_backward"] / (3 * 4 * 65890)
            t.check(early > 0.5 if mb != "0" else early == 0,
                    f"--bucket-mb {mb}: {100 * early:.0f}% of the gradients summed during the backward pass")
            ta, tb = t.tensors(f"{out('two')}/last.safetensors"), t.tensors(f"{out(f'bucket{mb}')}/last.safetensors")
            t.check(sorted(ta) == sorted(tb) and all(np.array_equal(ta[k], tb[k]) for k in ta),
                    f"--bucket-mb {mb}: the same weights to the bit as the default buckets")
        ranks_files = sorted(os.listdir(out("two")))
        t.check(ranks_files == sorted(os.listdir(out("one"))), f"rank 0 alone writes the run: {ranks_files}")

        # -np 3: shards of 6, 7 and 7; 2 epochs, batch 20 leaves a last batch of 8 (2, 3, 3)
        a3 = ["train", "--data", data, "--task", "A", "--epochs", "2", *COMMON, "--batch", "20"]
        t.run(*a3, "--out", out("one3"))
        mpirun(3, *a3, "--sync-bn", "--out", out("three"))
        equivalent(out("one3"), out("three"), "task 1, -np 3 --sync-bn, uneven shards")

        # EfficientNet-B0 with its dropout and drop-connect: the masks are drawn per image of the
        # whole batch, so -np 2 --sync-bn trains as one process. Its 16 blocks amplify the rounding
        # differences of the first step (within 6e-6) over the next two as a higher learning rate
        # does (SGD at 0.05: 1.6e-4 from one process, 3.9e-4 between -np 2 and -np 3); Adam turns the
        # rounding noise of a zero gradient into +-lr, so SGD at 0.01 (docs/distributed.md)
        ae = ["train", "--data", data, "--task", "A", "--epochs", "1", *COMMON, "--model", "efficientnet-b0", "--size",
              "64", "--optimizer", "sgd", "--lr", "0.01"]
        t.run(*ae, "--out", out("eff1"))
        mpirun(2, *ae, "--sync-bn", "--out", out("eff2"))
        equivalent(out("eff1"), out("eff2"), "EfficientNet-B0, -np 2 --sync-bn", model_only=True)

        # per-rank BN statistics: a different result, but every rank holds the same weights
        r = mpirun(2, *a1, "--out", out("perrank"), ok=False)
        t.check(r.returncode == 0, f"-np 2 without --sync-bn: ranks agree at every step ({r.stderr[-300:]})")

        # continual steps: the methods with a distributed term of their own
        # (CoReD's teacher statistics with --rep-teacher-bn student come from a pass of their own
        # in batch statistics, sharded like the training batches)
        for name, method, extra in (("cored", "cored", []), ("cored-student", "cored", ["--rep-teacher-bn", "student"]),
                                    ("tg", "tg", []), ("ewc", "ewc", []), ("replay", "replay", ["--replay-size", "8"])):
            a2 = ["adapt", "--data", data, "--from", f"{out('one')}/best.safetensors", "--sources", "A", "--target",
                  "B", "--method", method, "--epochs", "1", *COMMON, *extra]
            t.run(*a2, "--out", out(f"{name}1"))
            mpirun(2, *a2, "--sync-bn", "--out", out(f"{name}2"))
            equivalent(out(f"{name}1"), out(f"{name}2"), f"{name} step, -np 2 --sync-bn")

        # the protocol: rank 0 evaluates and reports; the same report as one process
        a6 = ["protocol", "--data", data, "--tasks", "A,B", "--methods", "tl,cored", "--epochs", "1", *COMMON,
              "--sync-bn"]
        t.run(*a6, "--out", out("proto1"))
        mpirun(2, *a6, "--out", out("proto2"))
        rows = lambda p: [r.split(",") for r in open(f"{p}/report.csv").read().splitlines()]  # noqa: E731
        r1, r2 = rows(out("proto1")), rows(out("proto2"))

        def near(a, b):
            try:
                return abs(float(a) - float(b)) <= 0.05
            except ValueError:
                return a == b
        t.check(len(r1) == len(r2) and all(len(x) == len(y) and all(near(a, b) for a, b in zip(x, y))
                                           for x, y in zip(r1, r2)), "protocol -np 2: the report of one process")
        # the test scores, split across the ranks and gathered in rank order: one process's list
        evals = [os.path.relpath(d, out("proto1")) for d, _, files in os.walk(out("proto1"))
                 if "eval.safetensors" in files]
        t.check(len(evals) == 3, f"protocol: an evaluation per step ({evals})")
        for rel in evals:
            e1, e2 = (t.tensors(os.path.join(out(p), rel, "eval.safetensors")) for p in ("proto1", "proto2"))
            t.check(sorted(e1) == sorted(e2) and all(e1[k].shape == e2[k].shape and
                                                     np.abs(e1[k] - e2[k]).max(initial=0) < 1e-4 for k in e1),
                    f"protocol -np 2: the test scores of {rel} are one process's")

        # killed under -np 2 (mid-epoch checkpoints every 0.02 s), resumed under -np 3 (10 epochs:
        # float rounding differences grow with training, to 0.4 relative after 30 epochs here)
        a4 = ["train", "--data", data, "--task", "A", "--epochs", "10", *COMMON]
        t.run(*a4, "--out", out("ref4"))
        p = subprocess.Popen([MPIRUN, "--oversubscribe", "-np", "2", t.CORED, *a4, "--sync-bn", "--save-every",
                              "0.02", "--out", out("int4")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=ENV, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline and p.poll() is None and not os.path.exists(f"{out('int4')}/last.safetensors"):
            time.sleep(0.01)
        kill_job(out("int4"))
        p.wait()
        t.check(not os.path.exists(f"{out('int4')}/summary.json"), "killed under -np 2 before the end")
        mpirun(3, "train", "--resume", out("int4"), "--quiet")
        equivalent(out("ref4"), out("int4"), "run killed under -np 2, resumed under -np 3")

        # a failing rank: a corrupt training image with --strict; the rank holding it ends the job
        bad = os.path.join(tmp, "bad")
        shutil.copytree(data, bad)
        with open(f"{bad}/A/train/fake/0007.png", "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n not a png")
        t0 = time.time()
        r = mpirun(2, "train", "--data", bad, "--task", "A", "--epochs", "1", *COMMON, "--strict", "--out",
                   out("fail"), ok=False, timeout=120)
        took = time.time() - t0
        t.check(r.returncode != 0, "a failing rank: the job fails")
        t.check("rank " in r.stderr and "0007.png" in r.stderr,
                f"a failing rank: the message names the rank and the cause ({r.stderr.strip()[:300]})")
        t.check(took < 30, f"a failing rank: the job ends within seconds ({took:.1f} s)")
        t.check(not os.path.exists(f"{out('fail')}/last.safetensors") and
                not any(".tmp" in n for n in os.listdir(out("fail"))), "a failing rank: no checkpoint, no temporary")

        # a killed rank (SIGKILL) stops the job
        a5 = ["train", "--data", data, "--task", "A", "--epochs", "100000", *COMMON, "--out", out("kill")]
        p = subprocess.Popen([MPIRUN, "--oversubscribe", "-np", "2", t.CORED, *a5], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline and not os.path.exists(f"{out('kill')}/last.safetensors"):
            time.sleep(0.05)
        victim = None
        for pid in os.listdir("/proc"):
            try:
                env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
                cmd = open(f"/proc/{pid}/cmdline", "rb").read()
            except OSError:
                continue
            if out("kill").encode() in cmd and b"OMPI_COMM_WORLD_RANK=1" in env and b"mpirun" not in cmd.split(b"\0")[0]:
                victim = int(pid)
        t.check(victim is not None, "a killed rank: found rank 1")
        t0 = time.time()
        if victim:
            os.kill(victim, signal.SIGKILL)
        try:
            _, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            _, err = p.communicate()
        took = time.time() - t0
        kill_job(out("kill"))  # nothing may outlive the test
        t.check(p.returncode != 0, f"a killed rank: the job fails (exit {p.returncode})")
        t.check("rank 1" in err, f"a killed rank: the message names it ({err.strip()[:300]})")
        t.check(took < 30, f"a killed rank: the job ends within seconds ({took:.1f} s)")


if __name__ == "__main__":
    main()
    t.finish()
