"""Index at scale: N instances x 3 images of synthetic unit vectors, through the real library.

Two distributions, both reported:
- ``uniform``: instance centres uniform on the sphere -- no structure at all, the worst case for
  any partitioning index (IVF cells, PQ codes);
- ``structured``: the statistics of real EfficientNet-Lite0 GeM descriptors, measured on
  ../shared/data (ukbench-dev, coil100, att-faces; 3,266 images): a common mean direction
  (impostor cosine ~0.37), a power-law eigen-spectrum (variance of the i-th component ~ i^-1.2) and
  within-instance noise that leaves genuine pairs at cosine ~0.8.

Prints enrolment time (catalog write + index build; wall and CPU seconds, since this machine is
shared and wall time is noisy), median search latency of the search part of a recognition next to
exact FAISS flat search of the same rows in the same run, recall@1 against exact search over the same vectors,
and memory. Exact search runs on the generated array itself (``faiss.knn``), so 1,000,000 x 1280
vectors are held twice (the array, the library's index), not three times. Usage:
python benchmarks/bench_index.py [--instances 100000] [--dim 1280] [--distribution uniform structured]
[--rows 1] [--queries 1000] [--set index.key=value ...] [--keep DIR] [--results]

``--keep DIR`` builds the library in DIR and leaves it there; a later run with the same arguments
(one distribution) reuses it: its catalog write and build are then not timed, only its opening.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from results import write_section

from instrec.catalog import NewImage
from instrec.config import Config, parse_assignments
from instrec.index import set_threads
from instrec.library import Library

GENUINE_NOISE = 0.6  # uniform: shot = centre + 0.6 * unit noise (shot-to-shot cosine ~0.75)
SPECTRUM_SLOPE = 1.2  # structured: fitted slopes on the real descriptors were 1.15-1.40
SPECTRUM_RANK = 256  # structured: components drawn explicitly; the rest is an isotropic tail
MEAN_SHARE, BETWEEN_SHARE, WITHIN_SHARE = 0.37, 0.46, 0.17  # squared-norm shares before normalising


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def uniform(instances: int, dim: int, shots: int, queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((instances, dim), dtype=np.float32))
    gallery = np.empty((instances, shots, dim), np.float32)
    for start in range(0, instances, 10_000):
        part = centres[start : start + 10_000]
        noise = unit(rng.standard_normal((len(part), shots, dim), dtype=np.float32))
        gallery[start : start + len(part)] = unit(part[:, None, :] + GENUINE_NOISE * noise)
    picked = rng.choice(instances, queries, replace=False)
    probe = unit(centres[picked] + GENUINE_NOISE * unit(rng.standard_normal((queries, dim), dtype=np.float32)))
    return gallery.reshape(-1, dim), probe


def structured(instances: int, dim: int, shots: int, queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rank = min(SPECTRUM_RANK, dim)
    spectrum = np.arange(1, dim + 1, dtype=np.float64) ** -SPECTRUM_SLOPE
    spectrum /= spectrum.sum()
    head, tail = spectrum[:rank], spectrum[rank:].sum() / dim  # tail variance spread evenly
    basis = np.linalg.qr(rng.standard_normal((dim, rank)))[0].T.astype(np.float32)  # rank x dim, orthonormal
    mean = unit(rng.standard_normal(dim, dtype=np.float32)) * np.float32(np.sqrt(MEAN_SHARE))
    between, within = (np.sqrt(share * head).astype(np.float32) for share in (BETWEEN_SHARE, WITHIN_SHARE))

    def draw(centres: np.ndarray) -> np.ndarray:
        coords = centres + rng.standard_normal(centres.shape, dtype=np.float32) * within
        noise = rng.standard_normal((len(centres), dim), dtype=np.float32) * np.float32(np.sqrt(tail))
        return unit(coords @ basis + noise + mean)

    centres = rng.standard_normal((instances, rank), dtype=np.float32) * between
    gallery = np.empty((instances * shots, dim), np.float32)
    for start in range(0, instances, 10_000):
        part = np.repeat(centres[start : start + 10_000], shots, axis=0)
        gallery[start * shots : start * shots + len(part)] = draw(part)
    return gallery, draw(centres[rng.choice(instances, queries, replace=False)])


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Clock:
    """Wall and CPU seconds of a block: CPU time is what a quiet machine would take, near enough."""

    def __enter__(self) -> "Clock":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def __str__(self) -> str:
        return f"{self.wall:.1f} s ({self.cpu:.1f} s CPU)"


def median_ms(search, queries: np.ndarray) -> tuple[float, float, float, list]:
    """Median and p95 wall ms per query ((rows, dim) searched in one call), and median CPU ms (less
    sensitive to a busy machine)."""
    latencies, cpu, results = [], [], []
    for query in queries:
        started, started_cpu = time.perf_counter(), time.process_time()
        results.append(search(query))
        latencies.append((time.perf_counter() - started) * 1e3)
        cpu.append((time.process_time() - started_cpu) * 1e3)
    return float(np.median(latencies)), float(np.percentile(latencies, 95)), float(np.median(cpu)), results


def exact_search(gallery: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact inner-product neighbours' positions in ``gallery``, searched in place (no copy of it)."""
    return faiss.knn(np.ascontiguousarray(queries), gallery, k, metric=faiss.METRIC_INNER_PRODUCT)[1]


