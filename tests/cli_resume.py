"""Resume: a run killed with SIGKILL at several moments and continued with --resume ends
bit-identical to an uninterrupted run (--threads 1 --deterministic), for task 1, a CoReD
step, and the protocol; SIGINT saves and exits 130; the last checkpoint stays loadable."""
import os
import signal
import subprocess
import sys
import tempfile
import time

import clitest as t

COMMON = ["--model", "tiny", "--size", "32", "--batch", "16", "--threads", "1", "--deterministic",
          "--save-every", "0.05", "--quiet"]


def killed_then_resumed(args, out, kills, resume_cmd, started=False):
    """Starts `cored args` (or resumes, when a first run already `started` in out), SIGKILLs
    it `kills` times, resumes each time, and finally lets it finish. The first kill lands as
    soon as a checkpoint shows up, so that at least one hits a running process even on a
    fast machine; the later ones wait a little longer each time."""
    hits = 0
    for k in range(kills):
        fresh = k == 0 and not started
        p = subprocess.Popen([t.CORED, *args] if fresh else [t.CORED, resume_cmd, "--resume", out, "--quiet"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while time.time() < deadline and p.poll() is None:
            if any(f.startswith("last.safetensors") or f == "protocol.json" for f in os.listdir(out) if os.path.isdir(out)):
                break
            time.sleep(0.002)
        time.sleep(0.04 * k * k)
        if p.poll() is None:
            p.kill()
            hits += 1
        p.wait()
    t.check(hits > 0, f"{out}: at least one kill hit a running process ({hits} of {kills})")
    r = t.run(resume_cmd, "--resume", out, "--quiet", ok=False)
    t.check(r.returncode == 0, f"resume of {out} finished: {r.stderr[-400:]}")
    return hits


def main():
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        t.make_data(data)

        # task 1
        ref, cut = os.path.join(tmp, "ref1"), os.path.join(tmp, "cut1")
        args = ["train", "--data", data, "--task", "A", "--epochs", "8", *COMMON]
        t.run(*args, "--out", ref)
        os.makedirs(cut)
        killed_then_resumed([*args, "--out", cut], cut, 3, "train")
        t.check(t.same_tensors(f"{ref}/best.safetensors", f"{cut}/best.safetensors"), "task 1: best identical after kills")
        t.check(t.same_tensors(f"{ref}/last.safetensors", f"{cut}/last.safetensors"), "task 1: last identical after kills")
        strip = lambda p: [",".join(l.split(",")[:-3]) for l in open(p).read().splitlines()]  # noqa: E731
        t.check(strip(f"{ref}/log.csv") == strip(f"{cut}/log.csv"), "task 1: the same log (timing columns aside)")

        # a CoReD step, interrupted with SIGINT first (saves, exit 130), then killed
        ref2, cut2 = os.path.join(tmp, "ref2"), os.path.join(tmp, "cut2")
        args = ["adapt", "--data", data, "--from", f"{ref}/best.safetensors", "--sources", "A", "--target", "B",
                "--method", "cored", "--epochs", "8", *COMMON]
        t.run(*args, "--out", ref2)
        p = subprocess.Popen([t.CORED, *args, "--out", cut2], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while time.time() < deadline and p.poll() is None and not os.path.exists(f"{cut2}/last.safetensors"):
            time.sleep(0.01)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate()
        t.check(p.returncode == 130, f"SIGINT: exit {p.returncode}, want 130 ({err.strip()[-200:]})")
        t.check("resume" in err, "SIGINT: the message says how to resume")
        t.check(os.path.exists(f"{cut2}/last.safetensors"), "SIGINT: last.safetensors saved")
        killed_then_resumed([*args, "--out", cut2], cut2, 2, "adapt", started=True)
        t.check(t.same_tensors(f"{ref2}/best.safetensors", f"{cut2}/best.safetensors"), "CoReD step: best identical")
        t.check(t.same_tensors(f"{ref2}/last.safetensors", f"{cut2}/last.safetensors"), "CoReD step: last identical")

        # the protocol, killed between and within steps
        ref3, cut3 = os.path.join(tmp, "ref3"), os.path.join(tmp, "cut3")
        args = ["protocol", "--data", data, "--tasks", "A,B", "--methods", "tl,cored", "--epochs", "4", *COMMON]
        t.run(*args, "--out", ref3)
        os.makedirs(cut3)
        killed_then_resumed([*args, "--out", cut3], cut3, 4, "protocol")
        a, b = open(f"{ref3}/report.csv").read(), open(f"{cut3}/report.csv").read()
        t.check(a == b, "protocol: identical report after kills")
        for sub in ("1-A", "tl/2-B", "cored/2-B"):
            t.check(t.same_tensors(f"{ref3}/{sub}/best.safetensors", f"{cut3}/{sub}/best.safetensors"),
                    f"protocol: {sub} best identical")

        # no stale temporary files remain after the kills
        for d in (cut, cut2, cut3):
            for root, _, files in os.walk(d):
                t.check(not [f for f in files if ".tmp." in f], f"no temporaries left in {root}")
    t.finish()


if __name__ == "__main__":
    sys.exit(main())
