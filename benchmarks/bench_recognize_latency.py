"""End-to-end cost of one recognition: global only, with query regions, re-ranked with k = 10 / 20 / 50.

    python benchmarks/bench_recognize_latency.py [--shots 3] [--queries 100]

One library (UKBench gallery, local features stored) is opened with each setting; every query is
timed in process CPU ms with every library single-threaded, so figures from a busy shared machine
stay close to what one idle core takes (wall time on an idle 2-core machine is at most this).
Prints CPU median / p95 per setting and the wall-clock median of each stage (from timing_ms).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from instrec.config import Config
from instrec.evaluation.datasets import load_split
from instrec.recognizer import Recognizer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SETTINGS = {
    "global only": {"rerank.enabled": False, "query.region_levels": 0},
    "global + query regions": {"rerank.enabled": False},
    "re-ranked, no query regions": {"query.region_levels": 0},
    "re-ranked, k=10, 3 region levels": {"query.region_levels": 3},
    "re-ranked, k=10 (default)": {},
    "re-ranked, k=20": {"rerank.shortlist": 20},
    "re-ranked, k=50": {"rerank.shortlist": 50},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DATA / "ukbench-dev")
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    split = load_split(args.data, args.shots)
    queries = [path for path, _ in split.queries][: args.queries]
    with tempfile.TemporaryDirectory(prefix="instrec-latency-") as home:
        base = {"runtime.threads": 1}
        with Recognizer(Config.load(home=home, overrides=base)) as rec:
            for instance, files in split.gallery:
                rec.enroll(files, instance_id=instance)
            print(f"{args.data.name}: {rec.count()} instances, {rec.stats()['images']} images; "
                  f"{len(queries)} queries; CPU ms per query, single-threaded")
        print(f"{'setting':28} {'median':>7} {'p95':>7}   median stage wall ms (inflated by machine load)")
        for name, overrides in SETTINGS.items():
            with Recognizer(Config.load(home=home, overrides={**base, **overrides})) as rec:
                rec.recognize(queries[0])  # warm-up: engine, caches
                cpu, stages = [], {}
                for query in queries:
                    start = time.process_time()
                    result = rec.recognize(query)
                    cpu.append(1e3 * (time.process_time() - start))
                    for stage, ms in result.timing_ms.items():
                        stages.setdefault(stage, []).append(ms)
            breakdown = ", ".join(f"{s} {statistics.median(v):.1f}" for s, v in stages.items() if s != "total")
            print(f"{name:28} {statistics.median(cpu):7.1f} {np.percentile(cpu, 95):7.1f}   {breakdown}", flush=True)


if __name__ == "__main__":
    main()
