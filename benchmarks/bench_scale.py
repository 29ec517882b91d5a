"""End to end at scale: the default pipeline's cost per query with 100 enrolled instances and with 10,000 (or 100,000).

    python benchmarks/bench_scale.py [--instances 10000] [--queries 100] [--threads 1] [--set key=value ...] [--results]
                                     [--keep DIR]

The small library holds the first 100 UKBench objects, one shot each; the queries are their other
photos. The large library holds the same 100 plus distractor instances of one image each (COIL-100
views, AT&T faces, beer-labels catalogue labels, and crops / rotations / colour changes of those:
``bench_rerank.distractor_images``), enrolled through the public API's bulk path
(``Recognizer.enroll_many``), so every stage pays for them: the global search, the local-index
shortlist and verification.

Both libraries answer every query, taking turns in a rotating order so a busy spell of the shared
machine slows both alike. Printed: CPU and wall-clock medians and the large / small ratio (the
issue's targets: within 2x at 10,000, 1.5x at 100,000), top-1 on both, each stage's wall median, and memory per image (vector
index and local index in RAM, local features kept for verification and everything on disk). Last,
what a user waits for on the large library: enrolling one image, and an explicit calibration.
``bench_rerank.py``'s scale test measures the local stage alone on the same distractors.

Enrolment works on every core; queries then run with ``--threads``, default 1, as ``serve`` runs
them. ``--instances 100000`` needs about 10 GB of disk. ``--keep DIR`` builds the two libraries
there once and reuses them on later runs, e.g. to compare ``--set index.backend=flat`` with the default (an IVF at 10,000).
"""

from __future__ import annotations

import sys

from bench_recognize_latency import Turns, take_turns  # first: it sets BLAS threads from --threads before numpy loads

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from rich.progress import Progress

from bench_rerank import distractor_images
from results import write_section
from instrec.config import Config, parse_assignments
from instrec.evaluation.datasets import load_split
from instrec.recognizer import Recognizer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OBJECTS = 100


