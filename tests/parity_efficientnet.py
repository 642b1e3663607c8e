"""EfficientNet-B0 matches its PyTorch twin (tools/twins.py, the lukemelas layout with
static TF-"same" padding for 224): logits, features and BN running statistics in eval and
train mode, the loss and every parameter gradient, and 3 SGD steps (momentum 0.1, lr 0.05);
forward-only at odd input sizes. At 64 px and batch 2 the 3-step losses are ill-conditioned
(PyTorch's own float32 run disagrees with float64 there), so the full check runs at 128 px."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import parity  # noqa: E402

failures = 0
failures += parity.check_model("efficientnet-b0", n=2, size=128, seed=0)
failures += parity.check_forward("efficientnet-b0", n=2, size=65, seed=1)
failures += parity.check_forward("efficientnet-b0", n=1, size=97, seed=2)
sys.exit(1 if failures else 0)
