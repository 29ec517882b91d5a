"""Two replicas on one PostgreSQL catalog: how long until an enrolment acknowledged by one is answered by the other?

A writer process (its own home) enrols ``--enrolments`` instances one at a time, a random 0-50 ms
apart, and notes when each ``add_images`` returned (the acknowledgement). A reader process (another
home, the same catalog) searches, over and over as a replica serving queries would, for every
instance acknowledged and not yet answered, and for the next one; each search first replays the
shared journal. The delay of an enrolment is
the time of the first search that answered it minus its acknowledgement (one clock: one machine),
so it includes one search and its replay; a search that started before the acknowledgement and
still found it counts as 0. Both libraries start from ``--gallery`` instances of unit vectors of
the default descriptor's size (seed 0), flat FAISS index.

    python benchmarks/bench_replicas.py [--url postgresql://...] [--enrolments 200] [--gallery 10000] [--runs 3] [--results]

``--serve`` instead runs two ``instrec serve`` processes (auth on, each its own home, 127.0.0.1) on
one PostgreSQL catalog, with the real model: 20 photos enrolled through both, then for ``--seconds``
``--clients`` recognition clients spread over both replicas (each waits for its answer) while one
enrolment at a time, ``--enrol-every`` seconds apart, goes to either in turn. After each acknowledgement a checker
sends the same photo to the *other* replica until its best match is the new instance: the delay is
from the acknowledgement to the answer received (so it includes one whole recognition). Afterwards
every acknowledged enrolment is read and recognised on both replicas: lost = acknowledged but absent
from, or not answered by, either.

    python benchmarks/bench_replicas.py --serve [--seconds 60] [--clients 4] [--enrol-every 2] [--results]

Without ``--url`` a throwaway PostgreSQL server is started as the tests do (tests/postgres.py).
"""

from __future__ import annotations

import argparse
import json
import queue
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterator

import numpy as np
from results import write_section

from instrec.catalog import NewImage
from instrec.config import IndexConfig
from instrec.library import Library

ROOT = Path(__file__).resolve().parents[1]
DIM = 1280  # the default backbone's descriptor
SEED = 0


def vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((1, DIM)).astype(np.float32)
    return v / np.linalg.norm(v)


def image(seed: int) -> NewImage:
    return NewImage(f"{seed:064x}", "bench", 8, 8, vector(seed))


def open_library(home: Path, url: str) -> Library:
    return Library(home, dim=DIM, descriptor="bench", descriptor_info={}, index=IndexConfig(backend="flat"), catalog_url=url)


def write(home: Path, url: str, first: int, count: int) -> None:
    """The writer replica: enrol ``count`` instances, print each one's seed and acknowledgement time."""
    library = open_library(home, url)
    pauses = np.random.default_rng(SEED).uniform(0, 0.05, count)
    print("ready", flush=True)
    sys.stdin.readline()  # the reader is searching
    for seed, pause in zip(range(first, first + count), pauses):
        library.catalog.add_images(f"e{seed}", [image(seed)], "bench")
        print(json.dumps([seed, time.time()]), flush=True)
        time.sleep(pause)
    library.close()


