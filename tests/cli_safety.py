"""Nothing a user gave cored is destroyed (docs/reliability.md): the reproducers of the
slips a new user makes, each refused clearly or answered correctly."""
import csv
import io
import os
import sys
import tempfile

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


def main():
    with tempfile.TemporaryDirectory() as tmp:
        check_csv(tmp)
    t.finish()


if __name__ == "__main__":
    sys.exit(main())
