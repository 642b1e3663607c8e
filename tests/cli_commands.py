"""The command line: --help everywhere, exit status 2 for unknown options and missing
arguments, 1 with a clear message for bad input; train/eval/detect outputs; the run folder
is never overwritten without --force; the non-finite guard; progress without a terminal."""
import json
import os
import sys
import tempfile

import clitest as t

COMMANDS = ["train", "adapt", "eval", "protocol", "detect", "forward", "grad", "init", "bench", "data", "pack", "synth"]


def main():
    for cmd in COMMANDS:
        r = t.run(cmd, "--help", ok=False)
        t.check(r.returncode == 0 and "usage: cored " + cmd in r.stdout, f"{cmd} --help")
        r = t.run(cmd, "--no-such-option", ok=False)
        t.check(r.returncode == 2 and "--no-such-option" in r.stderr, f"{cmd}: unknown option exits 2 ({r.returncode})")
    r = t.run("train", "--help")
    t.check("default 0.05" in r.stdout and "default 128" in r.stdout, "train --help shows defaults")
    t.check(t.run("no-such-command", ok=False).returncode == 2, "unknown command exits 2")
    t.check(t.run(ok=False).returncode == 2, "no command exits 2")
    t.check(t.run("train", "--data", "x", ok=False).returncode == 2, "train without --task/--out exits 2")
    t.check(t.run("train", "--epochs", "zero", ok=False).returncode == 2, "a non-number exits 2")
    r = t.run("grad", "--weights", "w", "--input", "x", "--labels", "l", "--out", "g", ok=False)
    t.check(r.returncode == 2 and "--model" in r.stderr, "grad without --model exits 2")
    # bench, forward and init on the option system: required options marked, examples
    for cmd in ("bench", "forward", "init"):
        r = t.run(cmd, "--help")
        t.check("(required)" in r.stdout and "\nexamples:\n  cored " + cmd in r.stdout, f"{cmd} --help layout")
    r = t.run("bench", ok=False)
    t.check(r.returncode == 2 and "--model is required (or --data or --faces)" in r.stderr, "bench without --model or --data")
    t.check(t.run("init", "--model", "tiny", "--out", "x", ok=False).returncode == 2, "init without --seed exits 2")
    r = t.run("bench", "--model", "tiny", "--size", "32", "--batch", "4", "--threads", "1", "--reps", "1",
              "--warmup", "0", "--min-time", "0", "--only", "cored", "--rep", "vector", "--optimizer", "adam", "--json")
    b = json.loads(r.stdout)
    t.check(b["cored_img_s"] > 0 and b["train_img_s"] == 0 and b["rep"] == "vector" and b["optimizer"] == "adam",
            f"bench --only cored with the step's settings: {b}")
    with open("/proc/cpuinfo") as f:
        fma = " fma " in f.read().replace("\n", " ")
    t.check(b["fma_peak_gflops"] > 1 if fma else b["fma_peak_gflops"] == 0,
            f"bench measures the FMA peak where the CPU has FMA: {b['fma_peak_gflops']}")

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        t.make_data(data, per_class=(40, 16, 20, 16))
        run = os.path.join(tmp, "run")
        common = ["--model", "tiny", "--size", "32", "--batch", "16", "--epochs", "3"]
        task1 = ["--model", "tiny", "--size", "32", "--batch", "16", "--epochs", "10"]

        r = t.run("train", "--data", os.path.join(tmp, "missing"), "--task", "A", "--out", run, *common, ok=False)
        t.check(r.returncode == 1 and "missing" in r.stderr, "a missing data folder is named")
        r = t.run("train", "--data", data, "--task", "Nope", "--out", run, *common, ok=False)
        t.check(r.returncode == 1 and "Nope" in r.stderr, "a missing task is named")
        r = t.run("train", "--data", data, "--task", "A_B", "--out", run, *common, ok=False)
        t.check(r.returncode == 1 and "'_'" in r.stderr, "task names with '_' are refused")

        # progress without a terminal: plain lines every --log-every batches and one per epoch
        r = t.run("train", "--data", data, "--task", "A", "--out", run, "--log-every", "2", *common)
        lines = r.stderr.splitlines()
        t.check(sum("batch 2/" in l for l in lines) == 3 and sum("val acc/AUC" in l for l in lines) == 3,
                "plain progress lines")
        t.check("\r" not in r.stderr, "no carriage returns without a terminal")
        for f in ("config.json", "log.csv", "log.jsonl", "best.safetensors", "last.safetensors", "summary.json"):
            t.check(os.path.exists(os.path.join(run, f)), f"run folder has {f}")
        log = [json.loads(l) for l in open(os.path.join(run, "log.jsonl"))]
        t.check(len(log) == 3 and set(log[0]["val"]) == {"A"} and "images_per_s" in log[0], "log.jsonl per epoch")
        meta = t.st.load(os.path.join(run, "best.safetensors"))[1]
        t.check(meta.get("model") == "tiny" and meta.get("tasks") == "A" and meta.get("kind") == "best"
                and meta.get("method") == "train" and "epoch" in meta and meta.get("cored_version"),
                f"best checkpoint metadata {meta}")

        before = open(os.path.join(run, "best.safetensors"), "rb").read()
        r = t.run("train", "--data", data, "--task", "A", "--out", run, *common, ok=False)
        t.check(r.returncode == 1 and "--force" in r.stderr, "an existing run is not overwritten")
        t.check(before == open(os.path.join(run, "best.safetensors"), "rb").read(), "the old run is intact")
        t.check(t.run("train", "--data", data, "--task", "A", "--out", run, "--force", "--quiet", *task1).returncode == 0,
                "--force replaces a run")
        r = t.run("train", "--resume", run, "--epochs", "5", ok=False)
        t.check(r.returncode == 2, "--resume refuses changed settings")

        # eval and detect
        r = t.run("eval", "--model", os.path.join(run, "best.safetensors"), "--data", data, "--tasks", "A,B",
                  "--json", "-")
        doc = json.loads(r.stdout)   # standard output holds the JSON alone
        t.check(set(doc["tasks"]) == {"A", "B"} and doc["tasks"]["A"]["n_real"] == 20, "eval JSON")
        t.check("AUC %" in r.stderr, "eval --json -: the table on standard error")
        t.check(doc["tasks"]["A"]["auc"] > 0.9, f"task 1 is learned (AUC {doc['tasks']['A']['auc']:.3f})")
        r = t.run("detect", "--model", os.path.join(run, "best.safetensors"), os.path.join(data, "A", "test", "fake"),
                  os.path.join(data, "A", "test", "real", "0000.png"))
        rows = [json.loads(l) for l in r.stdout.splitlines()]
        t.check(len(rows) == 21 and all(0 <= x["p_fake"] <= 1 and x["label"] in ("real", "fake") for x in rows),
                "detect: one JSON line per image")
        t.check(rows == sorted(rows[:20], key=lambda x: x["path"]) + rows[20:], "detect: folders in sorted order")
        bad = os.path.join(tmp, "bad.jpg")
        open(bad, "wb").write(b"not an image")
        r = t.run("detect", "--model", os.path.join(run, "best.safetensors"), bad, os.path.join(data, "A", "test", "real",
                  "0001.png"), ok=False)
        rows = [json.loads(l) for l in r.stdout.splitlines()]
        t.check(r.returncode == 1 and "error" in rows[0] and "p_fake" in rows[1], "detect: a bad image is reported, the rest scored")

        # the non-finite guard: a learning rate that blows up stops the run, nothing non-finite is saved
        nan_run = os.path.join(tmp, "nan")
        r = t.run("train", "--data", data, "--task", "A", "--out", nan_run, "--lr", "1000", "--quiet", *common, ok=False)
        t.check(r.returncode == 1 and "non-finite" in r.stderr and "epoch" in r.stderr and "step" in r.stderr,
                f"non-finite guard: {r.stderr.strip()[-200:]}")
        t.check("lower --lr (now 1000)" in r.stderr, f"non-finite guard advises: {r.stderr.strip()[-200:]}")
        for f in ("best.safetensors", "last.safetensors"):
            p = os.path.join(nan_run, f)
            if os.path.exists(p):
                import numpy as np
                t.check(all(np.all(np.isfinite(v)) for v in t.tensors(p).values()), f"{f} holds only finite values")

        # adapt infers the model from the checkpoint and reads the transfer set
        step = os.path.join(tmp, "step")
        r = t.run("adapt", "--data", data, "--from", os.path.join(run, "best.safetensors"), "--sources", "A",
                  "--target", "B", "--out", step, "--size", "32", "--batch", "16", "--epochs", "2", "--quiet")
        cfg = json.load(open(os.path.join(step, "config.json")))
        t.check(cfg["model"] == "tiny" and cfg["method"] == "cored" and cfg["sources"] == ["A"], "adapt config")
        meta = t.st.load(os.path.join(step, "best.safetensors"))
        t.check(meta[1].get("tasks") == "A,B" and "cored.rep.mu" in meta[0], "the teacher statistics are saved")
        # --trace: one JSON line per step, and the run is the same bits without it
        traced, trace = os.path.join(tmp, "traced"), os.path.join(tmp, "trace.jsonl")
        t.run("adapt", "--data", data, "--from", os.path.join(run, "best.safetensors"), "--sources", "A",
              "--target", "B", "--out", traced, "--size", "32", "--batch", "16", "--epochs", "2", "--quiet",
              "--trace", trace)
        lines = [json.loads(l) for l in open(trace)]
        t.check(len(lines) == 4 and all(l["method"] == "cored" and len(l["mu_t"]) == 10 and l["w_total"] > 0
                                        and (l["w_rep"] > 0) == (l["cells_used"] > 0) for l in lines)
                and any(l["cells_used"] > 0 for l in lines),
                "trace lines: " + "; ".join(f"step {l['step']} cells {l['cells_used']} w_rep {l['w_rep']:.3g}" for l in lines))
        same = all(open(os.path.join(d, "best.safetensors"), "rb").read() ==
                   open(os.path.join(step, "best.safetensors"), "rb").read() for d in (traced,))
        t.check(same, "a traced run ends with the same weights")
        r = t.run("adapt", "--data", data, "--from", os.path.join(run, "best.safetensors"), "--sources", "A",
                  "--target", "B", "--out", os.path.join(tmp, "nan-step"), "--size", "32", "--batch", "16",
                  "--epochs", "2", "--freeze-bn", "--lr", "1000", "--quiet", ok=False)
        t.check(r.returncode == 1 and "non-finite" in r.stderr and "train without --freeze-bn" in r.stderr,
                f"a diverging --freeze-bn step names the term and advises: {r.stderr.strip()[-300:]}")

        # --freeze-bn is for continual steps: train has no such option, the protocol's task 1 trains its BN
        r = t.run("train", "--data", data, "--task", "A", "--out", os.path.join(tmp, "fz"), "--freeze-bn", *common,
                  ok=False)
        t.check(r.returncode == 2 and "unknown option '--freeze-bn'" in r.stderr, f"train --freeze-bn: {r.stderr.strip()}")
        proto = os.path.join(tmp, "proto")
        r = t.run("protocol", "--data", data, "--tasks", "A,B", "--methods", "tl", "--out", proto, "--freeze-bn",
                  "--quiet", *common)
        # the summary's columns name the step (mean AUC after step k), not a bare task name
        md = open(os.path.join(proto, "report.md")).read()
        rep = json.load(open(os.path.join(proto, "report.json")))
        t.check("after 1:A" in r.stdout and "after 2:B" in r.stdout and "T2 B" not in r.stdout,
                f"protocol's summary columns say after which step: {r.stdout.splitlines()[:2]}")
        t.check("| after step 1 (A) | after step 2 (B) |" in md and "Task 2 (B)" not in md,
                "report.md's summary columns say after which step")
        t.check("mean_seen_auc" in rep["definitions"] and len(rep["methods"]["tl"]["mean_seen_auc"]) == 2,
                "report.json defines mean_seen_auc")
        for f in ("auc_tl.png", "mean_auc.png", "roc_A.png", "roc_B.png"):
            t.check(os.path.getsize(os.path.join(proto, "plots", f)) > 0, f"plots/{f} written")
        c1 = json.load(open(os.path.join(proto, "1-A", "config.json")))
        c2 = json.load(open(os.path.join(proto, "tl", "2-B", "config.json")))
        t.check(not c1["freeze_bn"] and c2["freeze_bn"], "protocol --freeze-bn: task 1 trains BN, the step freezes it")
        t.check("task 1 trains them" in open(os.path.join(proto, "report.md")).read(), "the report says what was done")
    t.finish()


if __name__ == "__main__":
    sys.exit(main())
