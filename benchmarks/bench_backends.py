"""Vector backends side by side: does Milvus answer as FAISS does, and at what cost?

Two parts. End to end: ukbench-dev and beer-labels (1 shot, unknown fraction 0.2, seed 0, ranking
figures: no calibration), the default pipeline with ``index.backend`` = flat (FAISS) and milvus
(Milvus Lite in the throw-away library). Index alone: ``--vectors`` unit vectors with the statistics
of real descriptors (``bench_index.structured``: one image per instance, queries are other shots of
enrolled instances; seed 0) in FAISS flat, FAISS IVF and Milvus Lite (FLAT), 200 queries one at a
time: median ms per query, recall@1 against exact search, and how long adding them took.

    python benchmarks/bench_backends.py [--vectors 100000] [--results]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_index import structured
from results import write_section

from instrec.config import Config, IndexConfig
from instrec.evaluation.compare import Setting, compare
from instrec.index import create_index

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SETS = ("ukbench-dev", "beer-labels")
BACKENDS = (Setting("FAISS flat", {"index.backend": "flat"}), Setting("Milvus Lite", {"index.backend": "milvus"}))
DIM = 1280  # the default backbone's descriptor
QUERIES = 200


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vectors", type=int, default=100_000, help="index-alone part: gallery vectors")
    parser.add_argument("--results", action="store_true", help="write the tables into benchmarks/RESULTS.md")
    args = parser.parse_args()
    lines = [
        "End to end: 1 shot, unknown fraction 0.2, seed 0, no calibration; ms/query is the wall median.",
        "",
        "| set | backend | top-1 | AUROC | TAR@FAR=1% | ms/query |",
        "|---|---|---|---|---|---|",
    ]
    for name in SETS:
        if not (DATA / name).is_dir():
            raise SystemExit(f"{DATA / name} is absent (see ../shared/data/README.md)")
        for row in compare(DATA / name, list(BACKENDS), [1], base=Config.load(), unknown_fraction=0.2, seed=0, calibrate=False):
            s = row.run.summary
            lines.append(
                f"| {name} | {row.setting.name} | {s['top1']:.3f} | {s['auroc']:.3f} | {s['tar_at_far_1pct']:.3f} "
                f"| {s['ms_per_query']:.0f} |"
            )
            print(lines[-1], flush=True)
    lines += [
        "",
        f"Index alone: {args.vectors} descriptor-like vectors (one per instance) of {DIM} dims, {QUERIES} queries "
        "one at a time, top 100.",
        "",
        "| backend | add s | ms/query (median) | recall@1 vs exact |",
        "|---|---|---|---|",
    ]
    lines += _index_alone(args.vectors)
    if args.results:
        write_section("Vector backends: FAISS and Milvus", f"python benchmarks/bench_backends.py --vectors {args.vectors}", lines)


def _index_alone(size: int) -> list[str]:
    vectors, queries = structured(size, DIM, 1, QUERIES, seed=0)
    ids = np.arange(size, dtype=np.int64) + 1
    rows, exact = [], None
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
        config = IndexConfig(uri=str(Path(tmp) / "milvus.db"))
        for kind, label in (("flat", "FAISS flat"), ("ivf", "FAISS IVF"), ("milvus", "Milvus Lite (FLAT)")):
            started = time.perf_counter()
            index = create_index(kind, DIM, config, size)
            if index.needs_training:
                index.train(vectors[: index.training_size])
            for start in range(0, size, 10_000):
                index.add(ids[start : start + 10_000], vectors[start : start + 10_000])
            added = time.perf_counter() - started
            found, ms = [], []
            for query in queries:
                started = time.perf_counter()
                found.append(index.search(query[None], 100)[1][0, 0])
                ms.append((time.perf_counter() - started) * 1e3)
            exact = np.asarray(found) if exact is None else exact
            rows.append(f"| {label} | {added:.1f} | {np.median(ms):.2f} | {np.mean(np.asarray(found) == exact):.3f} |")
            print(rows[-1], flush=True)
            index.close()
    return rows


if __name__ == "__main__":
    main()
