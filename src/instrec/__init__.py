"""instrec: recognise specific instances from a few reference images each."""

import os

# FAISS and torch each bring an OpenMP runtime, and by default an idle OpenMP thread spins for a
# while after every parallel region: the two runtimes (and SIFT) then take the cores from each
# other, which doubled a query's latency. Idle threads that sleep cost microseconds per region.
# This must be set before either runtime loads, i.e. before torch or faiss is imported; a value
# the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
