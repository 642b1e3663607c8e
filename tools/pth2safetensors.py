#!/usr/bin/env python3
"""Converts a PyTorch checkpoint of a CoReD backbone, or a public ImageNet checkpoint of one,
into a cored checkpoint (safetensors).

    python3 tools/pth2safetensors.py IN.pth.tar OUT.safetensors [--model NAME]
                                      [--input-size 128] [--swap-classes]

Accepted inputs:
  - an official CoReD checkpoint: a dict {epoch, best_epoch, state_dict, best_acc,
    optimizer} as torch.save writes it (only `state_dict` is used);
  - a plain state_dict (what `torch.save(model.state_dict(), f)` writes);
  - the public ImageNet checkpoints, with their 1000-class classifiers:
      Cadene's `pretrainedmodels` Xception (xception-43020ad28.pth): classifier `fc`
        [1000, 2048], stored here as cored's `last_linear`;
      the Xception file FaceForensics++'s code loads (xception-b5690688.pth, tstandley's
        port): the same, with the pointwise weights 2-D [out, in], stored [out, in, 1, 1];
      lukemelas' EfficientNet-PyTorch B0 (efficientnet-b0-355c32eb.pth): `_fc` [1000, 1280].
    Such a file keeps its classifier (metadata num_classes = 1000): it is a backbone, and
    `cored train --init FILE --init-head reset` starts from it with a new 2-class classifier.
Keys may carry the `module.` prefix of DataParallel; `num_batches_tracked` is dropped.
The model (tiny, xception, efficientnet-b0) is inferred from the names and shapes unless
--model is given; a file that fits no model is refused with the names that do not fit.
The output holds every tensor of the model as float32 under its PyTorch name, plus the
metadata cored writes (format=cored, model, input_size, cored_version), `source`,
`num_classes` (the classifier's rows) and, when the file was rewritten, `conversion`.

Loading never runs code from the file. PyTorch 1.13's `torch.load(weights_only=True)` is
tried first, but it refuses plain floats (pickle opcode BINFLOAT), which the official
checkpoints contain (`best_acc`, the optimiser's lr); the fallback is a restricted
unpickler that resolves only the globals a tensor checkpoint needs (tensor and storage
rebuilders, OrderedDict, torch.Size, NumPy scalars) and refuses everything else, e.g. a
pickled nn.Module.

Classes: cored uses 0 = real, 1 = fake. The official code takes class indices from the
alphabetical order of the data folders: folders "0"/"1" (the authors' data) give the same
order, folders "real"/"fake" give fake = 0. For a checkpoint trained on the latter, pass
--swap-classes: the rows of the classifier's weight and bias are swapped.

Exit status: 0 converted, 1 refused or failed (message on stderr), 2 usage error.
"""
import argparse
import collections
import functools
import os
import pickle
import re
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st  # noqa: E402
import twins  # noqa: E402

HEADS = {"tiny": "fc", "xception": "last_linear", "efficientnet-b0": "_fc"}

# Globals a tensor checkpoint may name, and nothing else.
SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "scalar"): np.core.multiarray.scalar,
    ("_codecs", "encode"): __import__("_codecs").encode,
}
for _n in ("float32", "float64", "float16", "bfloat16", "int64", "int32", "uint8", "bool"):
    SAFE_GLOBALS[("torch", _n)] = getattr(torch, _n)


class Refused(Exception):
    pass


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in SAFE_GLOBALS:
            return SAFE_GLOBALS[(module, name)]
        raise pickle.UnpicklingError(
            f"the file names '{module}.{name}', which a weights-only checkpoint never needs "
            f"(a pickled model object or custom class?); save model.state_dict() instead")


class _RestrictedPickle:
    """A pickle module with the restricted Unpickler, for torch's own file readers."""
    Unpickler = RestrictedUnpickler
    load = staticmethod(lambda f, **kw: RestrictedUnpickler(f, **kw).load())
    __name__ = "restricted_pickle"


