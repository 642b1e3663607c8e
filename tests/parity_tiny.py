"""The tiny model matches its PyTorch twin: logits, features, running statistics, the loss,
every gradient, and a few SGD, Adam and AdamW steps (see tools/parity.py)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import parity  # noqa: E402

failures = 0
failures += parity.check_model("tiny", n=4, size=64, seed=0,
                               optimizers=(("sgd", 0.05, 0.1), ("adam", 0.001, 0), ("adamw", 0.001, 0)))
failures += parity.check_model("tiny", n=3, size=37, seed=1)  # odd size, odd batch
sys.exit(1 if failures else 0)
