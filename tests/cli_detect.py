"""cored detect's outputs parse: JSON lines on standard output, --out FILE as JSON lines or
CSV (by extension; paths with commas and quotes quoted), written atomically and never over
an input; the closing summary on standard error counts what the lines say."""
import csv
import json
import os
import re
import shutil
import sys
import tempfile

import clitest as t

SUMMARY = re.compile(r"^cored detect: (\d+) image\(s\) scored: (\d+) fake, (\d+) real at threshold ([0-9.e+-]+); "
                     r"(\d+) unreadable; ([0-9.]+) s, ([0-9.]+) images/s(; results in (.*) \((CSV|JSON lines)\))?$")


def summary(stderr):
    """The summary line's fields, or None."""
    lines = stderr.splitlines()
    m = SUMMARY.match(lines[-1]) if lines else None
    if not m:
        return None
    return {"scored": int(m[1]), "fake": int(m[2]), "real": int(m[3]), "threshold": float(m[4]),
            "unreadable": int(m[5]), "seconds": float(m[6]), "rate": float(m[7]), "out": m[9], "format": m[10]}


def main():
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        t.make_data(data, per_class=(16, 8, 8, 4), tasks=("A",))
        run = os.path.join(tmp, "run")
        t.run("train", "--data", data, "--task", "A", "--out", run, "--model", "tiny", "--size", "32", "--batch", "16",
              "--epochs", "2", "--threads", "1", "--quiet")
        model = os.path.join(run, "best.safetensors")
        odd = os.path.join(tmp, "odd, \"quoted\" dir")  # a comma and quotes: CSV must quote the paths
        os.makedirs(odd)
        shutil.copy(os.path.join(data, "A", "test", "fake", "0000.png"), os.path.join(odd, 'a,"b".png'))
        with open(os.path.join(odd, "broken.jpg"), "wb") as f:
            f.write(b"not an image")
        real = os.path.join(data, "A", "test", "real")
        inputs = [real, odd]
        base = ["detect", "--model", model, "--threads", "1"]

        # standard output: JSON lines; the summary on standard error
        r = t.run(*base, *inputs, ok=False)
        rows = [json.loads(l) for l in r.stdout.splitlines()]
        s = summary(r.stderr)
        scored = [x for x in rows if "p_fake" in x]
        t.check(r.returncode == 1 and len(rows) == 10 and len(scored) == 9 and "error" in rows[-1] and
                rows[-1]["path"].endswith("broken.jpg"), f"JSON lines: {len(rows)} rows, exit {r.returncode}")
        t.check(s is not None, f"a summary closes standard error: {r.stderr.strip()}")
        if s:
            fake = sum(x["label"] == "fake" for x in scored)
            t.check(s["scored"] == 9 and s["fake"] == fake and s["real"] == 9 - fake and s["unreadable"] == 1 and
                    s["threshold"] == 0.5 and s["out"] is None and s["seconds"] >= 0 and s["rate"] > 0,
                    f"the summary counts what the lines say: {s}")
        t.check(all((x["p_fake"] > 0.5) == (x["label"] == "fake") for x in scored), "labels follow the threshold")

        for th, want in (("0", "fake"), ("1", "real")):
            r = t.run(*base, "--threshold", th, real)
            s = summary(r.stderr)
            t.check(s and s[want] == 8 and s["scored"] == 8 and
                    all(json.loads(l)["label"] == want for l in r.stdout.splitlines()),
                    f"--threshold {th}: every image {want} ({s})")

        # --out FILE.jsonl: the same lines in the file, nothing on standard output
        out = os.path.join(tmp, "scores.jsonl")
        with open(out, "w") as f:
            f.write("old content that must go\n" * 100)
        r = t.run(*base, "--out", out, *inputs, ok=False)
        file_rows = [json.loads(l) for l in open(out)]
        t.check(r.returncode == 1 and r.stdout == "" and file_rows == rows,
                f"--out .jsonl: the JSON lines in the file, stdout empty ({r.stdout!r})")
        s = summary(r.stderr)
        t.check(s and s["out"] == out and s["format"] == "JSON lines" and s["scored"] == 9, f"summary names it: {s}")
        t.check(not [f for f in os.listdir(tmp) if ".tmp" in f], "no temporary file left")

        # --out FILE.csv: python's csv module reads it back, paths with commas and quotes intact
        out_csv = os.path.join(tmp, "scores.CSV")
        r = t.run(*base, "--out", out_csv, *inputs, ok=False)
        with open(out_csv, newline="") as f:
            table = list(csv.reader(f))
        t.check(table[0][:4] == ["path", "p_fake", "label", "error"] and len(table) == 11 and
                all(len(row) == len(table[0]) for row in table) and
                all(row[4] == "image" for row in table[1:] if row[1]), f"CSV header and rows: {table[:2]}")
        t.check([row[0] for row in table[1:]] == [x["path"] for x in rows], "CSV paths, commas and quotes included")
        t.check(all(abs(float(row[1]) - x["p_fake"]) < 2e-6 and row[2] == x["label"] and row[3] == ""
                    for row, x in zip(table[1:], rows) if "p_fake" in x), "CSV scores and labels match the JSON lines")
        bad = table[-1]
        t.check(bad[1] == "" and bad[2] == "" and "broken.jpg" in bad[3] and bad[3] == rows[-1]["error"],
                f"CSV: an unreadable image has only its error: {bad}")
        s = summary(r.stderr)
        t.check(r.stdout == "" and s and s["format"] == "CSV", f"--out .csv: summary {s}")
        r = t.run(*base, "--csv", *inputs, ok=False)
        t.check(list(csv.reader(r.stdout.splitlines())) == table, "--csv: the same CSV on standard output")
        r = t.run(*base, real + "/")
        t.check(all(json.loads(l)["path"] == os.path.join(real, n) for l, n in
                    zip(r.stdout.splitlines(), sorted(os.listdir(real)))), "a folder given as DIR/: paths DIR/NAME")
        r = t.run(*base, "--out", "-", real)
        t.check(len(r.stdout.splitlines()) == 8 and (summary(r.stderr) or {"out": 0})["out"] is None,
                "--out -: standard output")

        # --out never replaces an input, and a missing folder is refused before scoring
        before = open(model, "rb").read()
        r = t.run(*base, "--out", model, real, ok=False)
        t.check(r.returncode == 1 and "same file" in r.stderr and open(model, "rb").read() == before,
                f"--out the model is refused: {r.stderr.strip()}")
        img = os.path.join(real, "0000.png")
        r = t.run(*base, "--out", img, img, ok=False)
        t.check(r.returncode == 1 and "same file" in r.stderr, f"--out an image given is refused: {r.stderr.strip()}")
        r = t.run(*base, "--out", os.path.join(real, "new.png"), real, ok=False)
        t.check(r.returncode == 1 and "read it back" in r.stderr and not os.path.exists(os.path.join(real, "new.png")),
                f"--out an image inside a folder searched is refused: {r.stderr.strip()}")
        inside = os.path.join(real, "scores.csv")   # not an image: a later run never reads it
        t.run(*base, "--out", inside, real)
        t.check(len(list(csv.reader(open(inside)))) == 9, "--out a .csv inside a folder searched is fine")
        os.remove(inside)
        r = t.run(*base, "--out", os.path.join(tmp, "missing", "x.csv"), real, ok=False)
        t.check(r.returncode == 1 and "does not exist" in r.stderr and summary(r.stderr) is None,
                f"--out in a missing folder is refused before scoring: {r.stderr.strip()}")
    t.finish()


if __name__ == "__main__":
    sys.exit(main())
