#!/usr/bin/env python3
"""Writes the seed corpus of the safetensors fuzz target (fuzz/corpus/safetensors/).

Valid files only, built byte by byte with struct and json (no torch): every dtype, the
reference crate's README example, metadata, a scalar, empty tensors, escaped and non-ASCII
names, offsets listed out of order, special half-precision values, and an empty file.
Usage: python3 tools/make_st_corpus.py [output folder]
"""
import json
import os
import struct
import sys

FORMATS = {  # dtype: (struct code, sample values)
    "BOOL": ("B", [0, 1, 1, 0, 1, 0]),
    "U8": ("B", [0, 1, 127, 128, 255, 7]),
    "I8": ("b", [-128, -1, 0, 1, 127, 5]),
    "I16": ("h", [-32768, -1, 0, 1, 32767, 300]),
    "U16": ("H", [0, 1, 65535, 256, 1000, 7]),
    "I32": ("i", [-(2**31), -1, 0, 1, 2**31 - 1, 70000]),
    "U32": ("I", [0, 1, 2**32 - 1, 2**31, 65536, 9]),
    "I64": ("q", [-(2**63), -1, 0, 1, 2**63 - 1, 2**40]),
    "U64": ("Q", [0, 1, 2**64 - 1, 2**63, 2**32, 3]),
    "F16": ("e", [1.0, -2.0, 65504.0, 2.0**-24, 0.0, 0.5]),
    "F32": ("f", [1.0, -2.5, 3.4e38, 1e-45, 0.0, 1.0 / 3]),
    "F64": ("d", [1.0, -2.5, 1e300, 5e-324, 0.0, 0.1]),
}


def safetensors(tensors, metadata=None, order=None, pad=8, ensure_ascii=True):
    """tensors: list of (name, dtype, shape, raw bytes) in data order; order: header order."""
    header, offset, data = {}, 0, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    entries = {}
    for name, dtype, shape, raw in tensors:
        entries[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    for name in order or [t[0] for t in tensors]:
        header[name] = entries[name]
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=ensure_ascii).encode("utf-8")
    text += b" " * ((pad - len(text) % pad) % pad)
    return struct.pack("<Q", len(text)) + text + data


def main():
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus", "safetensors")
    out = os.path.normpath(sys.argv[1] if len(sys.argv) > 1 else default)
    os.makedirs(out, exist_ok=True)
    files = {}
    for dtype, (code, vals) in FORMATS.items():
        raw = struct.pack("<%d%s" % (len(vals), code), *vals)
        files["dtype_%s" % dtype.lower()] = safetensors([("x", dtype, [2, 3], raw)], {"dtype": dtype})
    readme = b'{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]},"__metadata__":{"foo":"bar"}}'
    files["crate_readme"] = struct.pack("<Q", len(readme)) + readme + bytes(16)
    f32 = lambda *v: struct.pack("<%df" % len(v), *v)
    files["model_like"] = safetensors(
        [
            ("conv1.weight", "F32", [2, 1, 2, 2], f32(*[i / 8 for i in range(8)])),
            ("bn1.running_mean", "F32", [2], f32(0.25, -0.5)),
            ("bn1.num_batches_tracked", "I64", [], struct.pack("<q", 12)),
            ("scale", "F32", [], f32(3.0)),
            ("empty", "F32", [0, 4], b""),
            ("fc.bias", "BF16", [2], struct.pack("<2H", 0x3F80, 0xC000)),
        ],
        {"format": "pt", "arch": "tiny", "task": "0"},
    )
    files["unordered_header"] = safetensors(
        [("a", "F32", [1], f32(1)), ("b", "U8", [3], b"\x01\x02\x03"), ("c", "F16", [1], b"\x00\x3c")],
        order=["c", "a", "b"],
    )
    files["names_escaped"] = safetensors(
        [("quote\"back\\slash\n\u00e9\U0001F600", "F32", [1], f32(2)), ("", "I8", [1], b"\xff")],
        {"k\u00fc": "v\t\"x\""},
    )
    files["names_utf8_raw"] = safetensors([("caf\u00e9.w", "F32", [2], f32(1, 2))], {"n": "\u00e9"}, ensure_ascii=False)
    files["f16_specials"] = safetensors(
        [("h", "F16", [8], struct.pack("<8H", 0x7C00, 0xFC00, 0x7E00, 0x0001, 0x03FF, 0x8000, 0x7BFF, 0x3555))]
    )
    files["labels_float"] = safetensors([("labels", "F32", [4], f32(0, 1, 1, 0))])
    files["empty"] = safetensors([])
    files["metadata_only"] = safetensors([], {"framework": "pt"})
    files["unpadded"] = safetensors([("x", "U8", [3], b"abc")], pad=1)
    for name, blob in sorted(files.items()):
        with open(os.path.join(out, name + ".safetensors"), "wb") as fh:
            fh.write(blob)
    print("%d files in %s" % (len(files), out))


if __name__ == "__main__":
    main()
