"""Does FAISS search faster with 1 OpenMP thread or with all cores, on this machine?

    python benchmarks/bench_search_threads.py              # ~1-2 minutes
    python benchmarks/bench_search_threads.py --rounds 20

``runtime.threads`` sets FAISS's threads (process-wide) as well as the model's. This measures our
own index classes (exact, and IVF past ``index.auto_threshold``) on synthetic unit vectors: the
single-query search that every recognition does, and a 2000-query batch like calibration. Thread
counts alternate in short blocks within one run, so a shared machine's load hits both alike; each
setting is measured idle and beside a busy process that keeps one core spinning (as a concurrent
model inference does in the service).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time

import faiss
import numpy as np

from instrec.config import IndexConfig
from instrec.index import create_index

DIM = 1280
K = 100


def unit_vectors(count: int, rng: np.random.Generator) -> np.ndarray:
    vectors = rng.standard_normal((count, DIM), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def build(kind: str, size: int, rng: np.random.Generator):
    index = create_index(kind, DIM, IndexConfig(), size)
    vectors = unit_vectors(size, rng)
    if index.needs_training:
        index.train(vectors[: index.training_size])
    index.add(np.arange(size, dtype=np.int64), vectors)
    return index


def spin(stop) -> None:  # one core busy, like a model inference running beside the search
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def time_single(index, queries: np.ndarray, threads: int) -> list[float]:
    faiss.omp_set_num_threads(threads)
    out = []
    for query in queries:
        t0 = time.perf_counter()
        index.search(query[None, :], K)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def time_batch(index, queries: np.ndarray, threads: int) -> float:
    faiss.omp_set_num_threads(threads)
    t0 = time.perf_counter()
    index.search(queries, K)
    return (time.perf_counter() - t0) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="alternating blocks per setting")
    parser.add_argument("--block", type=int, default=50, help="single queries per block")
    parser.add_argument("--batch", type=int, default=2000, help="queries in the batch search")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    settings = sorted({1, cores})
    rng = np.random.default_rng(0)
    print(f"{cores} cores, load average {os.getloadavg()[0]:.2f}; k={K}, dim={DIM}; settings {settings} threads\n")
    print(
        "| index | vectors | beside | threads | single p50 ms | single p95 ms | batch of "
        f"{args.batch} ms | single p50 vs 1 thread |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for kind, size in (("flat", 60), ("flat", 20_000), ("ivf", 100_000)):
        index = build(kind, size, rng)
        queries = unit_vectors(args.block, rng)
        batch = unit_vectors(args.batch, rng)
        for busy in (False, True):
            stop = multiprocessing.Event()
            spinner = multiprocessing.Process(target=spin, args=(stop,)) if busy else None
            if spinner:
                spinner.start()
            single = {t: [] for t in settings}
            batches = {t: [] for t in settings}
            for t in settings:
                time_single(index, queries[:5], t)  # warm-up
            for _ in range(args.rounds):
                for t in settings:
                    single[t] += time_single(index, queries, t)
                    batches[t].append(time_batch(index, batch, t))
            if spinner:
                stop.set()
                spinner.join()
            base = statistics.median(single[1])
            for t in settings:
                p50 = statistics.median(single[t])
                p95 = float(np.percentile(single[t], 95))
                print(
                    f"| {kind} | {size} | {'busy core' if busy else 'nothing'} | {t} | {p50:.3f} | {p95:.3f} | "
                    f"{statistics.median(batches[t]):.0f} | {p50 / base:.2f}x |"
                )
    faiss.omp_set_num_threads(cores)


if __name__ == "__main__":
    main()
