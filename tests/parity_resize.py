"""cored's image path (decode + resize) gives the pixels torchvision gives.

Reference: PIL.Image.open(path).convert("RGB") then torchvision.transforms.Resize((s, s))
(Debian's python3-torchvision 0.14 on PIL: bilinear with antialiasing when downscaling).
cored's side: `cored pack` of a data folder holding the same files; the pack stores the
8-bit pixels after decode + resize, which are what the loader normalises.

Inputs: the real photos found on this machine (scikit-learn's china.jpg and flower.jpg,
Debian's logo) plus images written here with PIL in every mode the decoder promises
(grayscale, CMYK and progressive JPEG; palette with and without tRNS, gray+alpha, RGBA
PNG; a PNG without its IEND chunk; 1x1, tiny, tall, wide, 64000x1 and 4000x3000 sizes,
i.e. upscaling and anisotropic downscaling). docs/data.md claims bit-exactness, so any
pixel that differs (maximum difference above 0) fails.
It also checks the command line of `cored data` and `cored pack`: exit codes (0 for
--help, 2 for an unknown flag or a bad --tasks list, 1 with the expected path named for a
missing split), where the output goes (table and counts on stdout, problems on stderr
after the table), --strict --quiet still printing the warnings that fail it, and the
pixel-pipeline revision in the pack header.
"""
import glob
import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
from PIL import Image
import torchvision.transforms as T

warnings.filterwarnings("ignore")
CORED = os.environ.get("CORED", "./cored")
MAX_DIFF = 0  # bit-exact, as docs/data.md claims
SIZES = (128, 64, 200)
PIPELINE = 1  # CORED_PACK_PIPELINE (src/data/data.h)

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
    pal = rgb.convert("P", palette=Image.ADAPTIVE, colors=16)
    save("palette_trns.png", pal, transparency=bytes(range(0, 256, 16)))
    save("tiny.png", rgb.resize((9, 7), Image.NEAREST))
    save("one.png", rgb.resize((1, 1), Image.NEAREST))
    save("tall.jpg", rgb.resize((31, 400), Image.NEAREST), quality=92)
    save("wide.png", rgb.resize((1000, 17), Image.NEAREST))
    line = np.clip(np.sin(np.arange(64000) / 97.0)[None, :, None] * 120 + 128 + rng.normal(0, 9, (1, 64000, 3)), 0, 255)
    save("line_64000x1.png", Image.fromarray(line.astype(np.uint8)))
    big = np.asarray(rgb.resize((4000, 3000), Image.BICUBIC)).astype(np.int16) + rng.integers(-6, 7, (3000, 4000, 3))
    save("big_4000x3000.jpg", Image.fromarray(np.clip(big, 0, 255).astype(np.uint8)), quality=90)
    # a PNG whose IEND chunk is missing (PIL loads it; so must cored)
    buf = io.BytesIO()
    rgb.save(buf, "PNG")
    data = buf.getvalue()
    assert data[-8:-4] == b"IEND"
    p = os.path.join(root, "no_iend.png")
    with open(p, "wb") as f:
        f.write(data[:-12])
    out.append(p)
    return out


def read_pack(path):
    """{relative path: (size, pixels HWC uint8)} of a cored pack (docs/data.md)."""
    data = open(path, "rb").read()
    assert data[:8] == b"CORDPACK", "bad magic"
    version, header_bytes, size, channels = struct.unpack_from("<4I", data, 8)
    count, index_off, strings_off, strings_bytes, pixels_off = struct.unpack_from("<5Q", data, 24)
    assert version == 1 and channels == 3
    pipeline, = struct.unpack_from("<I", data, 88)
    assert pipeline == PIPELINE, "pack header: pixel pipeline %d, want %d" % (pipeline, PIPELINE)
    assert pixels_off % 4096 == 0 and pixels_off - (strings_off + strings_bytes) < 4096
    img = size * size * 3
    out = {}
    for i in range(count):
        _, _, _, off, n, label, flags = struct.unpack_from("<QqQIIII", data, index_off + 40 * i)
        rel = data[strings_off + off:strings_off + off + n].decode()
        px = np.frombuffer(data, np.uint8, img, pixels_off + i * img).reshape(size, size, 3)
        out[rel] = (flags, px)
    return out


