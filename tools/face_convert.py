#!/usr/bin/python3
"""Converts face-api's SSD-MobileNetV1 face detector (tfjs weights) to cored's safetensors.

    python3 tools/face_convert.py PKG_DIR OUT.safetensors

PKG_DIR is what tools/fetch_faces.sh caches (the npm package @vladmandic/face-api 1.7.15):
PKG_DIR/model/ssd_mobilenetv1_model-weights_manifest.json and ssd_mobilenetv1_model.bin.

The manifest is TensorFlow.js's weights format: groups of files, each with an ordered list
of tensors {name, shape, dtype, quantization?} stored back to back in the .bin files. A
tensor with `quantization: {dtype: uint8, scale, min}` holds one byte q per element and
means q * scale + min, computed in double and rounded to float32 (what tfjs's
io.decodeWeights does, so the values here are bit-identical to the reference's); the
anchors (`Output/extra_dim`) are plain float32. The graph constants (int32 scalars of the
exported TensorFlow graph) are read and dropped.

The output holds the network in PyTorch layouts with PyTorch-style names, as every model
of cored (docs/faces.md has the table): convolution weights OIHW (TF's HWIO transposed;
depthwise [C, 1, 3, 3]), batch norm as weight/bias/running_mean/running_var, and the
anchors [5118, 4] as (ymin, xmin, ymax, xmax), normalised. Nothing is folded or rounded:
cored folds the depthwise batch norms when it loads the file.
"""
import hashlib
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

MANIFEST = "model/ssd_mobilenetv1_model-weights_manifest.json"
BIN = "model/ssd_mobilenetv1_model.bin"
SOURCE = "npm @vladmandic/face-api 1.7.15"
N_ANCHORS = 5118

# MobileNetV1 (depth multiplier 1): pointwise output channels of blocks 1..13.
PW_OUT = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
# SSD extra layers: (in, out, kernel) of Prediction/Conv2d_0..7_pointwise.
EXTRAS = [(1024, 256, 1), (256, 512, 3), (512, 128, 1), (128, 256, 3),
          (256, 128, 1), (128, 256, 3), (256, 64, 1), (64, 128, 3)]
# Box predictors: input channels and anchors per cell.
HEADS = [(512, 3), (1024, 6), (512, 6), (256, 6), (256, 6), (128, 6)]


class ConvertError(Exception):
    pass


def read_manifest(pkg):
    mpath = os.path.join(pkg, MANIFEST)
    try:
        with open(mpath, "rb") as f:
            manifest = json.loads(f.read())
    except OSError as e:
        raise ConvertError(f"{mpath}: cannot read: {e.strerror}")
    except ValueError as e:
        raise ConvertError(f"{mpath}: not JSON: {e}")
    if not isinstance(manifest, list) or not manifest:
        raise ConvertError(f"{mpath}: expected a list of weight groups")
    tensors = {}
    for gi, group in enumerate(manifest):
        if not isinstance(group, dict) or "paths" not in group or "weights" not in group:
            raise ConvertError(f"{mpath}: group {gi} lacks 'paths' or 'weights'")
        blob = b""
        for p in group["paths"]:
            bpath = os.path.join(os.path.dirname(mpath), os.path.basename(p))
            try:
                with open(bpath, "rb") as f:
                    blob += f.read()
            except OSError as e:
                raise ConvertError(f"{bpath}: cannot read: {e.strerror}")
        off = 0
        for w in group["weights"]:
            name, shape, dtype = w.get("name"), w.get("shape"), w.get("dtype")
            if not isinstance(name, str) or not isinstance(shape, list) or dtype not in ("float32", "int32"):
                raise ConvertError(f"{mpath}: bad weight entry {w!r}")
            n = int(np.prod(shape)) if shape else 1
            q = w.get("quantization")
            if q is not None:
                if q.get("dtype") != "uint8":
                    raise ConvertError(f"{mpath}: {name}: quantisation {q.get('dtype')!r} is not handled (uint8 only)")
                if off + n > len(blob):
                    raise ConvertError(f"{mpath}: {name} runs past the end of the weights ({len(blob)} bytes)")
                raw = np.frombuffer(blob, np.uint8, n, off).astype(np.float64)
                off += n
                v = raw * float(q["scale"]) + float(q["min"])  # as tfjs: double, then float32
                v = np.round(v).astype(np.int32) if dtype == "int32" else v.astype(np.float32)
            else:
                size = 4 * n
                if off + size > len(blob):
                    raise ConvertError(f"{mpath}: {name} runs past the end of the weights ({len(blob)} bytes)")
                v = np.frombuffer(blob, np.float32 if dtype == "float32" else np.int32, n, off).copy()
                off += size
            tensors[name] = v.reshape(shape)
        if off != len(blob):
            raise ConvertError(f"{mpath}: group {gi} describes {off} bytes, its files hold {len(blob)}")
    return tensors, mpath


