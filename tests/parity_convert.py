"""tools/pth2safetensors.py: PyTorch checkpoints of each model, saved the ways users have
them (an official CoReD .pth.tar dict with `module.` prefixes, floats and an optimiser
state; a plain state_dict), convert into files that `cored forward` loads and that give the
twin's logits; --swap-classes swaps them; files of another architecture, pickled modules
and unknown layouts are refused with a message naming the problem."""
import contextlib
import io
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import parity  # noqa: E402
import pth2safetensors  # noqa: E402
import st  # noqa: E402
import twins  # noqa: E402

CONVERT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "pth2safetensors.py")
failures = 0


def check(what, ok, detail=""):
    global failures
    failures += not ok
    print(f"  {'ok  ' if ok else 'FAIL'} {what}{': ' + detail if detail and not ok else ''}")


def convert(*args):
    """The converter's main() in this process (torch is imported once); returns (code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = pth2safetensors.main(list(args))
    return subprocess.CompletedProcess(args, code, "", err.getvalue())


def logits(name, w_path, x_path, tmp):
    y = os.path.join(tmp, "y.st")
    parity.run("forward", "--model", name, "--weights", w_path, "--input", x_path, "--out", y)
    return st.load(y)[0]["logits"]


with tempfile.TemporaryDirectory() as tmp:
    x_path = os.path.join(tmp, "x.st")
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    st.save(x_path, {"input": x.numpy()})
    for name in ("tiny", "xception", "efficientnet-b0"):
        torch.manual_seed(7)
        model = twins.build(name)
        twins.randomize_bn(model, torch.Generator().manual_seed(8))
        with torch.no_grad():
            want = model.double().eval()(x.double()).numpy()
        model.float()
        sd = model.state_dict()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.1)
        official = {"epoch": 40, "best_epoch": 37, "best_acc": 93.25,
                    "state_dict": {"module." + k: v for k, v in sd.items()},
                    "optimizer": opt.state_dict()}
        torch.save(official, os.path.join(tmp, "official.pth.tar"))
        torch.save(sd, os.path.join(tmp, "plain.pth"))
        for src, extra in (("official.pth.tar", []), ("plain.pth", ["--model", name])):
            out = os.path.join(tmp, "w.safetensors")
            r = convert(os.path.join(tmp, src), out, *extra)
            check(f"{name}: convert {src} {' '.join(extra)}", r.returncode == 0, r.stderr)
            if r.returncode:
                continue
            meta = st.load(out)[1]
            check(f"{name}: metadata", meta.get("format") == "cored" and meta.get("model") == name
                  and meta.get("input_size") == "128" and meta.get("cored_version"), str(meta))
            err = parity.rel_err(logits(name, out, x_path, tmp), want)
            check(f"{name}: cored forward on the converted {src}: rel. error {err:.2g}",
                  err <= parity.FWD_TOL)
        out = os.path.join(tmp, "swapped.safetensors")
        r = convert(os.path.join(tmp, "plain.pth"), out, "--swap-classes")
        got = logits(name, out, x_path, tmp) if r.returncode == 0 else np.zeros_like(want)
        check(f"{name}: --swap-classes swaps the logits",
              parity.rel_err(got, want[:, ::-1]) <= parity.FWD_TOL, r.stderr)

    # refusals
    tiny_sd = twins.build("tiny").state_dict()
    torch.save(tiny_sd, os.path.join(tmp, "tiny.pth"))
    r = convert(os.path.join(tmp, "tiny.pth"), os.path.join(tmp, "o.st"), "--model", "xception")
    check("another architecture is refused with the names",
          r.returncode == 1 and "does not fit model 'xception'" in r.stderr
          and "conv1.weight: file" not in r.stderr and "missing (block1.skip.weight" in r.stderr
          and "fc.weight" in r.stderr and "conv2.weight: file [32, 32, 3, 3], model [64, 32, 3, 3]"
          in r.stderr, r.stderr)
    partial = {k: v for k, v in tiny_sd.items() if not k.startswith("bn4.")}
    torch.save(partial, os.path.join(tmp, "partial.pth"))
    r = convert(os.path.join(tmp, "partial.pth"), os.path.join(tmp, "o.st"))
    check("a file that fits no model names the closest and what is missing",
          r.returncode == 1 and "closest, tiny" in r.stderr and "bn4.weight" in r.stderr, r.stderr)
    torch.save(twins.build("tiny"), os.path.join(tmp, "module.pth"))
    r = convert(os.path.join(tmp, "module.pth"), os.path.join(tmp, "o.st"))
    check("a pickled nn.Module is refused without running it",
          r.returncode == 1 and "weights-only" in r.stderr, r.stderr)
    torch.save([1, 2, 3], os.path.join(tmp, "list.pth"))
    r = convert(os.path.join(tmp, "list.pth"), os.path.join(tmp, "o.st"))
    check("an unknown layout is refused", r.returncode == 1 and "expected a state_dict" in r.stderr,
          r.stderr)
    torch.save({"epoch": 1, "net": tiny_sd}, os.path.join(tmp, "other.pth"))
    r = convert(os.path.join(tmp, "other.pth"), os.path.join(tmp, "o.st"))
    check("a dict without 'state_dict' lists its keys",
          r.returncode == 1 and "top-level keys: epoch, net" in r.stderr, r.stderr)
    check("nothing written on refusal", not os.path.exists(os.path.join(tmp, "o.st")))
    r = subprocess.run(["/usr/bin/python3", CONVERT, os.path.join(tmp, "official.pth.tar"),
                        os.path.join(tmp, "cli.st")], capture_output=True, text=True)
    check("the command line converts (exit 0)", r.returncode == 0 and "model efficientnet-b0" in r.stderr,
          r.stderr)
    r = subprocess.run(["/usr/bin/python3", CONVERT, os.path.join(tmp, "list.pth"),
                        os.path.join(tmp, "cli.st")], capture_output=True, text=True)
    check("the command line refuses (exit 1)", r.returncode == 1, r.stderr)
print(f"{failures} failures")
sys.exit(1 if failures else 0)
