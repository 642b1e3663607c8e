"""cored bench --faces VIDEO: the face pipeline's speed (decode + detect + crop) as a table
and as JSON whose stages add up; the options that go with it, and those that do not; a
missing video named. Needs the detector's weights (make faces-model, or FACES_MODEL); the
parts that run the detector are skipped with a message without them. The videos come from
tests/tool_video (VIDEO_TOOL): a faceless one, and one panned across a photograph of dlib's
when tools/fetch_real.sh has fetched them."""
import json
import os
import subprocess
import sys
import tempfile

import clitest as t

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.environ.get("FACES_MODEL", os.path.join(ROOT, "build", "faces", "ssd_mobilenetv1_face.safetensors"))
VIDEO_TOOL = os.environ.get("VIDEO_TOOL", os.path.join(ROOT, "build", "tests", "tool_video"))
PHOTO = os.path.join(ROOT, "build", "demo", "cache", "real", "faces", "dlib", "2008_001009.jpg")


def main():
    r = t.run("bench", "--frames", "4", "--model", "tiny", ok=False)
    t.check(r.returncode == 2 and "--frames goes with --faces" in r.stderr, f"--frames without --faces: {r.stderr}")
    r = t.run("bench", "--faces", "x.mp4", "--batch", "4", ok=False)
    t.check(r.returncode == 2 and "--batch does not go with --faces" in r.stderr, f"--faces --batch: {r.stderr}")
    r = t.run("bench", "--faces", "x.mp4", "--model", "tiny", ok=False)
    t.check(r.returncode == 2 and "--faces" in r.stderr, "--faces with --model")
    r = t.run("bench", "--help")
    t.check("--faces VIDEO" in r.stdout and "cored bench --faces" in r.stdout, "bench --help tells of --faces")
    if "FACES_MODEL" not in os.environ and not t.face_model(MODEL):
        t.finish()
    with tempfile.TemporaryDirectory() as tmp:
        r = t.run("bench", "--faces", os.path.join(tmp, "missing.mp4"), "--face-model", MODEL, ok=False)
        t.check(r.returncode == 1 and "missing.mp4" in r.stderr, f"a missing video is named: {r.stderr.strip()}")
        blank = os.path.join(tmp, "blank.mp4")
        subprocess.run([VIDEO_TOOL, "blank", blank, "20"], check=True)
        r = t.run("bench", "--faces", blank, "--face-model", MODEL, "--frames", "5", "--reps", "2", "--threads", "2",
                  "--json")
        j = json.loads(r.stdout)
        t.check(j["frames"] == 5 and j["video_frames"] == 20 and j["width"] == 160 and j["faces"] == 0
                and j["frames_with_face"] == 0 and j["threads"] == 2 and j["reps"] == 2, f"JSON of a faceless video: {j}")
        t.check(j["frames_per_s"] > 0 and j["min_frames_per_s"] <= j["frames_per_s"] <= j["max_frames_per_s"],
                "frames/s and its range")
        t.check(abs(j["decode_ms"] + j["detect_ms"] + j["crop_ms"] - j["ms_per_frame"]) < 1e-2 * j["ms_per_frame"] + 1e-3
                and abs(1e3 / j["ms_per_frame"] - j["frames_per_s"]) < 1e-2 * j["frames_per_s"],
                f"the stages add up to the time per frame: {j}")
        if os.path.exists(PHOTO):
            clip = os.path.join(tmp, "clip.mp4")
            subprocess.run([VIDEO_TOOL, "photo", PHOTO, clip, "12", "320", "240"], check=True)
            r = t.run("bench", "--faces", clip, "--face-model", MODEL, "--frames", "4", "--reps", "1", "--crop", "64")
            t.check("decode + detect + crop" in r.stdout and "a face in 4 of 4 frames, crops of 64 px" in r.stdout,
                    f"the table, a face in every frame:\n{r.stdout}")
        else:
            print(f"  (no {PHOTO}: tools/fetch_real.sh build/demo/cache fetches it; the faces themselves not tested)")
    t.finish()


if __name__ == "__main__":
    sys.exit(main())