def tensor_map():
    """[(cored name, tfjs name, tfjs shape, axes)]: cored's tensor is the tfjs one with its
    axes permuted by `axes` (None: as it is; the anchors drop their leading 1)."""
    m = []

    def conv(dst, tf_name, cin, cout, k, bias_name):
        m.append((dst + ".weight", tf_name + "/weights", [k, k, cin, cout], (3, 2, 0, 1)))  # HWIO -> OIHW
        m.append((dst + ".bias", tf_name + "/" + bias_name, [cout], None))

    conv("mobilenet.conv0", "MobilenetV1/Conv2d_0_pointwise", 3, 32, 3, "convolution_bn_offset")
    cin = 32
    for i, cout in enumerate(PW_OUT, start=1):
        d = f"MobilenetV1/Conv2d_{i}_depthwise"
        m.append((f"mobilenet.dw{i}.weight", d + "/depthwise_weights", [3, 3, cin, 1], (2, 3, 0, 1)))  # [C,1,3,3]
        for tf_key, key in (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                            ("moving_variance", "running_var")):
            m.append((f"mobilenet.bn{i}.{key}", f"{d}/BatchNorm/{tf_key}", [cin], None))
        conv(f"mobilenet.pw{i}", f"MobilenetV1/Conv2d_{i}_pointwise", cin, cout, 1, "convolution_bn_offset")
        cin = cout
    for j, (ci, co, k) in enumerate(EXTRAS):
        conv(f"extras.{j}", f"Prediction/Conv2d_{j}_pointwise", ci, co, k, "convolution_bn_offset")
    for h, (ci, a) in enumerate(HEADS):
        conv(f"heads.{h}.box", f"Prediction/BoxPredictor_{h}/BoxEncodingPredictor", ci, 4 * a, 1, "biases")
        conv(f"heads.{h}.cls", f"Prediction/BoxPredictor_{h}/ClassPredictor", ci, 3 * a, 1, "biases")
    m.append(("anchors", "Output/extra_dim", [1, N_ANCHORS, 4], None))
    return m


def to_cored(name, t, axes):
    """A tfjs tensor in cored's layout."""
    if axes is not None:
        return np.ascontiguousarray(t.transpose(*axes))
    return t.reshape(N_ANCHORS, 4) if name == "anchors" else t


def convert(pkg):
    src, mpath = read_manifest(pkg)
    out = {}
    for name, tf_name, shape, axes in tensor_map():
        if tf_name not in src:
            raise ConvertError(f"{mpath}: tensor {tf_name} is missing")
        t = src[tf_name]
        if list(t.shape) != list(shape):
            raise ConvertError(f"{mpath}: {tf_name} has shape {list(t.shape)}, expected {list(shape)}")
        if t.dtype != np.float32 or not np.all(np.isfinite(t)):
            raise ConvertError(f"{mpath}: {tf_name} is not float32 or holds non-finite values")
        out[name] = to_cored(name, t, axes)
    return out


def main(argv):
    if len(argv) != 3 or argv[1].startswith("-"):
        print(__doc__.strip().split("\n\n")[0] + "\n\nusage: tools/face_convert.py PKG_DIR OUT.safetensors",
              file=sys.stderr if len(argv) != 2 else sys.stdout)
        return 0 if len(argv) == 2 and argv[1] in ("-h", "--help") else 2
    pkg, dst = argv[1], argv[2]
    try:
        tensors = convert(pkg)
        with open(os.path.join(pkg, BIN), "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    except ConvertError as e:
        print(f"face_convert: error: {e}", file=sys.stderr)
        return 1
    meta = {
        "format": "cored-face-detector",
        "model": "ssd_mobilenetv1_face",
        "source": f"{SOURCE} {BIN}",
        "source_sha256": digest,
        "license": "MIT (face-api.js, Vincent Muehler; @vladmandic/face-api, Vladimir Mandic)",
        "input_size": "512",
        "bn_eps": "0.001",
        "anchors": "ymin,xmin,ymax,xmax normalised to the padded square input",
        "converter": "tools/face_convert.py",
    }
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    tmp = dst + ".part"
    try:
        st.save(tmp, tensors, meta)
        os.replace(tmp, dst)
    except OSError as e:
        print(f"face_convert: error: {dst}: cannot write: {e.strerror}", file=sys.stderr)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return 1
    n = sum(t.size for t in tensors.values())
    print(f"face_convert: {dst}: {len(tensors)} tensors, {n} floats", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
