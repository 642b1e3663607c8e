"""Results do not depend on the CPU: a CoReD training step (teacher and folded eval-mode pass
included, two optimiser steps) on Xception and EfficientNet-B0 gives the same bits on every
matrix-product path this CPU has — scalar, AVX2 + FMA, and AVX-512 where it exists. An
AVX2 machine (AMD Zen 3) runs the AVX2 path and an AVX-512 one (Zen 4) the AVX-512 path, and
every other kernel runs the same AVX2 code on both, so the two train the same model from
the same seed. OpenBLAS's kernel choice (OPENBLAS_CORETYPE) changes nothing either: cored's
products do not go through it."""
import os
import tempfile

import numpy as np

import clitest as t

st = t.st

with open("/proc/cpuinfo") as f:
    flags = f.read()
PATHS = ["scalar"] + (["avx2"] if " avx2 " in flags and " fma " in flags else []) + \
        (["avx512"] if " avx512f " in flags else [])


def step(tmp, model, size, env_extra, tag):
    out = os.path.join(tmp, f"{model}-{tag}")
    env = dict(os.environ, **env_extra)
    t.run("grad", "--model", model, "--method", "cored", "--teacher", os.path.join(tmp, f"{model}-t.st"),
          "--weights", os.path.join(tmp, f"{model}-w.st"), "--input", os.path.join(tmp, f"x{size}.st"),
          "--labels", os.path.join(tmp, "l.st"), "--steps", "2", "--threads", "2",
          "--out", out + "-g.st", "--out-weights", out + "-w.st", env=env)
    return out


def main():
    t.check(len(PATHS) >= 2, f"paths to compare on this CPU: {PATHS}")
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(5)
        st.save(os.path.join(tmp, "l.st"), {"labels": np.array([0, 1, 1, 0], dtype=np.int64)})
        for model, size in (("xception", 71), ("efficientnet-b0", 64)):
            st.save(os.path.join(tmp, f"x{size}.st"),
                    {"input": rng.uniform(-1, 1, (4, 3, size, size)).astype(np.float32)})
            t.run("init", "--model", model, "--seed", "1", "--out", os.path.join(tmp, f"{model}-w.st"))
            t.run("init", "--model", model, "--seed", "2", "--out", os.path.join(tmp, f"{model}-t.st"))
            runs = {p: step(tmp, model, size, {"CORED_SGEMM_PATH": p}, p) for p in PATHS}
            runs["Haswell"] = step(tmp, model, size, {"OPENBLAS_CORETYPE": "Haswell"}, "haswell")
            ref = PATHS[-1]
            for name, out in runs.items():
                if name == ref:
                    continue
                t.check(t.same_tensors(runs[ref] + "-w.st", out + "-w.st") and
                        t.same_tensors(runs[ref] + "-g.st", out + "-g.st"),
                        f"{model}: the weights and gradients of {ref} and {name} are the same bits")
            print(f"  {model} {size} px: {', '.join(runs)} compared")
    t.finish()


if __name__ == "__main__":
    main()
