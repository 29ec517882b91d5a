"""End-to-end cost of one recognition: global only, re-ranked with k = 10 / 20 / 50.

    python benchmarks/bench_recognize_latency.py [--data DIR] [--shots 3] [--queries 100] [--threads 1] [--only NAME ...]

One library (UKBench gallery, local features stored) is opened once per setting. The settings
take turns on every query, timed in process CPU ms and in wall-clock ms, and the ratio column
compares each setting's CPU median with the first one's (global only, unless ``--only``), so a busy
spell on a shared machine slows every setting alike. With ``--threads 1`` (the default, and how
``serve`` runs each query) the network and the search run on one thread and, where there is a
second core, the query's keypoints are found on it meanwhile: the wall-clock figure is what a
caller waits for, the CPU figure the core time a query takes from a loaded server. ``--threads 0``
is the Python API's default (one network thread per core, nothing overlapped). Also prints the
wall-clock median of each stage.
"""

from __future__ import annotations

import os
import sys

THREADS = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv[:-1] else 1
if THREADS > 0:  # BLAS reads these once, at import
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(THREADS))

import argparse
import contextlib
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from rich.progress import track

from instrec.config import Config
from instrec.evaluation.datasets import load_split
from instrec.recognizer import Recognizer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SETTINGS = {
    "global only": {"rerank.enabled": False},
    "re-ranked, k=10, no colour": {"tuning.rerank.weight_colour": 0},
    "re-ranked, k=10, float32 matching": {"tuning.rerank.match_precision": "float32"},
    "re-ranked, k=10, 10 local, 1000 kp": {"tuning.rerank.local_shortlist": 10, "tuning.rerank.query_keypoints": 1000},
    "re-ranked, k=10 (default)": {},
    "re-ranked, k=20": {"tuning.rerank.shortlist": 20},
    "re-ranked, k=50": {"tuning.rerank.shortlist": 50},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DATA / "ukbench-dev")
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="runtime.threads (0 = one per core)")
    parser.add_argument("--only", nargs="+", choices=sorted(SETTINGS), help="run these settings only")
    args = parser.parse_args()
    if args.threads > 0:
        cv2.setNumThreads(args.threads)
    split = load_split(args.data, args.shots)
    queries = [path for path, _ in split.queries][: args.queries]
    with tempfile.TemporaryDirectory(prefix="instrec-latency-") as home:
        base = {"runtime.threads": args.threads}
        with Recognizer(Config.load(home=home, overrides=base)) as rec:
            for instance, files in split.gallery:
                rec.enroll(files, instance_id=instance)
            print(
                f"{args.data.name}: {rec.gallery.count()} instances, {rec.stats()['images']} images; "
                f"{len(queries)} queries; ms per query, runtime.threads={args.threads}"
            )
        names = args.only or list(SETTINGS)
        with contextlib.ExitStack() as stack:
            engines = {
                name: stack.enter_context(Recognizer(Config.load(home=home, overrides={**base, **SETTINGS[name]})))
                for name in names
            }
            turns = take_turns(engines, [(query, None) for query in queries])
        baseline = statistics.median(turns.cpu[names[0]])
        print(f"{'setting':35} {Turns.HEADER} {'x ' + names[0]:>16}   median stage wall ms")
        for name in names:
            print(
                f"{name:35} {turns.medians(name)} {statistics.median(turns.cpu[name]) / baseline:16.2f}   {turns.breakdown(name)}"
            )


@dataclass
class Turns:
    """Per recognizer: CPU and wall-clock ms of each query, each stage's wall ms, and correct top-1 answers."""

    cpu: dict[str, list[float]] = field(default_factory=dict)
    wall: dict[str, list[float]] = field(default_factory=dict)
    stages: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    correct: dict[str, int] = field(default_factory=dict)

    HEADER = f"{'CPU median':>10} {'p95':>6} {'wall median':>11} {'p95':>6}"

    def medians(self, name: str) -> str:
        """The columns under HEADER."""
        cpu, wall = self.cpu[name], self.wall[name]
        return (
            f"{statistics.median(cpu):10.1f} {np.percentile(cpu, 95):6.1f} "
            f"{statistics.median(wall):11.1f} {np.percentile(wall, 95):6.1f}"
        )

    def breakdown(self, name: str) -> str:
        return ", ".join(f"{s} {statistics.median(v):.1f}" for s, v in self.stages[name].items() if s != "total")


def take_turns(recognizers: dict[str, Recognizer], queries: list[tuple[Path, str | None]]) -> Turns:
    """Every recognizer answers every (query, truth) after one warm-up query (engine, caches), in an
    order rotating from query to query, so none always runs first (cold caches) and a busy spell of
    the machine slows all alike."""
    names = list(recognizers)
    turns = Turns({n: [] for n in names}, {n: [] for n in names}, {n: {} for n in names}, {n: 0 for n in names})
    for recognizer in recognizers.values():
        recognizer.recognize(queries[0][0])
    for i, (query, truth) in enumerate(track(queries, description="recognising")):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            start, start_wall = time.process_time(), time.perf_counter()
            result = recognizers[name].recognize(query)
            turns.cpu[name].append(1e3 * (time.process_time() - start))
            turns.wall[name].append(1e3 * (time.perf_counter() - start_wall))
            turns.correct[name] += bool(result.matches) and result.matches[0].instance_id == truth
            for stage, ms in result.timing_ms.items():
                turns.stages[name].setdefault(stage, []).append(ms)
    return turns


if __name__ == "__main__":
    main()
