"""Video-level metrics of cored eval and cored protocol: frames in per-video folders
(<split>/<class>/<video>/<frame>.png, the layout `cored faces` writes) get a video AUC, the
AUC of the videos' mean p(fake), next to the frame AUC.

The data set is built so that the two differ in a known way: in every fake test video half
of the frames carry no forgery (a real image), so per frame half of the fakes look real
(frame AUC near 0.75 for a detector that sees the forgery), while every fake video's mean
stays above the real videos' (video AUC near 1). The video AUC is checked against an
independent computation: scikit-learn's roc_auc_score on the per-video means of the frame
scores that `cored eval --scores` writes, grouped by the folders of their paths. Also: an
image directly in a class folder (one-frame video, a warning), a task without per-video
folders (frame AUC only, said so), and the protocol's report (tables, JSON, CSV, plots),
consistent with cored eval on the final model."""
import csv
import json
import os
import shutil
import sys
import tempfile
from collections import defaultdict

import numpy as np
from sklearn.metrics import roc_auc_score

import clitest as t

FRAMES = 4  # frames per video


def scores_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def independent(rows, data, task, split="test"):
    """Frame AUC and video AUC of one task from the --scores rows, computed here: videos
    are the folders of the paths (relative to the split folder), their score the mean."""
    rows = [r for r in rows if r["task"] == task]
    y = np.array([int(r["label"]) for r in rows])
    p = np.array([float(r["p_fake"]) for r in rows])
    groups = defaultdict(list)
    labels = {}
    for r in rows:
        v = os.path.relpath(os.path.dirname(r["path"]), os.path.join(data, task, split))
        groups[v].append(float(r["p_fake"]))
        labels[v] = int(r["label"])
    names = sorted(groups)
    vy = np.array([labels[v] for v in names])
    vp = np.array([np.mean(groups[v]) for v in names])
    return roc_auc_score(y, p), roc_auc_score(vy, vp), names, vp, vy


