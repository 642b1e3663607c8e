"""cored's face detector gives what the detector's own reference implementation gives.

The reference is face-api's JavaScript (the npm package @vladmandic/face-api 1.7.15 with
the TensorFlow.js 4.22 it bundles, CPU backend) under Node (tools/face_ref.mjs), on the same
weights (the package's) and the same decoded pixels. cored runs the weights converted by
tools/face_convert.py (converted here again, into a temporary folder). Three of dlib's
example photos (tools/fetch_real.sh) cover the three input cases: a portrait padded at the
right and upscaled (360x480), a nearly square one upscaled (480x438), and a 1986x1545 group
photo with 23 faces, downscaled. Checked, per image:
  - the network's input (padding, TF bilinear resize, x / 127.5 - 1): bit-identical;
  - the score of every one of the 5118 anchors: max |cored - ref| <= 1e-4;
  - the decoded box of every anchor scoring above 0.01: max |cored - ref| <= 1e-4
    (coordinates normalised to the padded square);
  - the faces at face-api's defaults (score > 0.5, NMS at IoU 0.5): the same number, the
    same scores (1e-4) and boxes within 0.01 px + 1e-5 of the square's side, after undoing
    face-api's rounding of the resized image's side to whole pixels (its boxes are scaled
    by 512 / round(side * 512 / S) instead of S / side; up to 0.1 %) and its clipping to
    the padded square instead of the image.
Also: the converted weights are tfjs's io.decodeWeights values bit for bit (after the
layout change), and the converter refuses a truncated weights file, naming it.
Skipped (exit 0, with a message) only when npm cannot fetch the package: no network, or
no npm. The figures are in docs/faces.md.
"""
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import face_convert  # noqa: E402
import st  # noqa: E402

TOOL = os.environ.get("FACES_TOOL", os.path.join(ROOT, "build", "faces_tool"))
CACHE = os.environ.get("FACES_CACHE", os.path.join(ROOT, "build", "faces", "cache"))
PHOTOS = os.path.join(ROOT, "build", "demo", "cache")
IMAGES = ("2008_001009.jpg", "2008_004176.jpg", "bald_guys.jpg")
TOL_SCORE, TOL_BOX = 1e-4, 1e-4
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print(f"  FAIL {what}")
    return cond


def js_round(x):
    return math.floor(x + 0.5)


def ref_faces_in_cored_pixels(faces, w, h):
    """face-api's pixel boxes mapped back to cored's convention (scaled by S, clipped to
    the image)."""
    S = max(w, h)
    pad_x = 512 / js_round(w * 512 / S)
    pad_y = 512 / js_round(h * 512 / S)
    out = faces.astype(np.float64).copy()
    out[:, [0, 2]] *= S / (pad_x * w)
    out[:, [1, 3]] *= S / (pad_y * h)
    out[:, [0, 2]] = np.minimum(out[:, [0, 2]], w)
    out[:, [1, 3]] = np.minimum(out[:, [1, 3]], h)
    return out


