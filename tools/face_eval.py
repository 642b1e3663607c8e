#!/usr/bin/python3
"""Recall, false positives and speed of cored's face detector on dlib's annotated photos.

    python3 tools/face_eval.py [--tool build/faces_tool] [--model FILE] [--threads 2]
                               [--min-score 0.5] [--repeat 3] [--rounds 3] [--cache build/demo/cache]
                               [--json OUT]
    (make face-eval runs it with the defaults)

The photographs are the 9 PASCAL VOC pictures of dlib's examples whose faces dlib's authors
boxed by hand (training.xml and testing.xml: 43 faces, 37 to 109 px wide), fetched from
Debian's libdlib19.1 by tools/fetch_real.sh into CACHE/real/faces/dlib (run here when
missing). A detection matches a face when their IoU is at least --iou (0.5); detections are
taken in decreasing score order and each face is matched at most once (PASCAL VOC's rule).
Reported: recall (matched faces / 43), false positives per image (detections that match no
face), the mean IoU of the matches, and the speed of cored_faces_detect alone (decoding
excluded): for each image the fastest of --repeat runs, then ms per image, images/s and
faces/s (faces found per second) over the 9 images, at --threads threads; the whole is run
--rounds times (separate processes) and the median round is reported, with the fastest
and slowest (a shared machine's rounds differ), and the process's CPU time per image (with
one thread, the work itself, whatever else the machine runs).
dlib's boxes are square and tight (brows to chin), the detector's (WIDER FACE) are taller,
forehead included; the mean IoU shows how far apart the two conventions are.
--canvas F pastes every photo into the top left of a grey canvas F times its size, so that
the same faces reach the network F times smaller (the boxes stay where they were).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def ground_truth(folder):
    """{file: [(x0, y0, x1, y1), ...]} from dlib's training.xml and testing.xml."""
    gt = {}
    for name in ("training.xml", "testing.xml"):
        for image in ET.parse(os.path.join(folder, name)).getroot().iter("image"):
            boxes = gt.setdefault(image.get("file"), [])
            for b in image.iter("box"):
                x, y = float(b.get("left")), float(b.get("top"))
                boxes.append((x, y, x + float(b.get("width")), y + float(b.get("height"))))
    return gt