def main():
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "videos")
        t.make_data(data, per_class=(40, 16, 40, 16), videos=FRAMES, clean_frames=FRAMES // 2)
        flat = os.path.join(tmp, "flat")
        t.make_data(flat, per_class=(8, 4, 8, 4), tasks=("A",))
        shutil.copytree(os.path.join(flat, "A"), os.path.join(data, "Flat"))
        run = os.path.join(tmp, "run")
        t.run("train", "--data", data, "--task", "A", "--out", run, "--model", "tiny", "--size", "32", "--batch", "16",
              "--epochs", "10", "--quiet")
        best = os.path.join(run, "best.safetensors")

        # eval: frame and video AUC, JSON and the table, checked against scikit-learn
        sc = os.path.join(tmp, "scores.csv")
        r = t.run("eval", "--model", best, "--data", data, "--tasks", "A,B,Flat", "--json", "-", "--scores", sc)
        doc = json.loads(r.stdout)["tasks"]
        rows = scores_csv(sc)
        for task in ("A", "B"):
            va = doc[task]["videos"]
            f_auc, v_auc, names, vp, vy = independent(rows, data, task)
            t.check(abs(doc[task]["auc"] - f_auc) < 1e-9, f"{task}: frame AUC {doc[task]['auc']} = sklearn's {f_auc}")
            t.check(va is not None and abs(va["auc"] - v_auc) < 1e-9,
                    f"{task}: video AUC {va and va['auc']} = sklearn's on the per-video means {v_auc}")
            t.check(va["n_real"] == 10 and va["n_fake"] == 10 and va["frames"] == 80 and va["loose_images"] == 0,
                    f"{task}: 10 + 10 videos of 4 frames: {va}")
            acc = np.mean((vp > 0.5) == (vy == 1))
            t.check(abs(va["acc"] - acc) < 1e-9, f"{task}: video accuracy {va['acc']} = {acc}")
            want = {os.path.relpath(os.path.dirname(r["path"]), os.path.join(data, task, "test"))
                    for r in rows if r["task"] == task}
            got = {r["video"] for r in rows if r["task"] == task}
            t.check(got == want == set(names), f"{task}: the scores' video column names the folders: {sorted(got)[:3]}")
        a = doc["A"]
        # the known difference: half of each fake video is clean, so per frame task A's fakes
        # are half missed, while each fake video's mean stays above the real ones'
        t.check(a["auc"] < 0.9 and a["videos"]["auc"] > a["auc"] + 0.1,
                f"A: video AUC ({a['videos']['auc']:.3f}) well above frame AUC ({a['auc']:.3f})")
        t.check(doc["Flat"]["videos"] is None and doc["Flat"]["n_real"] == 8, "a task without per-video folders: null")
        t.check(all(r["video"] == "" for r in rows if r["task"] == "Flat"), "Flat: no video in the scores")
        lines = r.stderr.splitlines()
        t.check("video AUC %" in lines[1] and any(l.startswith("Flat ") and l.rstrip().endswith("-") for l in lines),
                f"the table has the video columns, '-' for Flat:\n{r.stderr}")
        t.check("no per-video folders (<split>/<class>/<video>/<frame>) in Flat: frame AUC only" in r.stderr,
                "the table says which tasks have frame AUC only")
        r = t.run("eval", "--model", best, "--data", flat, "--tasks", "A")
        t.check("video" not in r.stdout.splitlines()[1] and "in A: frame AUC only" in r.stdout,
                f"without per-video folders: frame AUC only, said so:\n{r.stdout}")

        # an image directly in a class folder: a video of one frame, with a warning
        shutil.copy(os.path.join(data, "A", "test", "real", "v000", "0000.png"),
                    os.path.join(data, "A", "test", "real", "loose.png"))
        r = t.run("eval", "--model", best, "--data", data, "--tasks", "A", "--json", "-", "--scores", sc)
        va = json.loads(r.stdout)["tasks"]["A"]["videos"]
        t.check(va["n_real"] == 11 and va["loose_images"] == 1 and va["frames"] == 81, f"a loose image: {va}")
        t.check("1 image(s) sit directly in a class folder" in r.stderr, "a loose image is warned about")
        rows = scores_csv(sc)
        t.check([r["video"] for r in rows if r["path"].endswith("loose.png")] == ["real/loose.png"],
                "the loose image is its own video")
        _, v_auc, _, _, _ = independent(rows, data, "A")
        t.check(abs(va["auc"] - v_auc) < 1e-9, f"with a loose image: video AUC {va['auc']} = sklearn's {v_auc}")
        os.remove(os.path.join(data, "A", "test", "real", "loose.png"))

        # the protocol: video AUC matrices next to frame AUC in report.md/json/csv and plots
        proto = os.path.join(tmp, "proto")
        r = t.run("protocol", "--data", data, "--tasks", "A,B,Flat", "--methods", "tl", "--out", proto, "--quiet",
                  "--model", "tiny", "--size", "32", "--batch", "16", "--epochs", "3")
        t.check("mean test video AUC % over the tasks seen so far" in r.stdout and "n/a: tasks without" in r.stdout,
                f"the summary has a video table:\n{r.stdout}")
        rep = json.load(open(os.path.join(proto, "report.json")))
        tl = rep["methods"]["tl"]
        t.check(rep["video_tasks"] == ["A", "B"] and "video_auc" in rep["definitions"], "report.json: video_tasks")
        t.check(len(tl["auc"]) == 3 and len(tl["video_auc"]) == 3 and all(row[2] is None for row in tl["video_auc"]),
                f"report.json: a 3 x 3 video AUC matrix, null for Flat: {tl['video_auc']}")
        final = os.path.join(proto, "tl", "3-Flat", "best.safetensors")
        r = t.run("eval", "--model", final, "--data", data, "--tasks", "A,B", "--json", "-")
        ev = json.loads(r.stdout)["tasks"]
        for j, task in enumerate(("A", "B")):
            t.check(abs(tl["video_auc"][2][j] - 100 * ev[task]["videos"]["auc"]) < 1e-9
                    and abs(tl["auc"][2][j] - 100 * ev[task]["auc"]) < 1e-9,
                    f"report.json's final {task} frame/video AUC = cored eval's on the final model")
        step = json.load(open(os.path.join(proto, "tl", "3-Flat", "eval.json")))["tasks"]
        t.check(step["A"]["videos"]["n_fake"] == 10 and step["Flat"]["videos"] is None, "the step's eval.json")
        md = open(os.path.join(proto, "report.md")).read()
        t.check("## Summary per video" in md and "without (frame AUC only, n/a here): Flat" in md
                and "plots/video_auc_tl.png" in md and "| after step \\ test video AUC % |" in md,
                "report.md: the video tables")
        with open(os.path.join(proto, "report.csv"), newline="") as f:
            rows = list(csv.reader(f))
        t.check(rows[0][-2:] == ["video_auc", "video_acc"] and len(rows) == 10 and all(len(x) == 8 for x in rows),
                f"report.csv: video columns ({rows[0]})")
        for f in ("video_auc_tl.png", "mean_video_auc.png", "auc_tl.png", "mean_auc.png"):
            p = os.path.join(proto, "plots", f)
            t.check(os.path.exists(p) and os.path.getsize(p) > 0, f"plots/{f} written")
    t.finish()


if __name__ == "__main__":
    sys.exit(main())
