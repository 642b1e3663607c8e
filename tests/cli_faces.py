"""cored faces on videos the test encodes itself (tests/tool_video: a window panned across
real photographs, so the faces move), photos and folders: one folder of square crops per
video, the photo's crop, index.jsonl (source, frame, time, box, score), one identity per
video, --all-faces, --fps, resuming (a second run skips the videos done, an interrupted
folder is never taken for a done one), the face model missing; bad inputs (zero-byte .mp4,
text named .mp4, truncated videos, a video without faces, audio only, a header claiming
100000x100000 frames): a message naming each file, no crash, no hang, the good inputs of the
same run still cropped. Then --ffpp on a small FaceForensics++-shaped tree (the download
layout and the official split files) into the CoReD layout, which `cored data` indexes and
`cored protocol` trains on; and `cored detect` on that tree's photos and videos (faces
first, per-frame and video scores).

Needs the face detector (make faces-model: npm) and the demo's photographs
(tools/fetch_real.sh); skipped, with a message, only when they cannot be fetched."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import clitest as t

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CACHE = os.path.join(ROOT, "build", "demo", "cache")
PHOTOS = os.path.join(CACHE, "real", "faces")
FACES_DIR = os.path.join(ROOT, "build", "faces")
MODEL = os.path.join(FACES_DIR, "ssd_mobilenetv1_face.safetensors")
TOOL = os.environ.get("VIDEO_TOOL", os.path.join(ROOT, "build", "tests", "tool_video"))
PY = sys.executable
# one face each (two in 2008_001009), the first six become the FaceForensics++ ids 000..005
FACES = ["dlib/Tom_Cruise_avp_2014_4.jpg", "portraits/grace_hopper.jpg", "portraits/gramps-AntoineClaudet.png",
         "portraits/gramps-E_W_Dahlgren.jpg", "dlib/2008_001009.jpg", "portraits/gramps-O4.jpg"]


def setup():
    """The face model and the photographs; False (skip) when they cannot be fetched."""
    if not t.face_model(MODEL):
        return False
    if not all(os.path.exists(os.path.join(PHOTOS, f)) for f in FACES):
        r = subprocess.run([os.path.join(ROOT, "tools", "fetch_real.sh"), CACHE], capture_output=True, text=True)
        if r.returncode:
            print(f"  SKIP cli_faces: the photographs cannot be fetched: {r.stderr.strip()[-300:]}")
            return False
    if not os.path.exists(TOOL):
        subprocess.run(["make", "-s", os.path.relpath(TOOL, ROOT)], cwd=ROOT, check=True)
    return True


def video(photo, out, frames=6, posterize=False):
    """A video panning a window of 80 % of the photo's sides across it."""
    from PIL import Image
    w, h = Image.open(photo).size
    args = [TOOL, "photo", photo, out, str(frames), str(int(w * 0.8)), str(int(h * 0.8))]
    subprocess.run(args + (["posterize"] if posterize else []), check=True)


def pngs(d):
    return sorted(f for f in os.listdir(d) if f.endswith(".png")) if os.path.isdir(d) else []


def index(out):
    with open(os.path.join(out, "index.jsonl")) as f:
        return [json.loads(line) for line in f]


