"""make test-slow: one CoReD and one DL training step of Xception (128 px, batch 2, 3 SGD
steps, CutMix) against the float64 reference, as tests/parity_method_step.py does for tiny
and EfficientNet-B0 (see there and tools/ref_step.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.argv = [sys.argv[0], "--model", "xception"]
import parity_method_step  # noqa: E402

parity_method_step.main()