def run(
    name: str, gallery: np.ndarray, queries: np.ndarray, shots: int, config: Config, k: int, rows: int, keep: Path | None
) -> str:
    """Prints the figures; returns them as a Markdown table row."""
    dim = gallery.shape[1]
    instances = len(gallery) // shots
    photos = queries[: len(queries) // rows * rows].reshape(-1, rows, dim)
    print(
        f"== {name}: {instances} instances x {shots} images, dim {dim}, {len(photos)} queries of {rows} rows; "
        f"faiss threads {faiss.omp_get_max_threads()}"
    )
    exact_ids = exact_search(gallery, queries, 1)
    rss_before = rss_mb()
    with contextlib.nullcontext(str(keep)) if keep else tempfile.TemporaryDirectory() as home:
        with Clock() as opening:
            library = Library(Path(home), dim=dim, descriptor="synthetic", descriptor_info={}, index=config.index)
        reused = library.catalog.stats()["vectors"]
        if reused not in (0, len(gallery)):
            raise SystemExit(f"{home} holds {reused} vectors, not {len(gallery)}: not built with these arguments")
        with Clock() as write:
            for start in range(0, instances if not reused else 0, 5000):
                entries = [
                    (
                        f"i{n}",
                        [
                            NewImage(f"{n * shots + s:064x}", "synthetic", 1, 1, gallery[n * shots + s][None])
                            for s in range(shots)
                        ],
                    )
                    for n in range(start, min(start + 5000, instances))
                ]
                library.catalog.add_batch(entries, "synthetic")
        with Clock() as build:
            library.sync()
        with Clock() as save:
            library.save()
        info = library.index_info()
        print(
            f"enrol: catalog write {write}, index build {build}, total {write.wall + build.wall:.1f} s "
            f"({write.cpu + build.cpu:.1f} s CPU); save {save}" + (f"; reused {home}, opened in {opening}" if reused else "")
        )
        print(
            f"index: {info['kind']} over {info['vectors']} vectors, {info['bytes'] / 2**20:.0f} MB; "
            f"process RSS grew {rss_mb() - rss_before:.0f} MB (catalog cache included)"
        )
        # The first pass over a just built or opened index is slower than the ones after it: both shown.
        first_ms = median_ms(lambda q: library.search(q, k), photos)[0]
        approx_ms, approx_p95, approx_cpu, hits = median_ms(lambda q: library.search(q, k), photos)
        exact_ms, _, exact_cpu, _ = median_ms(lambda q: exact_search(gallery, q, k), photos[:50])
        # catalog vector pks are 1-based and follow insertion order: pk = position + 1
        firsts = [int(h.vector_ids[0]) for photo in hits for h in photo]
        recall = float(np.mean([found == int(e) + 1 for found, e in zip(firsts, exact_ids[:, 0])]))
        print(
            f"search (k={k}): median {approx_ms:.3f} ms ({approx_cpu:.3f} ms CPU), p95 {approx_p95:.3f} ms "
            f"(first pass: median {first_ms:.3f} ms); "
            f"exact FAISS flat {exact_ms:.2f} ms ({exact_cpu:.2f} ms CPU) in the same run "
            f"(ratio {approx_ms / exact_ms:.3f}); recall@1 vs exact {recall:.4f}",
            flush=True,
        )
        library.close()
    return (
        f"| {name} | {instances * shots:,} | {info['kind']} | {approx_ms / rows:.2f} | {approx_p95 / rows:.2f} "
        f"| {first_ms / rows:.2f} "
        f"| {exact_ms / rows:.1f} | {recall:.4f} | {info['bytes'] / 2**30:.2f} "
        f"| {f'reused (opened in {opening.wall:.0f})' if reused else f'{write.wall + build.wall:.0f}'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--distribution", nargs="+", choices=("uniform", "structured"), default=["uniform", "structured"])
    parser.add_argument("--set", dest="sets", action="append", default=[], help="index.* / runtime.threads overrides")
    parser.add_argument("--k", type=int, default=100, help="neighbours fetched per query (the shortlist)")
    parser.add_argument("--rows", type=int, default=1, help="rows searched together per query (a recognition searches one)")
    parser.add_argument("--results", action="store_true", help="write the figures into benchmarks/RESULTS.md")
    parser.add_argument("--keep", type=Path, help="build the library here and keep it; reuse it when it holds one")
    args = parser.parse_args()
    if args.keep and len(args.distribution) != 1:
        raise SystemExit("--keep holds one library: give one --distribution")
    config = Config.load(overrides=parse_assignments(args.sets))
    set_threads(config.runtime.threads)
    print(f"settings: {config.index.model_dump()}")
    generators = {"uniform": uniform, "structured": structured}
    load = os.getloadavg()[0]
    rows = []
    for name in args.distribution:
        gallery, queries = generators[name](args.instances, args.dim, args.shots, args.queries, seed=0)
        rows.append(run(name, gallery, queries, args.shots, config, args.k, args.rows, args.keep))
        del gallery, queries
    if args.results:
        command = f"python benchmarks/bench_index.py --instances {args.instances} --shots {args.shots} --dim {args.dim} "
        command += f"--queries {args.queries} --rows {args.rows} --k {args.k} --distribution {' '.join(args.distribution)}"
        command += "".join(f" --set {item}" for item in args.sets)
        lines = [
            f"The library's index alone (catalog write + build, then searches of k={args.k} through Library.search, "
            "timed on the second pass over the queries; the first pass's median is shown beside it), "
            f"synthetic unit vectors, seed 0, settings {dict(parse_assignments(args.sets)) or 'default'} "
            f"(index.backend={config.index.backend}); exact = FAISS brute force over the same vectors in the same run. "
            f"Load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores "
            "(above that, the machine was shared with other work and times are inflated).",
            "",
            "| distribution | vectors | index | search ms per query row (median) | p95 | first pass median "
            "| exact ms per row | recall@1 vs exact | index GiB | write + build s |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows,
        ]
        name = f"Index alone at {args.instances * args.shots:,} vectors" + "".join(f", {item}" for item in args.sets)
        write_section(name, command, lines)


if __name__ == "__main__":
    main()
