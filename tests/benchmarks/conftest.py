"""The benchmarks are scripts run from the repository root (``python benchmarks/x.py``), importing one
another by bare module name; their tests import them the same way."""

import sys
from pathlib import Path

BENCHMARKS = str(Path(__file__).resolve().parents[2] / "benchmarks")
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)