def iou(a, b):
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_faces(tmp):
    from PIL import Image
    src = os.path.join(tmp, "in")
    os.makedirs(os.path.join(src, "folder", "sub"))
    v1 = os.path.join(src, "two.mp4")                          # two faces: one identity kept
    video(os.path.join(PHOTOS, FACES[4]), v1, frames=8)
    video(os.path.join(PHOTOS, FACES[0]), os.path.join(src, "folder", "sub", "tom.avi"))
    photo = os.path.join(src, "folder", "hopper.jpg")
    shutil.copy(os.path.join(PHOTOS, FACES[1]), photo)
    with open(os.path.join(src, "folder", "notes.txt"), "w") as f:
        f.write("not media\n")
    out = os.path.join(tmp, "crops")
    base = ["faces", "--frames", "4", "--size", "64", "--threads", "1"]
    r = t.run(*base, v1, os.path.join(src, "folder"), "--out", out, ok=False)
    t.check(r.returncode == 0, f"cored faces: exit {r.returncode}: {r.stderr.strip()}")
    t.check("notes.txt" in r.stderr and "neither photos nor videos" in r.stderr, f"other files named: {r.stderr}")
    t.check(pngs(os.path.join(out, "two")) and len(pngs(os.path.join(out, "two"))) == 4, "a folder of 4 crops per video")
    t.check(os.path.isdir(os.path.join(out, "sub", "tom")) and len(pngs(os.path.join(out, "sub", "tom"))) == 4,
            "a video in a folder keeps its path below it")
    t.check(os.path.isfile(os.path.join(out, "hopper.png")), "a photo gives DIR/<photo>.png")
    im = Image.open(os.path.join(out, "two", pngs(os.path.join(out, "two"))[0]))
    t.check(im.size == (64, 64) and im.mode == "RGB", f"crops are --size squares, RGB: {im.size} {im.mode}")
    rows = index(out)
    t.check(len(rows) == 9 and all(set(x) >= {"source", "crop", "frame", "time", "box", "score"} for x in rows),
            f"index.jsonl: one line per crop with its fields ({len(rows)})")
    two = [x for x in rows if x["source"] == v1]
    t.check([x["frame"] for x in two] == [1, 3, 5, 7] and all(abs(x["time"] - x["frame"] / 10) < 1e-6 for x in two),
            f"frames sampled evenly, time stamps at 10 fps: {[(x['frame'], x['time']) for x in two]}")
    t.check(all(os.path.isfile(x["crop"]) for x in rows) and all(0.5 < x["score"] < 1 for x in rows),
            "every crop listed exists, scores above the threshold")
    # the window pans right and down: the face moves left and up in the frame, one identity
    boxes = [x["box"] for x in two]
    t.check(boxes[-1][0] < boxes[0][0] - 5 and boxes[-1][1] < boxes[0][1] - 5, f"the face moves: {boxes[0]} {boxes[-1]}")
    t.check(all(iou(a, b) > 0.3 for a, b in zip(boxes, boxes[1:])), f"one identity through the video: {boxes}")

    # --all-faces: both faces of 2008_001009; --fps
    out2 = os.path.join(tmp, "all")
    r = t.run(*base, "--all-faces", os.path.join(PHOTOS, FACES[4]), "--out", out2, ok=False)
    t.check(r.returncode == 0 and pngs(out2) == ["2008_001009_0.png", "2008_001009_1.png"],
            f"--all-faces: {pngs(out2) if os.path.isdir(out2) else r.stderr}")
    out3 = os.path.join(tmp, "fps")
    r = t.run("faces", "--fps", "5", "--size", "64", "--threads", "1", v1, "--out", out3, ok=False)
    t.check(r.returncode == 0 and [x["frame"] for x in index(out3)] == [0, 2, 4, 6], f"--fps 5 of a 10 fps video: "
            f"{[x['frame'] for x in index(out3)] if r.returncode == 0 else r.stderr}")

    # resuming: a second run does nothing; a missing folder is redone; a temporary folder
    # left by a kill is not a done video
    r = t.run(*base, v1, os.path.join(src, "folder"), "--out", out)
    t.check("0 done now" in r.stdout and "3 done before" in r.stdout and len(index(out)) == 9,
            f"a second run skips what is done: {r.stdout.strip()}")
    shutil.rmtree(os.path.join(out, "sub", "tom"))
    os.makedirs(os.path.join(out, "sub", ".tom.cored-part"))
    with open(os.path.join(out, "sub", ".tom.cored-part", "000001.png"), "wb") as f:
        f.write(b"half")
    r = t.run(*base, v1, os.path.join(src, "folder"), "--out", out)
    t.check("1 done now" in r.stdout and len(pngs(os.path.join(out, "sub", "tom"))) == 4 and len(index(out)) == 13 and
            not os.path.exists(os.path.join(out, "sub", ".tom.cored-part")), f"a removed video is redone: {r.stdout}")
    # killed part-way: every folder that exists is complete
    many = os.path.join(tmp, "many")
    os.makedirs(many)
    for i in range(6):
        shutil.copy(v1, os.path.join(many, f"v{i}.mp4"))
    out4 = os.path.join(tmp, "killed")
    p = subprocess.Popen([t.CORED, *base, many, "--out", out4], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(3)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = [d for d in os.listdir(out4) if not d.startswith(".") and os.path.isdir(os.path.join(out4, d))]
    t.check(all(len(pngs(os.path.join(out4, d))) == 4 for d in done), f"after kill -9 only complete folders: {done}")
    r = t.run(*base, many, "--out", out4)
    t.check(all(len(pngs(os.path.join(out4, f"v{i}"))) == 4 for i in range(6)) and
            not [d for d in os.listdir(out4) if d.endswith(".cored-part")],
            f"the run after the kill completes it ({len(done)} were done): {r.stdout.strip()}")

    # the face model missing; the output inside an input folder
    r = t.run(*base, "--face-model", os.path.join(tmp, "nope.safetensors"), v1, "--out", out, ok=False)
    t.check(r.returncode == 1 and "nope.safetensors" in r.stderr and "make faces-model" in r.stderr,
            f"a missing face model: an error with the hint: {r.stderr.strip()}")
    r = t.run(*base, src, "--out", os.path.join(src, "crops"), ok=False)
    t.check(r.returncode == 1 and not os.path.exists(os.path.join(src, "crops")), f"--out inside an input folder: "
            f"{r.stderr.strip()}")
    r = t.run(*base, "--frames", "4", "--fps", "2", v1, "--out", out, ok=False)
    t.check(r.returncode == 2, "--frames with --fps is a usage error")


def test_bad_inputs(tmp):
    bad = os.path.join(tmp, "bad")
    os.makedirs(bad)
    open(os.path.join(bad, "empty.mp4"), "wb").close()
    with open(os.path.join(bad, "notes.mp4"), "w") as f:
        f.write("These are my notes, not a video.\n")
    good = os.path.join(bad, "good.mp4")
    video(os.path.join(PHOTOS, FACES[1]), good)
    data = open(good, "rb").read()
    with open(os.path.join(bad, "cut.mp4"), "wb") as f:   # the index (moov) is at the end: gone
        f.write(data[:len(data) * 2 // 3])
    mkv = os.path.join(tmp, "full.mkv")
    video(os.path.join(PHOTOS, FACES[0]), mkv, frames=10)
    data = open(mkv, "rb").read()
    with open(os.path.join(bad, "trunc.mkv"), "wb") as f:   # frames up to the cut, with a warning
        f.write(data[:len(data) * 6 // 10])
    subprocess.run([TOOL, "blank", os.path.join(bad, "noface.mp4"), "6"], check=True)
    subprocess.run([TOOL, "audio", os.path.join(bad, "audio.mkv")], check=True)
    subprocess.run([TOOL, "huge", os.path.join(bad, "huge.mkv")], check=True)
    out = os.path.join(tmp, "bad-out")
    try:
        r = subprocess.run([t.CORED, "faces", "--frames", "4", "--size", "64", "--threads", "1", bad, "--out", out],
                           capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        t.check(False, "bad inputs: cored faces hung")
        return
    err = r.stderr
    t.check(r.returncode == 1, f"bad inputs: exit 1 (errors), not a crash: {r.returncode}")
    want = {"empty.mp4": "empty file", "notes.mp4": "text", "cut.mp4": "moov atom not found",
            "audio.mkv": "no video stream", "huge.mkv": "100000x100000", "noface.mp4": "no face found",
            "trunc.mkv": "truncated or damaged"}
    for name, msg in want.items():
        line = [x for x in err.splitlines() if name in x]
        t.check(line and msg in line[0], f"{name}: a message naming it with '{msg}': {line}")
    t.check(len(pngs(os.path.join(out, "good"))) == 4, "the good video of the same run is cropped")
    cut = os.path.join(out, "trunc")
    t.check(os.path.isdir(cut) and 0 < len(pngs(cut)) < 4, f"a truncated video gives the frames before the cut: "
            f"{pngs(cut) if os.path.isdir(cut) else None}")
    t.check(not os.path.exists(os.path.join(out, "noface")) and not os.path.exists(os.path.join(out, "empty")),
            "nothing written for a video without faces or a broken one")
    t.check("5 failed" in r.stdout and "1 without a face" in r.stdout,
            f"the summary counts them: {r.stdout.strip()}")


def make_ffpp(root):
    """FaceForensics++ as downloaded (c23 videos), with the split files in ROOT/splits."""
    orig = os.path.join(root, "original_sequences", "youtube", "c23", "videos")
    os.makedirs(orig)
    ids = [f"{i:03d}" for i in range(6)]
    for i, vid in enumerate(ids):
        video(os.path.join(PHOTOS, FACES[i]), os.path.join(orig, vid + ".mp4"), frames=6)
    pairs = {"train": [["000", "001"]], "val": [["002", "003"]], "test": [["004", "005"]]}
    for method in ("Deepfakes", "Face2Face"):
        d = os.path.join(root, "manipulated_sequences", method, "c23", "videos")
        os.makedirs(d)
        for ps in pairs.values():
            for a, b in ps:
                for x, y in ((a, b), (b, a)):
                    video(os.path.join(PHOTOS, FACES[int(x)]), os.path.join(d, f"{x}_{y}.mp4"), frames=6,
                          posterize=True)
    os.makedirs(os.path.join(root, "splits"))
    for name, ps in pairs.items():
        with open(os.path.join(root, "splits", name + ".json"), "w") as f:
            json.dump(ps, f, indent=2)
    return pairs


def test_ffpp(tmp):
    root = os.path.join(tmp, "FaceForensics++")
    pairs = make_ffpp(root)
    data = os.path.join(tmp, "DATA")
    base = ["faces", "--frames", "3", "--size", "64", "--threads", "1"]
    r = t.run(*base, "--ffpp", root, "--compression", "c23", "--out", data, ok=False)
    t.check(r.returncode == 0, f"--ffpp: exit {r.returncode}: {r.stderr.strip()} {r.stdout.strip()}")
    for method in ("Deepfakes", "Face2Face"):
        for split, ps in pairs.items():
            for a, b in ps:
                for cls, vid in (("real", a), ("real", b), ("fake", f"{a}_{b}"), ("fake", f"{b}_{a}")):
                    d = os.path.join(data, method, split, cls, vid)
                    t.check(os.path.isdir(d) and len(pngs(d)) == 3, f"{d}: 3 crops")
    a = os.path.join(data, "Deepfakes", "train", "real", "000", "000001.png")
    b = os.path.join(data, "Face2Face", "train", "real", "000", "000001.png")
    t.check(os.path.exists(a) and os.path.exists(b) and os.stat(a).st_ino == os.stat(b).st_ino,
            "the originals are cropped once and hard-linked into every task")
    rows = index(data)
    t.check(len(rows) == 6 * 3 + 2 * 6 * 3, f"index.jsonl: one line per crop cut ({len(rows)})")
    r = t.run("data", data, "--fast")
    t.check("Deepfakes" in r.stdout and "Face2Face" in r.stdout, f"cored data indexes it:\n{r.stdout}")
    r = t.run(*base, "--ffpp", root, "--out", data)
    t.check("0 done now" in r.stdout and "24 done before" in r.stdout, f"--ffpp resumes: {r.stdout.strip()}")

    run = os.path.join(tmp, "run")
    r = t.run("protocol", "--data", data, "--tasks", "Deepfakes,Face2Face", "--model", "tiny", "--size", "64",
              "--epochs", "1", "--batch", "4", "--threads", "1", "--methods", "tl,cored", "--out", run, "--quiet",
              ok=False)
    t.check(r.returncode == 0 and os.path.isfile(os.path.join(run, "report.md")),
            f"cored protocol trains on the imported data: exit {r.returncode}: {r.stderr.strip()[-800:]}")

    # the split files: missing (with the hint), --splits DIR, a malformed one
    splits = os.path.join(tmp, "splits")
    shutil.move(os.path.join(root, "splits"), splits)
    r = t.run(*base, "--ffpp", root, "--out", data, ok=False)
    t.check(r.returncode == 1 and "train.json" in r.stderr and "ondyari/FaceForensics" in r.stderr,
            f"split files missing: {r.stderr.strip()}")
    r = t.run(*base, "--ffpp", root, "--splits", splits, "--out", data, ok=False)
    t.check(r.returncode == 0 and "24 done before" in r.stdout, f"--splits DIR: {r.stdout.strip()} {r.stderr.strip()}")
    with open(os.path.join(splits, "val.json"), "w") as f:
        f.write('[["002"]]')
    r = t.run(*base, "--ffpp", root, "--splits", splits, "--out", data, ok=False)
    t.check(r.returncode == 1 and "val.json" in r.stderr and "pair 1" in r.stderr, f"a bad split file: {r.stderr}")
    with open(os.path.join(splits, "val.json"), "w") as f:
        f.write('[["002", "003"], ["000", "009"]]')
    r = t.run(*base, "--ffpp", root, "--splits", splits, "--out", data, ok=False)
    t.check(r.returncode == 1 and "000" in r.stderr and "both" in r.stderr, f"an id in two splits: {r.stderr}")
    return data, root, run


def test_detect(tmp, data, root, run):
    model = os.path.join(run, "cored", "step2", "best.safetensors")
    if not os.path.exists(model):
        cands = [os.path.join(dp, f) for dp, _, fs in os.walk(run) for f in fs if f == "best.safetensors"]
        model = cands[0] if cands else None
    if not t.check(model is not None, "the protocol left a checkpoint"):
        return
    clip = os.path.join(root, "original_sequences", "youtube", "c23", "videos", "000.mp4")
    r = t.run("detect", "--model", model, "--threads", "1", "--frames", "4", clip, ok=False)
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    frames = [x for x in rows if "frame" in x]
    vids = [x for x in rows if x.get("video")]
    t.check(r.returncode == 0 and len(frames) == 4 and len(vids) == 1, f"detect clip.mp4: 4 frames and the video: "
            f"{r.stdout} {r.stderr}")
    if frames and vids:
        ps = sorted(x["p_fake"] for x in frames)
        v = vids[0]
        t.check(abs(v["p_fake"] - sum(ps) / 4) < 1e-5 and abs(v["p_fake_max"] - ps[-1]) < 1e-6 and
                abs(v["p_fake_median"] - (ps[1] + ps[2]) / 2) < 1e-5 and v["frames"] == 4 and
                v["frames_without_face"] == 0, f"video score = mean of the frames, median and max: {v}")
        t.check(all(len(x["box"]) == 4 and 0 < x["face_score"] < 1 for x in frames), "every frame's face box")
    # a photo with two faces: every face scored
    r = t.run("detect", "--model", model, "--threads", "1", os.path.join(PHOTOS, FACES[4]), ok=False)
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    t.check(r.returncode == 0 and len(rows) == 2 and all("box" in x and "p_fake" in x for x in rows),
            f"detect photo: every face with its box: {r.stdout}")
    # crops of the model's size: scored whole; --whole-image on a photo
    crop = os.path.join(data, "Deepfakes", "test", "real", "004", "000001.png")
    r = t.run("detect", "--model", model, "--threads", "1", crop)
    row = json.loads(r.stdout.splitlines()[0])
    t.check("box" not in row and "p_fake" in row, f"a crop of the model's size is scored whole: {row}")
    r = t.run("detect", "--model", model, "--threads", "1", "--whole-image", os.path.join(PHOTOS, FACES[4]))
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    t.check(len(rows) == 1 and "box" not in rows[0], f"--whole-image: one score: {rows}")
    # a folder of videos and photos; CSV
    out = os.path.join(tmp, "scores.csv")
    folder = os.path.join(root, "manipulated_sequences", "Deepfakes", "c23", "videos")
    r = t.run("detect", "--model", model, "--threads", "1", "--frames", "2", folder, "--out", out, ok=False)
    import csv
    table = list(csv.reader(open(out))) if os.path.exists(out) else []
    vrows = [x for x in table[1:] if x[table[0].index("kind")] == "video"] if table else []
    t.check(r.returncode == 0 and len(vrows) == 6, f"detect on a folder of videos, CSV: {len(vrows)} video rows "
            f"{r.stderr.strip()}")
    # nothing scorable: exit 1 with the reason
    blank = os.path.join(tmp, "blank.mp4")
    subprocess.run([TOOL, "blank", blank, "4"], check=True)
    r = t.run("detect", "--model", model, "--threads", "1", blank, ok=False)
    t.check(r.returncode == 1 and "no face" in r.stderr and "blank.mp4" in r.stderr,
            f"detect on a video without faces: exit 1 with the reason: {r.stderr.strip()}")
    empty = os.path.join(tmp, "empty.mp4")
    open(empty, "wb").close()
    r = t.run("detect", "--model", model, "--threads", "1", empty, ok=False)
    t.check(r.returncode == 1 and "empty.mp4" in r.stderr and "empty file" in r.stderr,
            f"detect on an empty .mp4: {r.stderr.strip()}")


def main():
    if not setup():
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        test_faces(tmp)
        test_bad_inputs(tmp)
        data, root, run = test_ffpp(tmp)
        test_detect(tmp, data, root, run)
    t.finish()


if __name__ == "__main__":
    sys.exit(main())
