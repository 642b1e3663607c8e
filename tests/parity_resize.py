"""cored's image path (decode + resize) gives the pixels torchvision gives.

Reference: PIL.Image.open(path).convert("RGB") then torchvision.transforms.Resize((s, s))
(Debian's python3-torchvision 0.14 on PIL: bilinear with antialiasing when downscaling).
cored's side: `cored pack` of a data folder holding the same files; the pack stores the
8-bit pixels after decode + resize, which are what the loader normalises.

Inputs: the real photos found on this machine (scikit-learn's china.jpg and flower.jpg,
Debian's logo) plus images written here with PIL in every mode the decoder promises
(grayscale, CMYK and progressive JPEG; palette, gray+alpha, RGBA PNG; tiny and elongated
sizes, i.e. upscaling and anisotropic downscaling). Fails when the mean absolute
difference (0..255 units) of any image exceeds 0.01 or any pixel differs by more than 1.
It also checks the exit codes and messages of `cored data` and `cored pack` (0 for --help,
2 for an unknown flag, 1 with the expected path named for a missing split).
"""
import glob
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import warnings

import numpy as np
from PIL import Image
import torchvision.transforms as T

warnings.filterwarnings("ignore")
CORED = os.environ.get("CORED", "./cored")
MAD_LIMIT = 0.01
SIZES = (128, 64, 200)

PHOTOS = [
    "/usr/lib/python3/dist-packages/sklearn/datasets/images/china.jpg",
    "/usr/lib/python3/dist-packages/sklearn/datasets/images/flower.jpg",
    "/usr/share/pixmaps/debian-logo.png",
] + sorted(glob.glob("/usr/share/backgrounds/*/*.jpg"))[:2]


def synthetic(root):
    """Images in every mode, written with PIL; returns their paths."""
    rng = np.random.default_rng(7)
    h, w = 150, 220
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 2) % 256], -1).astype(np.float64)
    photo = np.clip(base + rng.normal(0, 18, base.shape), 0, 255).astype(np.uint8)
    rgb = Image.fromarray(photo)
    out = []

    def save(name, im, **kw):
        p = os.path.join(root, name)
        im.save(p, **kw)
        out.append(p)

    save("rgb_q90.jpg", rgb, quality=90)
    save("progressive.jpg", rgb, quality=85, progressive=True)
    save("gray.jpg", rgb.convert("L"), quality=90)
    save("cmyk.jpg", rgb.convert("CMYK"), quality=95)
    save("rgb.png", rgb)
    save("rgba.png", Image.fromarray(np.dstack([photo, (xx % 256).astype(np.uint8)])))
    save("gray_alpha.png", rgb.convert("LA"))
    save("palette.png", rgb.convert("P", palette=Image.ADAPTIVE, colors=64))
    save("tiny.png", rgb.resize((9, 7), Image.NEAREST))
    save("tall.jpg", rgb.resize((31, 400), Image.NEAREST), quality=92)
    save("wide.png", rgb.resize((1000, 17), Image.NEAREST))
    return out


def read_pack(path):
    """{relative path: (size, pixels HWC uint8)} of a cored pack (docs/data.md)."""
    data = open(path, "rb").read()
    assert data[:8] == b"CORDPACK", "bad magic"
    version, header_bytes, size, channels = struct.unpack_from("<4I", data, 8)
    count, index_off, strings_off, strings_bytes, pixels_off = struct.unpack_from("<5Q", data, 24)
    assert version == 1 and channels == 3
    img = size * size * 3
    out = {}
    for i in range(count):
        _, _, _, off, n, label, flags = struct.unpack_from("<QqQIIII", data, index_off + 40 * i)
        rel = data[strings_off + off:strings_off + off + n].decode()
        px = np.frombuffer(data, np.uint8, img, pixels_off + i * img).reshape(size, size, 3)
        out[rel] = (flags, px)
    return out


def check_cli(data, n_images):
    """Exit codes and messages of the data commands; returns the number of failures."""
    failures = 0
    cases = [
        (["data", "--help"], 0, "--tasks", "stdout"),
        (["pack", "--help"], 0, "--size", "stdout"),
        (["data", data, "--bogus"], 2, "unknown option", "stderr"),
        (["pack", data, "--size", "x"], 2, "--size", "stderr"),
        (["data", data, "--tasks", "P"], 1, "P/val: split folder not found", "stderr"),
        (["data", os.path.join(data, "nope")], 1, "does not exist", "stderr"),
        (["pack", data, "--tasks", "Q", "--splits", "train"], 1, "Q: task folder not found", "stderr"),
    ]
    for args, code, text, stream in cases:
        r = subprocess.run([CORED] + args, capture_output=True, text=True)
        out = r.stdout if stream == "stdout" else r.stderr
        ok = r.returncode == code and text in out
        failures += not ok
        print("%s cored %s -> %d%s" % ("ok  " if ok else "FAIL", " ".join(args[:1] + args[2:]), r.returncode,
                                        "" if ok else " (want %d and '%s'): %s" % (code, text, out.strip())))
    r = subprocess.run([CORED, "data", data, "--tasks", "P"], capture_output=True, text=True)
    row = [l.split() for l in r.stdout.splitlines() if l.startswith("P ") and " train " in l]
    want = [str((n_images + 1) // 2), str(n_images // 2), str(n_images)]
    ok = len(row) == 1 and row[0][2:5] == want
    failures += not ok
    print("%s cored data table row for P/train: %s" % ("ok  " if ok else "FAIL", row))
    return failures


def main():
    tmp = tempfile.mkdtemp(prefix="cored-parity-resize-")
    try:
        src = os.path.join(tmp, "src")
        os.makedirs(src)
        files = [p for p in PHOTOS if os.path.isfile(p)] + synthetic(src)
        real_dir = os.path.join(tmp, "data", "P", "train", "real")
        fake_dir = os.path.join(tmp, "data", "P", "train", "fake")
        os.makedirs(real_dir)
        os.makedirs(fake_dir)
        names = []
        for i, p in enumerate(files):
            name = "%02d_%s" % (i, os.path.basename(p))
            shutil.copy(p, os.path.join(real_dir if i % 2 == 0 else fake_dir, name))
            names.append((("P/train/real/" if i % 2 == 0 else "P/train/fake/") + name, p))
        failures = 0
        photo_mads = []
        for size in SIZES:
            pack = os.path.join(tmp, "p%d.bin" % size)
            r = subprocess.run([CORED, "pack", os.path.join(tmp, "data"), "--size", str(size), "--out", pack,
                                "--tasks", "P", "--splits", "train", "--quiet"], capture_output=True, text=True)
            if r.returncode != 0:
                print("cored pack failed:", r.stdout, r.stderr)
                return 1
            got = read_pack(pack)
            for rel, p in names:
                flags, px = got[rel]
                ref = np.asarray(T.Resize((size, size))(Image.open(p).convert("RGB")), dtype=np.int32)
                d = np.abs(px.astype(np.int32) - ref)
                mad, mx = float(d.mean()), int(d.max())
                ok = flags == 0 and mad <= MAD_LIMIT and mx <= 1
                failures += not ok
                if p in PHOTOS:
                    photo_mads.append(mad)
                print("%s %-28s %4d px  MAD %.4f  max %d" % ("ok  " if ok else "FAIL", os.path.basename(p), size,
                                                            mad, mx))
        failures += check_cli(os.path.join(tmp, "data"), len(files))
        if photo_mads:
            print("real photos: mean MAD %.4f over %d resizes" % (np.mean(photo_mads), len(photo_mads)))
        print("%d failures" % failures)
        return 1 if failures else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