def check_cli(data, n_images):
    """The data commands' exit codes, messages and output streams; returns the number of
    failures."""
    failures = 0

    def report(ok, what, detail=""):
        nonlocal failures
        failures += not ok
        print("%s %s%s" % ("ok  " if ok else "FAIL", what, "" if ok else ": " + detail))

    cases = [
        (["data", "--help"], 0, "--tasks", "stdout"),
        (["pack", "--help"], 0, "--size", "stdout"),
        (["data", data, "--bogus"], 2, "unknown option", "stderr"),
        (["pack", data, "--size", "x"], 2, "--size", "stderr"),
        (["data", data, "--tasks", "P,P"], 2, "listed twice", "stderr"),
        (["data", data, "--tasks", "P,,Q"], 2, "empty task name", "stderr"),
        (["pack", data, "--tasks", "../P"], 2, "not a task folder name", "stderr"),
        (["data", data, "--tasks", "P"], 1, "P/val: split folder not found", "stderr"),
        (["data", os.path.join(data, "nope")], 1, "does not exist", "stderr"),
        (["pack", data, "--tasks", "Q", "--splits", "train"], 1, "Q: task folder not found", "stderr"),
    ]
    for args, code, text, stream in cases:
        r = subprocess.run([CORED] + args, capture_output=True, text=True)
        out = r.stdout if stream == "stdout" else r.stderr
        report(r.returncode == code and text in out, "cored %s -> %d" % (" ".join(args[:1] + args[2:]), r.returncode),
               "want %d and '%s': %s" % (code, text, out.strip()))
    r = subprocess.run([CORED, "data", data, "--tasks", "P"], capture_output=True, text=True)
    row = [l.split() for l in r.stdout.splitlines() if l.startswith("P ") and " train " in l]
    want = [str((n_images + 1) // 2), str(n_images // 2), str(n_images)]
    report(len(row) == 1 and row[0][2:5] == want, "cored data table row for P/train: %s" % row)
    # table, blank line, counts on stdout; a blank line, then the problems on stderr
    out = r.stdout.splitlines()
    report(out[0].split()[:2] == ["task", "split"] and "" in out and "images indexed" in out[-1] and
           out[out.index("") + 1:] == out[-1:] and "cored:" not in r.stdout,
           "cored data: table and counts on stdout", r.stdout)
    err = r.stderr.splitlines()
    report(len(err) >= 2 and err[0] == "" and all(l.startswith("cored: ") for l in err[1:]),
           "cored data: problems on stderr after a blank line", r.stderr)
    # --strict --quiet: a warning that fails the command is still printed
    stray = os.path.join(data, "P", "train", "real", "notes.txt")
    with open(stray, "w") as f:
        f.write("x")
    try:
        q = subprocess.run([CORED, "data", data, "--tasks", "P", "--quiet"], capture_output=True, text=True)
        s = subprocess.run([CORED, "data", data, "--tasks", "P", "--quiet", "--strict"], capture_output=True,
                           text=True)
    finally:
        os.remove(stray)
    report("notes.txt" not in q.stderr, "cored data --quiet hides warnings", q.stderr)
    # two cored pack runs into one file at once: neither deletes the other's temporary file
    out = os.path.join(data, "twice.bin")
    args = [CORED, "pack", data, "--tasks", "P", "--splits", "train", "--size", "32", "--out", out, "--quiet"]
    runs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    time.sleep(0.05)
    runs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = [(r.wait(), r.communicate()[1]) for r in runs]
    report(all(code == 0 for code, _ in results) and len(read_pack(out)) == n_images and
           not [f for f in os.listdir(data) if ".tmp." in f],
           "two concurrent cored pack runs both succeed", str(results))
    os.remove(out)
    report(s.returncode == 1 and "warning" in s.stderr and "notes.txt" in s.stderr,
           "cored data --strict --quiet prints the warnings that fail it", s.stderr)
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
                ok = flags == 0 and mx <= MAX_DIFF
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