def main():
    r = subprocess.run([os.path.join(ROOT, "tools", "fetch_faces.sh"), CACHE], capture_output=True, text=True)
    if r.returncode == 3:
        print("  SKIP parity_faces: the face detector's npm package cannot be fetched:")
        print("    " + "\n    ".join(r.stderr.strip().splitlines()[-3:]))
        return 0
    if r.returncode != 0:
        raise RuntimeError(f"tools/fetch_faces.sh failed:\n{r.stderr}")
    pkg = r.stdout.strip()
    if not shutil.which("node"):
        raise RuntimeError("node is needed for the reference (Debian: apt-get install nodejs)")
    subprocess.run([os.path.join(ROOT, "tools", "fetch_real.sh"), PHOTOS], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    folder = os.path.join(PHOTOS, "real", "faces", "dlib")

    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "face.safetensors")
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "face_convert.py"), pkg, model], check=True,
                       stderr=subprocess.DEVNULL)

        # the converter refuses a truncated weights file, naming it
        broken = os.path.join(tmp, "broken")
        shutil.copytree(os.path.join(pkg, "model"), os.path.join(broken, "model"))
        bin_path = os.path.join(broken, "model", "ssd_mobilenetv1_model.bin")
        with open(bin_path, "r+b") as f:
            f.truncate(os.path.getsize(bin_path) - 100)
        r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "face_convert.py"), broken,
                            os.path.join(tmp, "broken.safetensors")], capture_output=True, text=True)
        check(r.returncode == 1 and "weights_manifest.json" in r.stderr and "bytes" in r.stderr
              and not os.path.exists(os.path.join(tmp, "broken.safetensors")),
              f"a truncated .bin is refused naming the manifest: rc {r.returncode}, {r.stderr.strip()}")

        pairs = []
        for name in IMAGES:
            mine = os.path.join(tmp, name + ".cored.safetensors")
            subprocess.run([TOOL, "dump", "--threads", "2", "--model", model, os.path.join(folder, name), mine],
                           check=True)
            pairs += [mine, os.path.join(tmp, name + ".ref.safetensors")]
        ref_weights = os.path.join(tmp, "tfjs_weights.safetensors")
        r = subprocess.run(["node", "--no-warnings", os.path.join(ROOT, "tools", "face_ref.mjs"), pkg,
                            "--weights", ref_weights] + pairs, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"the reference (tools/face_ref.mjs) failed:\n{r.stderr}")

        # the converted weights are tfjs's own values, bit for bit, in cored's layouts
        conv, _ = st.load(model)
        tfw, _ = st.load(ref_weights)
        differ = [name for name, tf_name, _, axes in face_convert.tensor_map()
                  if tf_name not in tfw or not np.array_equal(face_convert.to_cored(name, tfw[tf_name], axes), conv[name])]
        if check(not differ and len(conv) == len(face_convert.tensor_map()),
                 f"the converted tensors are tfjs's decoded weights bit for bit ({len(differ)} differ: {differ[:3]})"):
            print(f"  weights: {len(conv)} tensors bit-identical to tfjs's io.decodeWeights")

        worst = {"score": 0.0, "box": 0.0, "face_px": 0.0, "face_score": 0.0}
        for name, mine, ref in zip(IMAGES, pairs[0::2], pairs[1::2]):
            a, meta = st.load(mine)
            b, ref_meta = st.load(ref)
            w, h = int(meta["width"]), int(meta["height"])
            S = max(w, h)
            d_in = float(np.abs(a["input"] - b["input"]).max())
            d_score = float(np.abs(a["scores"] - b["scores"]).max())
            sel = b["scores"] > 0.01
            d_box = float(np.abs(a["boxes"][sel] - b["boxes"][sel]).max())
            check(d_in == 0.0, f"{name}: the network's input is bit-identical (max diff {d_in:g})")
            check(d_score <= TOL_SCORE, f"{name}: anchor scores agree (max diff {d_score:.2e} > {TOL_SCORE})")
            check(d_box <= TOL_BOX, f"{name}: boxes of the {sel.sum()} anchors above 0.01 agree "
                  f"(max diff {d_box:.2e} > {TOL_BOX})")
            fa, fb = a["faces"], ref_faces_in_cored_pixels(b["faces"], w, h)
            line = (f"  {name} ({w}x{h}): input max diff {d_in:g}, scores {d_score:.1e}, boxes {d_box:.1e}, "
                    f"faces {len(fa)} / reference {len(fb)}")
            if check(len(fa) == len(fb), f"{name}: {len(fa)} faces, the reference finds {len(fb)}") and len(fa):
                d_px = float(np.abs(fa[:, :4] - fb[:, :4]).max())
                d_fs = float(np.abs(fa[:, 4] - fb[:, 4]).max())
                check(d_px <= 0.01 + 1e-5 * S, f"{name}: face boxes agree (max diff {d_px:.4f} px)")
                check(d_fs <= TOL_SCORE, f"{name}: face scores agree (max diff {d_fs:.2e})")
                line += f", face boxes {d_px:.1e} px, face scores {d_fs:.1e}"
                worst["face_px"] = max(worst["face_px"], d_px)
                worst["face_score"] = max(worst["face_score"], d_fs)
            worst["score"] = max(worst["score"], d_score)
            worst["box"] = max(worst["box"], d_box)
            print(line + f" (reference: {ref_meta.get('locate_ms', '?')} ms)")
        print("  worst: scores {score:.1e}, boxes {box:.1e}, face boxes {face_px:.1e} px, face scores "
              "{face_score:.1e}".format(**worst))

    print(f"  {'ok' if not failures else 'FAILED'}: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
