"""Settings: `--config run/config.json` reproduces a run bit for bit and the options given
override it; presets set what they name; a configuration file with an unknown key or a value
out of range is refused naming the file and the key; the input size defaults to the size
the data was made at (synth.json) and a differing one is warned about; every command's
--help follows one layout (usage, options with defaults, examples) and lists only the
options that act."""
import json
import os
import sys
import tempfile

import clitest as t

TINY = ["--model", "tiny", "--batch", "16", "--epochs", "2", "--threads", "1", "--quiet"]
COMMANDS = ["train", "adapt", "eval", "protocol", "detect", "faces", "forward", "grad", "init", "bench", "data", "pack",
            "synth"]


def config(run):
    with open(os.path.join(run, "config.json")) as f:
        return json.load(f)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        t.make_data(data, per_class=(40, 10, 10, 20))
        with open(os.path.join(data, "synth.json"), "w") as f:
            json.dump({"size": 32}, f)

        print("  --config reproduces a run; options override it")
        run1, run2, run3 = (os.path.join(tmp, n) for n in ("run1", "run2", "run3"))
        r = t.run("train", "--data", data, "--task", "A", "--out", run1, *TINY, "--seed", "5")
        c1 = config(run1)
        t.check(c1["size"] == 32, f"the size defaults to the data's synth.json: {c1['size']}")
        t.run("train", "--config", os.path.join(run1, "config.json"), "--out", run2, "--quiet")
        t.check(t.same_tensors(os.path.join(run1, "best.safetensors"), os.path.join(run2, "best.safetensors")),
                "train --config RUN/config.json gives the same weights")
        t.check(config(run2) == c1, "... and the same config.json")
        t.run("train", "--config", os.path.join(run1, "config.json"), "--out", run3, "--seed", "6", "--quiet")
        c3 = config(run3)
        t.check(c3["seed"] == "6" and {k: v for k, v in c3.items() if k != "seed"} ==
                {k: v for k, v in c1.items() if k != "seed"}, "an option given overrides the file's value only")

        print("  presets")
        run4 = os.path.join(tmp, "run4")
        t.run("train", "--data", data, "--task", "A", "--out", run4, "--preset", "quick", "--epochs", "1",
              "--threads", "1", "--quiet")
        c4 = config(run4)
        t.check(c4["model"] == "tiny" and c4["optimizer"] == "adam" and c4["lr"] == 0.002 and
                c4["batch"] == 32 and c4["epochs"] == 1, f"--preset quick, --epochs over it: {c4}")
        run5 = os.path.join(tmp, "run5")
        t.run("train", "--data", data, "--task", "A", "--out", run5, "--preset", "paper", *TINY)
        c5 = config(run5)
        t.check(c5["optimizer"] == "sgd" and c5["lr"] == 0.05 and c5["momentum"] == 0.1 and
                c5["rep_norm"] == "none" and c5["batch"] == 16, f"--preset paper, --batch over it: {c5}")
        run6 = os.path.join(tmp, "run6")
        t.run("train", "--data", data, "--task", "A", "--out", run6, "--optimizer", "adam", *TINY)
        t.check(config(run6)["lr"] == 0.001 and config(run6)["momentum"] == 0,
                "--optimizer adam alone takes Adam's lr and no momentum")

        print("  bad configuration files are refused by name")
        for body, words in ((dict(c1, bogus=1), "unknown setting 'bogus'"),
                            (dict(c1, batch=1), "batch expects an integer in 2..4096"),
                            (dict(c1, cutmix="sideways"), "cutmix must be one of none, opposite, same"),
                            (dict(c1, lr="fast"), "'lr' must be a number")):
            path = os.path.join(tmp, "bad.json")
            with open(path, "w") as f:
                json.dump(body, f)
            r = t.run("train", "--config", path, "--out", os.path.join(tmp, "bad"), ok=False)
            t.check(r.returncode == 1 and path in r.stderr and words in r.stderr, f"{words}: {r.stderr.strip()}")
            t.check(not os.path.exists(os.path.join(tmp, "bad")), "  ... and no run folder is made")
        step = os.path.join(tmp, "step")
        t.run("adapt", "--data", data, "--from", os.path.join(run1, "best.safetensors"), "--sources", "A",
              "--target", "B", "--out", step, "--method", "tl", *TINY)
        r = t.run("train", "--config", os.path.join(step, "config.json"), "--out", os.path.join(tmp, "x"), ok=False)
        t.check(r.returncode == 2 and "cored adapt --config" in r.stderr, f"train --config of a step: {r.stderr}")
        r = t.run("adapt", "--data", data, "--from", os.path.join(run1, "best.safetensors"), "--sources", "A",
                  "--target", "B", "--out", os.path.join(tmp, "y"), "--method", "tl", "--temperature", "3", *TINY,
                  ok=False)
        t.check("--temperature does not act for method tl" in r.stderr, f"an option that does not act: {r.stderr}")
        r = t.run("train", "--data", data, "--task", "A", "--out", os.path.join(tmp, "z"), "--size", "48", *TINY,
                  ok=False)
        t.check(r.returncode == 0 and "warning: the input size 48 differs from 32" in r.stderr,
                f"a size other than the data's is warned about: {r.stderr.strip()}")

        print("  --help: one layout")
        for cmd in COMMANDS:
            r = t.run(cmd, "--help", ok=False)
            h = r.stdout
            t.check(r.returncode == 0 and h.startswith(f"usage: cored {cmd} ") and "\noptions:\n" in h and
                    "\nexamples:\n  cored " + cmd in h and "-h, --help" in h, f"{cmd} --help follows the layout")
            t.check("(default: " not in h, f"{cmd} --help states defaults one way")
        def options(cmd):
            return {line.split()[0] for line in t.run(cmd, "--help").stdout.splitlines() if line.startswith("  --")}
        o = options("train")
        t.check(not o & {"--temperature", "--alpha", "--rep", "--rep-norm", "--lwf-lambda", "--ewc-lambda",
                         "--replay-size", "--sources", "--from", "--method", "--freeze-bn"},
                f"train --help lists no continual-method option: {sorted(o)}")
        o = options("adapt")
        t.check({"--temperature", "--rep-norm", "--ewc-lambda", "--from", "--method"} <= o and "--init" not in o,
                f"adapt --help lists the methods' options and not task 1's --init: {sorted(o)}")
    t.finish()


if __name__ == "__main__":
    sys.exit(main())
