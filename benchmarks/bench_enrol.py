"""Enrolment throughput: a folder enrolment (worked ahead on every core) beside one enrol call per image,
and beside the same folder on a local Ray with one actor per core (when the ray extra is installed).

    python benchmarks/bench_enrol.py [--images 300] [--side 300] [--rounds 3] [--results]

The photos are ../shared/data/ukbench-dev's, shrunk to ``--side`` pixels on the long side, one
instance each. Each round enrols them into a fresh library both ways, in turn (the order swaps from
round to round, so a busy spell of the shared machine slows them alike); printed: images/s of wall
time, CPU ms per image of this process (Ray's actors are other processes: not counted), and the
ratio to one call per image. The Ray figure includes starting and stopping the local Ray, as a
user of ``instrec enroll --ray`` waits for both.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from results import write_section

from instrec.recognizer import Recognizer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def photo_folders(root: Path, count: int, side: int) -> list[Path]:
    """``root/<id>/photo.jpg`` for ``count`` UKBench photos shrunk to ``side`` pixels."""
    folders = []
    for number, source in enumerate(sorted((DATA / "ukbench-dev").rglob("*.jpg"))[:count]):
        folder = root / f"photo-{number:05d}"
        folder.mkdir(parents=True)
        image = Image.open(source)
        image.thumbnail((side, side))
        image.save(folder / "photo.jpg", quality=90)
        folders.append(folder)
    return folders


def timed(work) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def enrol(way: str, root: Path, folders: list[Path], scratch: Path) -> tuple[float, float]:
    with Recognizer.open(Path(tempfile.mkdtemp(dir=scratch))) as recognizer:
        recognizer.enroll([Image.new("RGB", (64, 64))], instance_id="warm-up")  # model and indexes loaded first
        if way == "folder":
            return timed(lambda: recognizer.enroll_folder(root))
        if way == "Ray, one actor per core":
            from instrec.ray_ingest import enroll_folder_on_ray

            return timed(lambda: enroll_folder_on_ray(recognizer, root))
        return timed(lambda: [recognizer.enroll(list(f.iterdir()), instance_id=f.name) for f in folders])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--side", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results", action="store_true", help="write the section of benchmarks/RESULTS.md")
    args = parser.parse_args()
    if not (DATA / "ukbench-dev").is_dir():
        print(f"needs {DATA}/ukbench-dev", file=sys.stderr)
        return 2
    ways = ["folder", "one call per image"]
    try:
        import ray.data  # noqa: F401

        ways.append("Ray, one actor per core")
    except ImportError:
        print("ray is not installed: no Ray figure", file=sys.stderr)
    figures: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
    with tempfile.TemporaryDirectory(prefix="instrec-bench-enrol-") as scratch:
        root = Path(scratch) / "photos"
        folders = photo_folders(root, args.images, args.side)
        for round_ in range(args.rounds):
            for way in ways[round_ % len(ways) :] + ways[: round_ % len(ways)]:
                figures[way].append(enrol(way, root, folders, Path(scratch)))
                print(f"round {round_ + 1}, {way}: {len(folders) / figures[way][-1][0]:.1f} images/s", file=sys.stderr)
    rate = {way: statistics.median(len(folders) / wall for wall, _ in figures[way]) for way in ways}
    lines = [
        f"{len(folders)} UKBench photos shrunk to {args.side} px on the long side, one instance each, into a fresh "
        f"library; {args.rounds} rounds, medians.",
        "",
        "| way | images/s (wall) | CPU ms per image (this process) | vs one call per image |",
        "|---|---|---|---|",
        *(
            f"| {way} | {rate[way]:.1f} | {statistics.median(1e3 * cpu / len(folders) for _, cpu in figures[way]):.1f} | "
            f"{rate[way] / rate[ways[1]]:.2f}x |"
            for way in ways
        ),
    ]
    print("\n".join(lines))
    if args.results:
        write_section("Enrolment throughput", "python benchmarks/bench_enrol.py --results", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