def disk_bytes(home: Path) -> int:
    return sum(p.stat().st_size for p in home.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--instances", type=int, default=10_000, help="size of the large library")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="runtime.threads for queries (0 = one per core)")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="section.key=value, both libraries")
    parser.add_argument("--keep", type=Path, help="build the libraries here once, reuse them afterwards")
    parser.add_argument("--results", action="store_true", help="write the section of benchmarks/RESULTS.md")
    args = parser.parse_args()
    if not (args.data / "ukbench-dev").is_dir():
        print(f"no evaluation data at {args.data} (expected ukbench-dev/ there)")
        return 2
    split = load_split(args.data / "ukbench-dev", shots=1)
    gallery = split.gallery[:OBJECTS]
    enrolled = {name for name, _ in gallery}
    queries = [(path, truth) for path, truth in split.queries if truth in enrolled][: args.queries]
    overrides = parse_assignments(args.sets)
    with tempfile.TemporaryDirectory(prefix="instrec-scale-") as scratch:
        root = args.keep or Path(scratch)
        homes = {"small": root / "small", "large": root / f"large-{args.instances}"}
        built = root / f"built-{args.instances}"  # written last: a half-built pair is built again
        if args.keep and built.exists():
            enrolment_seconds = None
            say(f"reusing the libraries in {root}")
        else:
            for home in homes.values():
                shutil.rmtree(home, ignore_errors=True)
            enrolment_seconds = build(homes, gallery, args.instances, args.data, overrides)
            built.touch()
        query_overrides = {**overrides, "runtime.threads": str(args.threads)}
        recognizers = {name: Recognizer(Config.load(home=home, overrides=query_overrides)) for name, home in homes.items()}
        try:
            report_memory(recognizers, homes, enrolment_seconds)
            run_queries(recognizers, queries, args.threads)
            maintenance(recognizers["large"], [path for path, _ in split.queries][-5:])
        finally:
            for recognizer in recognizers.values():
                recognizer.close()
    if args.results:
        command = " ".join(["python benchmarks/bench_scale.py", *sys.argv[1:]])
        write_section("Scale: 100 and 10,000 instances", command, ["```", *REPORT, "```"])
    return 0


REPORT: list[str] = []  # what say() printed, for --results


def say(line: str) -> None:
    print(line)
    REPORT.append(line)


def build(homes: dict[str, Path], gallery, instances: int, data: Path, overrides: dict[str, str]) -> float:
    """Enrol both libraries (all cores); returns the seconds the distractors took."""
    enrolling = {**overrides, "runtime.threads": "0"}
    for home in homes.values():
        with Recognizer(Config.load(home=home, overrides=enrolling)) as recognizer:
            for instance, files in gallery:
                recognizer.enroll(files, instance_id=instance)
    extra = instances - len(gallery)
    started = time.perf_counter()
    with Recognizer(Config.load(home=homes["large"], overrides=enrolling)) as recognizer, Progress() as progress:
        task = progress.add_task(f"enrolling {extra} distractors", total=extra)
        entries = ((f"distractor-{number:06d}", [image]) for number, image in enumerate(distractor_images(data, extra)))
        recognizer.enroll_many(entries, total=extra, progress=lambda done, total, name: progress.update(task, completed=done))
    return time.perf_counter() - started


def report_memory(recognizers: dict[str, Recognizer], homes: dict[str, Path], enrolment_seconds: float | None) -> None:
    for name, recognizer in recognizers.items():
        stats = recognizer.stats()
        images, index = stats["images"], stats["index"]
        local = index.get("local", {}).get("bytes", 0)
        kept = sum(recognizer.library.catalog.features.sizes().values())
        say(
            f"{name}: {stats['instances']} instances, {images} images, {index['kind']} index; per image: "
            f"vectors {index['bytes'] / images:,.0f} B RAM, local index {local / images:,.0f} B RAM, "
            f"local features for verification {kept / images:,.0f} B on disk, "
            f"everything on disk {disk_bytes(homes[name]) / images:,.0f} B (with the original photo)"
        )
    if enrolment_seconds is not None:
        distractors = recognizers["large"].stats()["images"] - recognizers["small"].stats()["images"]
        say(f"distractors enrolled at {1e3 * enrolment_seconds / max(1, distractors):.1f} ms per image (all cores)")


def maintenance(recognizer: Recognizer, photos: list[Path]) -> None:
    """What a user waits for on the large library: enrolling one image (five fresh instances, one
    after the other; calibration is off that path) and an explicit calibration (then undone)."""
    times = []
    for number, photo in enumerate(photos):
        started = time.perf_counter()
        recognizer.enroll([photo], instance_id=f"maintenance-{number}")
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    calibration = recognizer.calibrate()
    calibrate_s = time.perf_counter() - started
    for number in range(len(photos)):
        recognizer.remove(f"maintenance-{number}")
    say(
        f"enrolling one image into the large library: median {statistics.median(times):.2f} s, "
        f"max {max(times):.2f} s; calibrate: {calibrate_s:.1f} s ({calibration.describe()})"
    )


def run_queries(recognizers: dict[str, Recognizer], queries, threads: int) -> None:
    turns = take_turns(recognizers, queries)
    say(f"{len(queries)} queries, runtime.threads={threads}; ms per query")
    say(f"{'library':8} {Turns.HEADER} {'top-1':>6}   median stage wall ms")
    for name in recognizers:
        say(f"{name:8} {turns.medians(name)} {turns.correct[name] / len(queries):6.3f}   {turns.breakdown(name)}")
    for kind, figures in (("CPU", turns.cpu), ("wall", turns.wall)):
        ratio = statistics.median(figures["large"]) / statistics.median(figures["small"])
        say(f"large / small, {kind} median: {ratio:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