def _restricted_load(path):
    # torch.load(pickle_module=...) cannot be used: 1.13 replaces any pickle_module by the
    # unrestricted `pickle` unless weights_only is set. So call its readers directly, the
    # zip format (PyTorch >= 1.6) and the legacy one, with the restricted unpickler.
    ser = torch.serialization
    with open(path, "rb") as f:
        if ser._is_zipfile(f):
            with ser._open_zipfile_reader(f) as z:
                return ser._load(z, "cpu", _RestrictedPickle, encoding="utf-8")
        return ser._legacy_load(f, "cpu", _RestrictedPickle, encoding="utf-8")


def load_checkpoint(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = e
    try:
        return _restricted_load(path)
    except AttributeError:  # a PyTorch whose private readers moved
        raise Refused(f"{path}: cannot be read as a weights-only PyTorch checkpoint: {first}")
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        raise Refused(f"{path}: cannot be read as a weights-only PyTorch checkpoint: {e}")


def extract_state_dict(obj, path):
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise Refused(f"{path}: expected a state_dict or a dict with a 'state_dict' entry, "
                      f"found {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        keys = ", ".join(map(str, list(obj)[:8]))
        raise Refused(f"{path}: not a state_dict and no 'state_dict' entry (top-level keys: "
                      f"{keys}{', ...' if len(obj) > 8 else ''})")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return {k: v for k, v in obj.items() if not k.endswith("num_batches_tracked")}


@functools.lru_cache(maxsize=None)
def reference_shapes(name):
    return {k: tuple(v.shape) for k, v in twins.build(name).state_dict().items()
            if not k.endswith("num_batches_tracked")}


def head_classes(sd, ref, name):
    """The classifier's number of classes K when sd holds it as the model's classifier with
    any K (weight [K, C] with the model's C, bias [K]); None otherwise."""
    w, b = f"{HEADS[name]}.weight", f"{HEADS[name]}.bias"
    if w not in sd or b not in sd or w not in ref:
        return None
    ws, bs = tuple(sd[w].shape), tuple(sd[b].shape)
    if len(ws) == 2 and ws[1] == ref[w][1] and bs == (ws[0],) and ws[0] >= 1:
        return ws[0]
    return None


def normalize(sd, name):
    """The state_dict under the model's names and shapes, for the layouts of the public
    checkpoints: returns (state_dict, reference shapes with the file's class count, notes)."""
    ref = dict(reference_shapes(name))
    sd, notes = dict(sd), []
    head = HEADS[name]
    if head != "fc" and f"{head}.weight" not in sd and "fc.weight" in sd and "fc.bias" in sd:
        fw = sd["fc.weight"]
        if fw.dim() == 2 and fw.shape[1] == ref[f"{head}.weight"][1]:
            sd[f"{head}.weight"], sd[f"{head}.bias"] = sd.pop("fc.weight"), sd.pop("fc.bias")
            notes.append(f"classifier fc -> {head}")
    flat = 0
    for k, v in list(sd.items()):
        r = ref.get(k)
        if (k.endswith(".pointwise.weight") and r is not None and len(r) == 4 and r[2:] == (1, 1)
                and tuple(v.shape) == r[:2]):
            sd[k] = v.reshape(r)
            flat += 1
    if flat:
        notes.append(f"{flat} pointwise weights [out, in] -> [out, in, 1, 1]")
    k = head_classes(sd, ref, name)
    if k is not None and k != ref[f"{head}.weight"][0]:
        ref[f"{head}.weight"] = (k, ref[f"{head}.weight"][1])
        ref[f"{head}.bias"] = (k,)
    return sd, ref, notes


def mismatch(sd, ref):
    missing = [k for k in ref if k not in sd]
    unexpected = [k for k in sd if k not in ref]
    shaped = [f"{k}: file {list(sd[k].shape)}, model {list(ref[k])}"
              for k in ref if k in sd and tuple(sd[k].shape) != ref[k]]
    return missing, unexpected, shaped


def describe(name, missing, unexpected, shaped, limit=6):
    def part(what, items):
        if not items:
            return ""
        more = ", ..." if len(items) > limit else ""
        return f"; {len(items)} {what} ({', '.join(items[:limit])}{more})"
    return (f"does not fit model '{name}'" + part("missing", missing)
            + part("unexpected", unexpected) + part("with another shape", shaped))


def choose_model(sd, requested, path):
    """Returns (name, normalized state_dict, its reference shapes, notes)."""
    if requested:
        nsd, ref, notes = normalize(sd, requested)
        m = mismatch(nsd, ref)
        if any(m):
            raise Refused(f"{path} {describe(requested, *m)}")
        return requested, nsd, ref, notes
    scored = []
    for name in twins.MODELS:
        nsd, ref, notes = normalize(sd, name)
        m = mismatch(nsd, ref)
        if not any(m):
            return name, nsd, ref, notes
        scored.append((sum(map(len, m)), name, m))
    _, name, m = min(scored)
    raise Refused(f"{path}: fits none of {', '.join(twins.MODELS)}; the closest, {name}, "
                  f"{describe(name, *m)}")


def cored_version():
    try:
        with open(os.path.join(HERE, "..", "include", "cored.h")) as f:
            return re.search(r'#define CORED_VERSION "([^"]+)"', f.read()).group(1)
    except (OSError, AttributeError):
        return "unknown"


def convert(src, dst, model=None, input_size=128, swap_classes=False, info=None):
    """Returns the model name; raises Refused with a message on any problem. info (a dict,
    optional) receives num_classes and the notes of what was rewritten."""
    sd = extract_state_dict(load_checkpoint(src), src)
    name, sd, ref, notes = choose_model(sd, model, src)
    classes = ref[f"{HEADS[name]}.weight"][0]
    if swap_classes and classes != 2:
        raise Refused(f"{src}: --swap-classes swaps a 2-class classifier; this file's has {classes} "
                      f"classes (a backbone: train from it with --init-head reset)")
    out = collections.OrderedDict()
    for k in ref:
        v = sd[k].detach().to(torch.float32).contiguous().numpy()
        if not np.all(np.isfinite(v)):
            raise Refused(f"{src}: tensor '{k}' holds NaN or infinite values")
        out[k] = v
    if swap_classes:
        head = HEADS[name]
        for leaf in ("weight", "bias"):
            out[f"{head}.{leaf}"] = out[f"{head}.{leaf}"][::-1].copy()
    meta = {"format": "cored", "model": name, "input_size": str(input_size),
            "cored_version": cored_version(), "source": os.path.basename(src),
            "num_classes": str(classes)}
    if notes:
        meta["conversion"] = "; ".join(notes)
    if info is not None:
        info.update(num_classes=classes, notes=notes)
    folder = os.path.dirname(os.path.abspath(dst))
    fd, tmp = tempfile.mkstemp(prefix=".pth2st-", dir=folder)
    os.close(fd)
    try:
        st.save(tmp, out, meta)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return name


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Convert a PyTorch checkpoint (.pth/.pth.tar) into a cored checkpoint.")
    ap.add_argument("src", help="official CoReD .pth.tar, a plain state_dict file or a public ImageNet "
                                "checkpoint (Cadene/tstandley Xception, lukemelas EfficientNet-B0)")
    ap.add_argument("dst", help="output .safetensors (replaced atomically)")
    ap.add_argument("--model", choices=list(twins.MODELS),
                    help="architecture (default: inferred from the names and shapes)")
    ap.add_argument("--input-size", type=int, default=128,
                    help="input size recorded in the metadata (default 128)")
    ap.add_argument("--swap-classes", action="store_true",
                    help="swap the classifier's two rows (checkpoints whose class 0 is fake)")
    a = ap.parse_args(argv)
    if a.input_size < 16:
        ap.error("--input-size must be at least 16")
    info = {}
    try:
        name = convert(a.src, a.dst, a.model, a.input_size, a.swap_classes, info)
    except Refused as e:
        print(f"pth2safetensors: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"pth2safetensors: error: {e}", file=sys.stderr)
        return 1
    print(f"pth2safetensors: {a.src} -> {a.dst} (model {name}, input size {a.input_size}"
          f"{', classes swapped' if a.swap_classes else ''}"
          f"{''.join(', ' + n for n in info['notes'])})", file=sys.stderr)
    if info["num_classes"] != 2:
        print(f"pth2safetensors: the classifier has {info['num_classes']} classes: a backbone; start "
              f"training from it with: cored train --init {a.dst} --init-head reset ...", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
