"""Accuracy on the real data in ../shared/data: top-1/top-5/MRR/mAP/AUROC for 1, 2, 3 shots.

Usage: python benchmarks/bench_accuracy.py [--set key=value ...] [--unknown-fraction 0.2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from instrec.config import Config, parse_assignments
from instrec.embedding.embedder import Embedder
from instrec.evaluation import evaluate

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
COLUMNS = ("top1", "top5", "mrr", "map", "auroc", "tar_at_far_1pct", "ms_per_query")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--unknown-fraction", type=float, default=0.2)
    parser.add_argument("--datasets", nargs="*", default=["ukbench-dev", "coil100", "att-faces"])
    args = parser.parse_args()
    config = Config.load(overrides=parse_assignments(args.sets))
    embedder = Embedder(config.descriptor, config.runtime)
    print(f"settings: {args.sets or 'defaults'}; unknown fraction {args.unknown_fraction}")
    print(f"{'dataset':12} shots " + " ".join(f"{c:>15}" for c in COLUMNS))
    for name in args.datasets:
        if not (DATA / name).is_dir():
            print(f"{name}: absent ({DATA / name})")
            continue
        for shots in (1, 2, 3):
            r = evaluate(DATA / name, shots=shots, unknown_fraction=args.unknown_fraction, seed=0,
                         config=config, embedder=embedder)
            cells = " ".join(f"{r[c]:>15.3f}" if isinstance(r[c], float) else f"{str(r[c]):>15}" for c in COLUMNS)
            print(f"{name:12} {shots:5} {cells}", flush=True)


if __name__ == "__main__":
    main()