def match(dets, truth, thr):
    """PASCAL VOC matching: returns (true positives, false positives, IoUs of the matches)."""
    used = [False] * len(truth)
    tp, fp, ious = 0, 0, []
    for d in sorted(dets, key=lambda d: -d[4]):
        best, bi = 0.0, -1
        for i, t in enumerate(truth):
            v = iou(d, t)
            if not used[i] and v > best:
                best, bi = v, i
        if bi >= 0 and best >= thr:
            used[bi] = True
            tp += 1
            ious.append(best)
        else:
            fp += 1
    return tp, fp, ious


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tool", default=os.path.join(ROOT, "build", "faces_tool"))
    ap.add_argument("--model", default=os.path.join(ROOT, "build", "faces", "ssd_mobilenetv1_face.safetensors"))
    ap.add_argument("--cache", default=os.path.join(ROOT, "build", "demo", "cache"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-score", type=float, default=0.5)
    ap.add_argument("--iou", type=float, default=0.5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--canvas", type=float, default=1.0,
                    help="paste each photo at the top left of a grey canvas this many times larger "
                         "(smaller faces for the network: it sees the padded square at 512 px)")
    ap.add_argument("--json", help="also write the figures and per-image results here")
    args = ap.parse_args()

    folder = os.path.join(args.cache, "real", "faces", "dlib")
    if not os.path.exists(os.path.join(folder, "testing.xml")):
        subprocess.run([os.path.join(HERE, "fetch_real.sh"), args.cache], check=True, stdout=subprocess.DEVNULL)
    gt = ground_truth(folder)
    files = sorted(gt)
    paths = [os.path.join(folder, f) for f in files]
    tmp = None
    if args.canvas != 1.0:
        from PIL import Image
        tmp = tempfile.TemporaryDirectory()
        for i, p in enumerate(paths):
            im = Image.open(p).convert("RGB")
            canvas = Image.new("RGB", (round(im.width * args.canvas), round(im.height * args.canvas)), (128, 128, 128))
            canvas.paste(im, (0, 0))
            paths[i] = os.path.join(tmp.name, files[i][:-4] + ".png")
            canvas.save(paths[i])
    cmd = [args.tool, "detect", "--model", args.model, "--threads", str(args.threads), "--min-score",
           str(args.min_score), "--repeat", str(args.repeat)] + paths
    env = dict(os.environ)
    env.setdefault("GOMP_SPINCOUNT", "1000")  # a shared machine: see docs/engine.md, Threads
    rounds = []
    for _ in range(max(1, args.rounds)):
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, env=env, text=True).stdout
        rounds.append([json.loads(line) for line in out.splitlines() if line.strip()])
    round_ms = [sum(r["detect_ms"] for r in rr) for rr in rounds]
    order = sorted(range(len(rounds)), key=lambda i: round_ms[i])
    results = rounds[order[len(order) // 2]]  # the median round (the faces are the same in every round)
    for rr in rounds:
        if [r["faces"] for r in rr] != [r["faces"] for r in results]:
            print("face_eval: warning: the rounds found different faces", file=sys.stderr)

    n_gt = sum(len(v) for v in gt.values())
    tp = fp = n_found = 0
    ms = 0.0
    ious, rows = [], []
    print(f"{'image':<18} {'size':>9} {'faces':>5} {'found':>5} {'matched':>7} {'false+':>6} {'ms':>7}")
    for r in results:
        name = os.path.basename(r["file"])
        name = name[:-4] + ".jpg" if name not in gt else name
        t, f, i = match(r["faces"], gt[name], args.iou)
        tp, fp, n_found, ms = tp + t, fp + f, n_found + len(r["faces"]), ms + r["detect_ms"]
        ious += i
        rows.append({"image": name, "width": r["width"], "height": r["height"], "faces": len(gt[name]),
                     "found": len(r["faces"]), "matched": t, "false_positives": f, "detect_ms": r["detect_ms"]})
        print(f"{name:<18} {r['width']:>4}x{r['height']:<4} {len(gt[name]):>5} {len(r['faces']):>5} {t:>7} {f:>6} "
              f"{r['detect_ms']:>7.1f}")
    n = len(results)
    summary = {
        "images": n, "faces": n_gt, "matched": tp, "recall": tp / n_gt, "false_positives": fp,
        "false_positives_per_image": fp / n, "mean_iou": sum(ious) / len(ious) if ious else 0.0,
        "ms_per_image": ms / n, "images_per_s": 1e3 * n / ms, "faces_per_s": 1e3 * n_found / ms,
        "cpu_ms_per_image": sorted(sum(r["cpu_ms"] for r in rr) / n for rr in rounds)[0],
        "threads": args.threads, "min_score": args.min_score, "iou": args.iou,
        "rounds_ms_per_image": sorted(m / n for m in round_ms),
    }
    print(f"\nrecall at IoU >= {args.iou}: {tp}/{n_gt} = {100 * summary['recall']:.1f} %   "
          f"false positives: {fp} in {n} images = {summary['false_positives_per_image']:.2f} per image   "
          f"mean IoU of the matches: {summary['mean_iou']:.3f}")
    print(f"speed ({args.threads} threads, min score {args.min_score}, decoding excluded): "
          f"{summary['ms_per_image']:.1f} ms per image, {summary['images_per_s']:.1f} images/s, "
          f"{summary['faces_per_s']:.1f} faces/s (median of {len(rounds)} rounds; ms per image "
          f"{min(summary['rounds_ms_per_image']):.1f} to {max(summary['rounds_ms_per_image']):.1f})")
    print(f"CPU time per image (every thread; time waiting for a core excluded), least of the rounds: "
          f"{summary['cpu_ms_per_image']:.1f} ms")
    if tmp:
        tmp.cleanup()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "images": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
