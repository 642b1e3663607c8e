"""cored data: it decodes every image by default and reports the broken ones, its table
counts the images that decode per task, split and class next to the bad ones; --fast only
indexes; no progress bar without a terminal."""
import os
import sys
import tempfile

import clitest as t


def rows(stdout):
    """The table's rows as {(task, split): [real, fake, total, bad]}."""
    out = {}
    for line in stdout.splitlines()[1:]:
        if not line.strip():
            break
        f = line.split()
        out[(f[0], f[1])] = f[2:]
    return out


def main():
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        t.make_data(data, per_class=(8, 4, 4, 2))
        r = t.run("data", data, "--threads", "1")
        table = rows(r.stdout)
        t.check(table[("A", "train")] == ["8", "8", "16", "0"] and table[("TransferLearning/B", "train")] ==
                ["2", "2", "4", "0"], f"a clean data set: every image decodes {table}")
        t.check(r.stdout.splitlines()[-1] == "72 images indexed, 72 decoded, 0 undecodable, 0 unreadable; "
                "0 error(s), 0 warning(s)", f"the counts line: {r.stdout.splitlines()[-1]}")
        t.check(r.stderr == "", f"nothing on stderr without a terminal or a problem: {r.stderr!r}")

        # a broken fake in A/val, a truncated real in A/test: found without any option
        with open(os.path.join(data, "A", "val", "fake", "broken.jpg"), "wb") as f:
            f.write(b"not an image")
        good = open(os.path.join(data, "A", "test", "real", "0000.png"), "rb").read()
        with open(os.path.join(data, "A", "test", "real", "cut.png"), "wb") as f:
            f.write(good[:len(good) // 2])
        r = t.run("data", data, "--threads", "1")
        table = rows(r.stdout)
        t.check(table[("A", "val")] == ["4", "4", "8", "1"] and table[("A", "test")] == ["4", "4", "8", "1"] and
                table[("B", "val")] == ["4", "4", "8", "0"], f"good images per class next to the bad ones: {table}")
        t.check("broken.jpg" in r.stderr and "cut.png" in r.stderr and r.stderr.count("cored: warning:") == 2,
                f"both broken images are named: {r.stderr}")
        t.check(r.stdout.splitlines()[-1].startswith("74 images indexed, 72 decoded, 2 undecodable, 0 unreadable;"),
                f"the counts line: {r.stdout.splitlines()[-1]}")
        t.check("\r" not in r.stderr and "decoding" not in r.stderr, "no progress bar without a terminal")
        r = t.run("data", data, "--strict", "--quiet", "--threads", "1", ok=False)
        t.check(r.returncode == 1 and r.stderr.count("cored: error:") == 2, f"--strict: undecodable images fail it: {r.stderr}")

        # --fast: today's index only, the bad column '-'
        r = t.run("data", data, "--fast")
        table = rows(r.stdout)
        t.check(table[("A", "val")] == ["4", "5", "9", "-"] and "broken.jpg" not in r.stderr,
                f"--fast only indexes: {table}")
        t.check("(not decoded: --fast)" in r.stdout.splitlines()[-1], r.stdout.splitlines()[-1])
        r = t.run("data", data, "--fast", "--check", ok=False)
        t.check(r.returncode == 2 and "--fast" in r.stderr, f"--fast --check contradict: {r.stderr}")
        r = t.run("data", data, "--check", "--threads", "1")
        t.check(rows(r.stdout)[("A", "val")] == ["4", "4", "8", "1"], "--check is still accepted (the default)")

        # an unreadable image is an error, counted bad
        if os.geteuid() != 0:
            locked = os.path.join(data, "B", "test", "fake", "0000.png")
            os.chmod(locked, 0)
            r = t.run("data", data, "--tasks", "B", "--threads", "1", ok=False)
            t.check(r.returncode == 1 and rows(r.stdout)[("B", "test")] == ["4", "3", "7", "1"] and
                    "1 unreadable" in r.stdout, f"an unreadable image: {r.stdout} {r.stderr}")

        r = t.run("data", "--help")
        t.check("--fast" in r.stdout and "examples:" in r.stdout and "(default all cores)" in r.stdout,
                "data --help: the option table's layout")
        r = t.run("data", data, os.path.join(tmp, "x"), ok=False)
        t.check(r.returncode == 2 and "unexpected argument" in r.stderr, "data takes one DIR")
    t.finish()


if __name__ == "__main__":
    sys.exit(main())
