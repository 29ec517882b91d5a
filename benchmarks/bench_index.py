"""Index at scale: N instances x 3 images of synthetic unit vectors, through the real library.

Prints enrolment time (catalog write + index build), median search latency for the search part of
a recognition, recall@1 of the approximate index against exact search over the same vectors, and
memory. Usage: python benchmarks/bench_index.py [--instances 100000] [--dim 1280]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from instrec.catalog import NewImage
from instrec.config import IndexConfig
from instrec.library import Library


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def synthetic(instances: int, dim: int, shots: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shots = centre + noise (shot-to-shot cosine ~0.75, like real genuine pairs)."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((instances, dim), dtype=np.float32))
    noise = unit(rng.standard_normal((instances, shots, dim), dtype=np.float32))
    return centres, unit(centres[:, None, :] + 0.6 * noise)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--nprobe", type=int, default=IndexConfig().nprobe)
    parser.add_argument("--k", type=int, default=100, help="neighbours fetched per query (the shortlist)")
    args = parser.parse_args()

    centres, shots = synthetic(args.instances, args.dim, args.shots, seed=0)
    rng = np.random.default_rng(1)
    picked = rng.choice(args.instances, args.queries, replace=False)
    queries = unit(centres[picked] + 0.6 * unit(rng.standard_normal((args.queries, args.dim), dtype=np.float32)))
    print(f"{args.instances} instances x {args.shots} images, dim {args.dim}; RSS after data {rss_mb():.0f} MB")

    with tempfile.TemporaryDirectory() as home:
        library = Library(Path(home), dim=args.dim, descriptor="synthetic", descriptor_info={},
                          index=IndexConfig(backend=args.backend, nprobe=args.nprobe))
        started = time.perf_counter()
        batch = 5000
        for start in range(0, args.instances, batch):
            entries = [
                (f"i{n}", [NewImage(f"{n * args.shots + s:064x}", "synthetic", 1, 1, shots[n, s][None])
                           for s in range(args.shots)])
                for n in range(start, min(start + batch, args.instances))
            ]
            library.catalog.add_batch(entries, "synthetic")
        written = time.perf_counter() - started
        library.sync()
        enrolled = time.perf_counter() - started
        library.save()
        info = library.index_info()
        print(f"enrol: catalog write {written:.1f} s, index build {enrolled - written:.1f} s, "
              f"total {enrolled:.1f} s ({args.instances * args.shots / enrolled:,.0f} vectors/s); "
              f"index {info['kind']} {info['vectors']} vectors, {info['bytes'] / 2**20:.0f} MB; "
              f"save {time.perf_counter() - started - enrolled:.1f} s")

        latencies, approx_top = [], []
        for query in queries:
            t = time.perf_counter()
            hits = library.search(query[None], args.k)[0]
            latencies.append((time.perf_counter() - t) * 1e3)
            approx_top.append(int(hits.vector_ids[0]))
        exact = faiss.IndexFlatIP(args.dim)
        exact.add(shots.reshape(-1, args.dim))
        t = time.perf_counter()
        _, exact_ids = exact.search(queries, 1)
        exact_ms = (time.perf_counter() - t) * 1e3 / len(queries)
        # catalog vector pks are 1-based and follow insertion order: pk = position + 1
        recall = float(np.mean(np.asarray(approx_top) == exact_ids[:, 0] + 1))
        lat = np.asarray(latencies)
        print(f"search (k={args.k}): median {np.median(lat):.3f} ms, p95 {np.percentile(lat, 95):.3f} ms; "
              f"exact batched {exact_ms:.3f} ms/query; recall@1 vs exact {recall:.4f}")
        print(f"peak RSS {rss_mb():.0f} MB (includes the {shots.nbytes / 2**20:.0f} MB benchmark data "
              f"and the exact reference index)")
        library.close()


if __name__ == "__main__":
    main()
