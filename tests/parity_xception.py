"""Xception matches its PyTorch twin (tools/twins.py, the Cadene/tstandley layout): logits,
features and BN running statistics in eval and train mode, the loss and every parameter
gradient, and 3 SGD steps (momentum 0.1, lr 0.05), with the float64 reference following
cored's side of every ReLU and max-pool kink (see tools/parity.py); forward-only at odd
input sizes."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import parity  # noqa: E402

failures = 0
failures += parity.check_model("xception", n=2, size=128, seed=0)
failures += parity.check_forward("xception", n=2, size=65, seed=1)
failures += parity.check_forward("xception", n=1, size=97, seed=2)
sys.exit(1 if failures else 0)
