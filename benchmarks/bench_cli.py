"""What a one-off ``instrec recognize photo.jpg`` costs from a cold shell, beside a warm process.

    python benchmarks/bench_cli.py [--images 1000] [--runs 5] [--keep DIR] [--results]

Builds a library of ``--images`` one-image instances through the Python API (the first photo of
every UKBench object in ../shared/data/ukbench-dev, then COIL-100 views as distractors), then:

- cold: ``instrec recognize --home H Q --json`` run ``--runs`` times through ``bash -c`` as a user
  would type it, each a new interpreter; wall-clock from spawn to exit, and the answer checked
  (exit 0, the query's own object first). The OS file cache is warm after the first run, as it is
  for anyone who runs the command twice; the first run is reported on its own.
- warm: the same queries in one open :class:`Recognizer` (what ``serve`` pays per query).

``--keep DIR`` builds the library there once and reuses it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.progress import track

from results import write_section

from instrec.recognizer import Recognizer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
INSTREC = Path(sys.executable).with_name("instrec")


def library_images(count: int) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
    """(instance id, enrolled photo) for ``count`` instances, and (instance id, query photo) pairs."""
    objects = sorted(p for p in (DATA / "ukbench-dev").iterdir() if p.is_dir())
    gallery, queries = [], []
    for folder in objects:
        photos = sorted(folder.iterdir())
        gallery.append((folder.name, photos[0]))
        queries.append((folder.name, photos[1]))
    distractors = sorted(p for p in (DATA / "coil100").rglob("*") if p.is_file())
    gallery += [(f"coil-{p.parent.name}-{p.stem}", p) for p in distractors[: max(0, count - len(gallery))]]
    return gallery[:count], queries


def build(home: Path, gallery: list[tuple[str, Path]]) -> None:
    with Recognizer.open(home) as recognizer:
        if recognizer.stats()["instances"] >= len(gallery):
            return
        for instance_id, photo in track(gallery, description="enrolling", transient=True):
            recognizer.enroll([photo], instance_id=instance_id)
        recognizer.calibrate()


def cold_run(home: Path, query: Path) -> tuple[float, str | None]:
    command = f"{shlex.quote(str(INSTREC))} recognize --home {shlex.quote(str(home))} {shlex.quote(str(query))} --json -k 1"
    started = time.perf_counter()
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{command} exited {done.returncode}: {done.stderr[-500:]}")
    matches = json.loads(done.stdout)["results"][0]["matches"]
    return wall, matches[0]["instance_id"] if matches else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5, help="cold runs after the first")
    parser.add_argument("--keep", type=Path, default=None, help="build the library here once and reuse it")
    parser.add_argument("--results", action="store_true", help="write the section of benchmarks/RESULTS.md")
    args = parser.parse_args()
    if not (DATA / "ukbench-dev").is_dir() or not (DATA / "coil100").is_dir():
        print(f"needs {DATA}/ukbench-dev and coil100", file=sys.stderr)
        return 2

    gallery, queries = library_images(args.images)
    home = args.keep or Path(tempfile.mkdtemp(prefix="instrec-bench-cli-")) / "home"
    started = time.perf_counter()
    build(home, gallery)
    print(f"library of {len(gallery)} images ready in {time.perf_counter() - started:.0f} s: {home}", file=sys.stderr)

    asked = [queries[i % len(queries)] for i in range(args.runs + 1)]
    cold = [cold_run(home, photo) for _, photo in track(asked, description="cold runs", transient=True)]
    right = [answer == expected for (expected, _), (_, answer) in zip(asked, cold)]
    with Recognizer.open(home) as recognizer:
        recognizer.recognize(queries[0][1])  # the first query pays for loading, as the cold figure shows
        warm, warm_right = [], 0
        for expected, photo in queries[:50]:
            started = time.perf_counter()
            result = recognizer.recognize(photo, k=1)
            warm.append(time.perf_counter() - started)
            warm_right += bool(result.matches) and result.matches[0].instance_id == expected

    lines = [
        f"A {len(gallery)}-image library (UKBench objects' first photos, then COIL-100 views); the queries are the "
        "objects' second photos. Cold: `instrec recognize --home H Q --json -k 1` from `bash -c`, a new interpreter "
        "each time, wall-clock from spawn to exit. Warm: the same queries in one open Recognizer.",
        "",
        "| | runs | median s | max s | top-1 right |",
        "|---|---|---|---|---|",
        f"| cold, first run | 1 | {cold[0][0]:.2f} | {cold[0][0]:.2f} | {int(right[0])} / 1 |",
        f"| cold, later runs | {len(cold) - 1} | {statistics.median(w for w, _ in cold[1:]):.2f} | "
        f"{max(w for w, _ in cold[1:]):.2f} | {sum(right[1:])} / {len(cold) - 1} |",
        f"| warm process, per query | {len(warm)} | {statistics.median(warm):.3f} | {max(warm):.3f} | "
        f"{warm_right} / {len(warm)} |",
    ]
    print("\n".join(lines))
    if args.results:
        command = "python benchmarks/bench_cli.py" + (f" --images {args.images}" if args.images != 1000 else "")
        write_section("CLI cold start", command + " --results", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
