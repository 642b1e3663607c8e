"""Nothing a user gave cored is destroyed (docs/reliability.md): the reproducers of the
slips a new user makes, each refused clearly or answered correctly. Outputs that would
overwrite or delete an input, outputs inside the data set, two writers in one run folder,
failed writes on standard output, duplicate tasks, CSV escaping, detect without images."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

import clitest as t

TINY = ["--model", "tiny", "--size", "32", "--batch", "8", "--threads", "1", "--quiet"]


def csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def check_csv(tmp):
    """Task folders named with a quote and a newline: report.csv and log.csv stay one
    record per row, every field in its column."""
    data, out = os.path.join(tmp, "odd-data"), os.path.join(tmp, "odd")
    a, b = 'A"q', "B\nn"
    t.make_data(data, per_class=(16, 8, 8, 8), tasks=(a, b))
    t.run("protocol", "--data", data, "--tasks", f"{a},{b}", "--methods", "tl", "--out", out, "--epochs", "1", *TINY)
    rows = csv_rows(os.path.join(out, "report.csv"))
    t.check(len(rows) == 5 and all(len(r) == 6 for r in rows), f"report.csv: 6 fields per row ({rows})")
    t.check([r[3] for r in rows[1:3]] == [a, b], "report.csv: the task names read back")
    log = csv_rows(os.path.join(out, "tl", "2-" + b, "log.csv"))
    t.check(all(len(r) == len(log[0]) for r in log) and f"val_acc_{b}" in log[0], f"log.csv: one record per row ({log[0]})")


def refused(args, *names, what):
    """cored args exits 1 naming every one of names."""
    r = t.run(*args, ok=False)
    t.check(r.returncode == 1 and all(n in r.stderr for n in names), f"{what}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def unchanged(path, before, what):
    t.check(os.path.exists(path) and open(path, "rb").read() == before, f"{what}: {path} is intact")


def check_inputs_kept(tmp, data, base):
    """--force never deletes an input, an output never replaces an input, and nothing is
    written into the data set."""
    best = os.path.join(base, "best.safetensors")
    run = os.path.join(tmp, "copy")
    shutil.copytree(base, run)
    inside = os.path.join(run, "best.safetensors")
    before = open(inside, "rb").read()
    refused(["adapt", "--data", data, "--from", inside, "--sources", "A", "--target", "B", "--out", run, "--force",
             *TINY], inside, what="adapt --from RUN/best --out RUN --force")
    unchanged(inside, before, "adapt --force")
    refused(["train", "--data", data, "--task", "A", "--init", inside, "--out", run, "--force", *TINY], inside,
            what="train --init RUN/best --out RUN --force")
    unchanged(inside, before, "train --force")

    model = open(best, "rb").read()
    refused(["eval", "--model", best, "--data", data, "--tasks", "A", "--json", best], best, what="eval --json CKPT")
    unchanged(best, model, "eval --json")
    image = os.path.join(data, "A", "train", "real", "0000.png")
    pixels = open(image, "rb").read()
    refused(["pack", data, "--size", "32", "--out", image, "--quiet"], image, what="pack --out a training image")
    unchanged(image, pixels, "pack --out")

    x = os.path.join(tmp, "x.safetensors")
    labels = os.path.join(tmp, "labels.safetensors")
    t.st.save(x, {"input": np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)})
    t.st.save(labels, {"labels": np.array([0, 1], dtype=np.int64)})
    xb, lb = open(x, "rb").read(), open(labels, "rb").read()
    refused(["forward", "--model", "tiny", "--weights", best, "--input", x, "--out", x], x, what="forward --out INPUT")
    refused(["forward", "--model", "tiny", "--weights", best, "--input", x, "--out", best], best,
            what="forward --out WEIGHTS")
    refused(["grad", "--model", "tiny", "--weights", best, "--input", x, "--labels", labels, "--out",
             os.path.join(tmp, "g.safetensors"), "--out-weights", best], best, what="grad --out-weights WEIGHTS")
    refused(["grad", "--model", "tiny", "--weights", best, "--input", x, "--labels", labels, "--out", labels], labels,
            what="grad --out LABELS")
    unchanged(x, xb, "forward")
    unchanged(labels, lb, "grad")
    unchanged(best, model, "forward and grad")
    link = os.path.join(tmp, "link.safetensors")
    os.symlink(best, link)
    refused(["eval", "--model", link, "--data", data, "--tasks", "A", "--json", best], best,
            what="eval --json through a symbolic link")

    photos = os.path.join(tmp, "photos")
    os.makedirs(photos)
    rng = np.random.default_rng(1)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(os.path.join(photos, f"p{i}.png"))
    photo = os.path.join(photos, "p0.png")
    pb = open(photo, "rb").read()
    refused(["synth", "--real", photos, "--sheet", photo, "--size", "32", "--quiet"], photo,
            what="synth --sheet a source photo")
    unchanged(photo, pb, "synth --sheet")
    refused(["synth", "--real", photos, "--out", os.path.join(photos, "set"), "--size", "32", "--quiet"], photos,
            what="synth --out inside --real")
    earlier = os.path.join(tmp, "earlier-set")  # an earlier data set of cored synth, photos moved into it
    os.makedirs(earlier)
    open(os.path.join(earlier, "synth.json"), "w").write("{}")
    kept = os.path.join(earlier, "photos")
    shutil.copytree(photos, kept)
    refused(["synth", "--real", kept, "--out", earlier, "--force", "--size", "32", "--quiet"], kept,
            what="synth --real inside the --out that --force replaces")
    unchanged(os.path.join(kept, "p0.png"), pb, "synth --force")

    listing = sorted(os.walk(data))
    refused(["train", "--data", data, "--task", "A", "--out", data, *TINY], data, what="train --out DATA")
    refused(["train", "--data", data, "--task", "A", "--out", os.path.join(data, "A", "runs"), *TINY], data,
            what="train --out inside DATA")
    refused(["protocol", "--data", data, "--tasks", "A,B", "--out", os.path.join(data, "P"), *TINY], data,
            what="protocol --out inside DATA")
    t.check(sorted(os.walk(data)) == listing, "nothing was written into the data set")
    pack = os.path.join(data, ".cored-pack-32.bin")
    t.run("pack", data, "--size", "32", "--tasks", "A", "--splits", "test", "--quiet")
    t.check(os.path.exists(pack), "the default pack (a file directly in DATA) is still written")
    os.remove(pack)


def together(*commands):
    """Starts the cored commands at once; their (exit status, stderr, pid)."""
    ps = [subprocess.Popen([t.CORED, *c], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
          for c in commands]
    return [(p.wait(), p.communicate()[1], p.pid) for p in ps]


def one_proceeds(results, what):
    """Exactly one of two writers ran (exit 0) and the other exited 1 naming its pid."""
    done = [r for r in results if r[0] == 0]
    refused_ = [r for r in results if r[0] != 0]
    ok = len(done) == 1 and len(refused_) == 1 and refused_[0][0] == 1 and f"pid {done[0][2]}" in refused_[0][1]
    t.check(ok, f"{what}: exactly one proceeds, the other names it: {[(r[0], r[1].strip()[-160:]) for r in results]}")


def epochs_once(run, n):
    lines = open(os.path.join(run, "log.csv")).read().splitlines()[1:]
    return [int(l.split(",")[0]) for l in lines] == list(range(1, n + 1))


def check_lock(tmp, data):
    """Two writers in one run folder: the second is refused naming the first (train, a
    --force while it runs, --resume twice, the protocol)."""
    run = os.path.join(tmp, "locked")
    train = ["train", "--data", data, "--task", "A", "--out", run, "--epochs", "60", *TINY]
    one_proceeds(together(train, [*train, "--seed", "7"]), "two trains at once")
    t.check(epochs_once(run, 60), "log.csv holds each epoch once")

    first = subprocess.Popen([t.CORED, *train, "--force"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lock, config = os.path.join(run, ".cored.lock"), os.path.join(run, "config.json")
    deadline = time.time() + 30
    while time.time() < deadline and first.poll() is None:
        if os.path.exists(config) and os.path.exists(lock) and open(lock).read().strip() == str(first.pid):
            break
        time.sleep(0.005)
    r = t.run(*train, "--force", "--seed", "7", ok=False)
    t.check(r.returncode == 1 and f"pid {first.pid}" in r.stderr, f"--force while another run writes: {r.stderr.strip()}")
    r = t.run("train", "--resume", run, "--quiet", ok=False)
    t.check(r.returncode == 1 and f"pid {first.pid}" in r.stderr, f"--resume while the run writes: {r.stderr.strip()}")
    first.send_signal(signal.SIGINT)
    first.wait()
    t.check(first.returncode in (0, 130), f"the first run ends cleanly ({first.returncode})")
    resume = ["train", "--resume", run, "--quiet"]
    results = together(resume, resume)
    if first.returncode == 130:
        one_proceeds(results, "two --resume at once")
    t.check(epochs_once(run, 60), "after the resumes log.csv holds each epoch once")

    proto = ["protocol", "--data", data, "--tasks", "A,B", "--methods", "tl", "--out", os.path.join(tmp, "proto"),
             "--epochs", "20", *TINY]
    one_proceeds(together(proto, proto), "two protocols at once")


def check_stdout(data, base):
    """A result that cannot be written (disk full, standard output closed) exits 1."""
    best = os.path.join(base, "best.safetensors")
    commands = [["detect", "--model", best, os.path.join(data, "A", "test")],
                ["eval", "--model", best, "--data", data, "--tasks", "A"],
                ["eval", "--model", best, "--data", data, "--tasks", "A", "--json", "-"],
                ["data", data], ["--version"]]
    for c in commands:
        with open("/dev/full", "w") as full:
            r = subprocess.run([t.CORED, *c], stdout=full, stderr=subprocess.PIPE, text=True)
        t.check(r.returncode == 1 and "standard output" in r.stderr and "No space left" in r.stderr,
                f"{c[0]} > /dev/full: exit {r.returncode}: {r.stderr.strip()[-200:]}")
        r = subprocess.run([t.CORED, *c], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: os.close(1))
        t.check(r.returncode == 1 and "standard output" in r.stderr,
                f"{c[0]} with standard output closed: exit {r.returncode}: {r.stderr.strip()[-200:]}")


def check_refused_at_once(tmp, data, base):
    """A protocol listing a task twice, detect without images."""
    out = os.path.join(tmp, "twice")
    r = t.run("protocol", "--data", data, "--tasks", "A,A", "--methods", "tl", "--out", out, *TINY, ok=False)
    t.check(r.returncode == 1 and "listed twice" in r.stderr and not os.path.exists(out),
            f"protocol --tasks A,A is refused before anything runs: {r.stderr.strip()}")
    best = os.path.join(base, "best.safetensors")
    for name in ("empty", "x.jpg"):
        folder = os.path.join(tmp, name)
        os.makedirs(folder)
        r = t.run("detect", "--model", best, folder, ok=False)
        t.check(r.returncode == 1 and folder in r.stderr and "without photos or videos" in r.stderr,
                f"detect on a folder without images ({name}): exit {r.returncode}: {r.stderr.strip()}")


def check_small(tmp, data, base):
    """summary.json's seconds over resumes, last.safetensors' epoch, eval of a one-class
    split, a link to the split folder, a negative BN running variance."""
    run = os.path.join(tmp, "timed")  # stopped after 75 of 80 epochs: the resumed session is short
    p = subprocess.Popen([t.CORED, "train", "--data", data, "--task", "A", "--out", run, "--epochs", "80",
                          "--save-every", "0", *TINY], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = os.path.join(run, "log.csv")
    deadline = time.time() + 60
    while time.time() < deadline and p.poll() is None and not (os.path.exists(log) and len(open(log).readlines()) > 75):
        time.sleep(0.005)
    p.send_signal(signal.SIGINT)
    p.wait()
    t.run("train", "--resume", run, "--quiet")
    summary = json.load(open(os.path.join(run, "summary.json")))
    trained = sum(float(r[-2]) for r in csv_rows(log)[1:])
    t.check(p.returncode == 130 and summary["seconds"] >= trained,
            f"summary.json seconds {summary['seconds']:.3f} count every session (epochs alone took {trained:.3f})")
    meta = t.st.load(os.path.join(run, "last.safetensors"))[1]
    t.check(meta.get("epoch") == "80", f"last.safetensors metadata epoch is the epochs completed ({meta.get('epoch')})")
    best = t.st.load(os.path.join(run, "best.safetensors"))[1]
    t.check(best.get("epoch") == str(summary["best_epoch"]), "best.safetensors metadata epoch is the selected one")

    one = os.path.join(tmp, "one-class")
    shutil.copytree(data, one)
    shutil.rmtree(os.path.join(one, "A", "test", "fake"))
    r = t.run("eval", "--model", os.path.join(base, "best.safetensors"), "--data", one, "--tasks", "A", "--json", "-",
              ok=False)
    doc = r.stdout[r.stdout.find("{"):]
    t.check(r.returncode == 0 and json.loads(doc)["tasks"]["A"]["auc"] is None and "n/a" in r.stderr,
            f"eval of a split with only real images: AUC n/a (exit {r.returncode}: {r.stderr.strip()})")

    looped = os.path.join(tmp, "looped")
    shutil.copytree(data, looped)
    os.symlink("..", os.path.join(looped, "A", "val", "real", "up"))
    r = t.run("data", looped, "--tasks", "A", ok=False)
    row = [l.split() for l in r.stdout.splitlines() if l.startswith("A ") and " val " in l]
    t.check(r.returncode == 0 and row and row[0][2:4] == ["8", "8"] and "loop" in r.stderr,
            f"a link real/up -> .. is a loop, both classes counted: {row} {r.stderr.strip()}")

    tensors, meta = t.st.load(os.path.join(base, "best.safetensors"))
    name = next(k for k in tensors if k.endswith("running_var"))
    tensors[name][0] = -1.0
    bad = os.path.join(tmp, "negative-var.safetensors")
    t.st.save(bad, tensors, meta)
    r = t.run("train", "--data", data, "--task", "A", "--init", bad, "--out", os.path.join(tmp, "neg"), *TINY, ok=False)
    t.check(r.returncode == 1 and name in r.stderr and "negative" in r.stderr,
            f"a negative BN running variance in --init is refused: {r.stderr.strip()}")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        t.make_data(data, per_class=(16, 8, 8, 8))
        base = os.path.join(tmp, "base")
        t.run("train", "--data", data, "--task", "A", "--out", base, "--epochs", "2", *TINY)
        check_inputs_kept(tmp, data, base)
        check_lock(tmp, data)
        check_stdout(data, base)
        check_refused_at_once(tmp, data, base)
        check_small(tmp, data, base)
        check_csv(tmp)
    t.finish()


if __name__ == "__main__":
    sys.exit(main())