def measure(url: str, enrolments: int, gallery: int, scratch: Path) -> tuple[np.ndarray, float]:
    """(delay in seconds per enrolment, median ms per reader search)."""
    reader = open_library(scratch / "reader", url)
    reader.catalog.add_batch([(f"g{n}", [image(n)]) for n in range(gallery)], "bench")
    reader.search(vector(0), 1)  # built and warm before the clock starts
    writer = subprocess.Popen(
        [sys.executable, __file__, "--writer", str(scratch / "writer"), url, str(gallery), str(enrolments)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdin is not None and writer.stdout is not None  # both piped
    found: dict[int, float] = {}
    searches: list[float] = []
    try:
        if writer.stdout.readline().strip() != "ready":
            raise SystemExit("the writer replica did not start")
        news = _acknowledgements(writer.stdout)
        acked: dict[int, float] = {}
        writer.stdin.write("go\n")
        writer.stdin.flush()
        pending = list(range(gallery, gallery + enrolments))
        while pending:
            while not news.empty():
                seed, at = news.get()
                acked[seed] = at
            # what a query could be about: every enrolment acknowledged or seen, and the next one
            frontier = max([gallery - 1, *acked, *found]) + 1
            asked = [s for s in pending if s <= frontier]
            start = time.time()
            hits = reader.search(np.concatenate([vector(s) for s in asked]), 1)
            searches.append(time.time() - start)
            owners = reader.catalog.instances_by_pk([int(h.instance_pks[0]) for h in hits if len(h.instance_pks)])
            answered = {instance.id for instance in owners.values()}
            found.update({s: start for s in asked if f"e{s}" in answered})
            pending = [s for s in pending if s not in found]
        writer.wait(timeout=60)
        reader.close()
        while len(acked) < enrolments:  # the last lines may still be on their way
            seed, at = news.get(timeout=60)
            acked[seed] = at
    finally:
        writer.kill()
    delays = np.array([max(found[s] - acked[s], 0.0) for s in sorted(found)])
    return delays, 1000 * float(np.median(searches))


def _acknowledgements(lines: IO[str]) -> queue.Queue[tuple[int, float]]:
    """(seed, acknowledgement time) as the writer prints them, queued by a thread following its output."""
    news: queue.Queue[tuple[int, float]] = queue.Queue()

    def follow() -> None:
        for line in lines:
            seed, at = json.loads(line)
            news.put((int(seed), float(at)))

    threading.Thread(target=follow, daemon=True).start()
    return news


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--writer":
        write(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", help="an empty PostgreSQL database to use (one run); default: a throwaway server")
    parser.add_argument("--enrolments", type=int, default=200)
    parser.add_argument("--gallery", type=int, default=10_000, help="instances enrolled before the run")
    parser.add_argument("--runs", type=int, default=3, help="runs, each on a new database of the throwaway server")
    parser.add_argument("--results", action="store_true", help="write the figures into benchmarks/RESULTS.md")
    parser.add_argument("--serve", action="store_true", help="two instrec serve processes under load (see above)")
    parser.add_argument("--seconds", type=float, default=60.0, help="--serve: length of the load run")
    parser.add_argument("--clients", type=int, default=4, help="--serve: recognition clients, spread over both replicas")
    parser.add_argument("--enrol-every", type=float, default=2.0, help="--serve: seconds between enrolments")
    args = parser.parse_args()
    if args.serve:
        from replica_service import serve_run

        with _databases(args.url) as databases, tempfile.TemporaryDirectory() as scratch:
            rows = serve_run(databases(), args.seconds, args.clients, args.enrol_every, Path(scratch))
        command = f"python benchmarks/bench_replicas.py --serve --seconds {args.seconds:g} --clients {args.clients}"
        command += f" --enrol-every {args.enrol_every:g}"
        if args.results:
            write_section("Replicas on PostgreSQL: two instrec serve under load", command, rows)
        print("\n".join(rows))
        return
    if args.url and args.runs != 1:
        raise SystemExit("--url gives one database: one run (--runs 1)")
    rows = [
        f"{args.enrolments} enrolments by one process, answered by another (its own home, the same PostgreSQL catalog) "
        f"holding {args.gallery} + the new instances ({DIM} dims, flat FAISS, seed {SEED}); delay = start of the first "
        "search that answered it minus the writer's acknowledgement. One row per run; the machine's other load varies.",
        "",
        "| run | answered | median ms | p95 ms | max ms | reader's search ms (median) |",
        "|---|---|---|---|---|---|",
    ]
    with _databases(args.url) as databases, tempfile.TemporaryDirectory() as scratch:
        for run in range(args.runs):
            delays, search_ms = measure(databases(), args.enrolments, args.gallery, Path(scratch) / str(run))
            ms = 1000 * delays
            rows.append(
                f"| {run + 1} | {len(delays)}/{args.enrolments} | {np.median(ms):.1f} | {np.percentile(ms, 95):.1f} "
                f"| {ms.max():.1f} | {search_ms:.1f} |"
            )
            print(rows[-1], flush=True)
    if args.results:
        command = f"python benchmarks/bench_replicas.py --enrolments {args.enrolments} --gallery {args.gallery}"
        command += f" --runs {args.runs}"
        write_section("Replicas on PostgreSQL: visibility delay", command, rows)
    else:
        print("\n".join(rows))


@contextmanager
def _databases(url: str | None) -> Iterator[Callable[[], str]]:
    """A function giving a database URL per run: ``url``, or new ones on a throwaway server."""
    if url is not None:
        yield lambda: url
        return
    sys.path.insert(0, str(ROOT))
    from tests.postgres import ThrowawayServer, binaries

    bin_dir = binaries()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL binaries found: pass --url or install postgresql")
    server = ThrowawayServer(bin_dir).start()
    try:
        yield server.new_database
    finally:
        server.stop()


if __name__ == "__main__":
    main()
