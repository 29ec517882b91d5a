"""Real catalogue -> photo data, the way a new user meets it: accuracy, the decision at the calibrated
threshold (no negatives), the reference run side by side on the same split, tiny galleries, and
phone-size photos.

    python benchmarks/bench_real.py [--results] [--skip-large] [--skip-tiny]

1. Accuracy and decision, default settings, calibrated on the gallery alone: beer-labels as laid out,
   ukbench-dev / coil100 / att-faces at 1 shot with unknown fraction 0.2 (seed 0). The reference
   (../shared/reference/vote_shortlist.py) runs on the very same split in the same run.
2. Tiny galleries: 1, 3 and 10 ukbench-dev objects enrolled (one shot each); 25 photos of other
   ukbench-dev objects must come back "unknown": false accepts with the shipped prior, and after
   the gallery's own calibration.
3. Phone photos: 20 ukbench-dev objects enrolled; the other photos as 4032x3024 JPEGs against the
   same photos as they are (320x240); median wall and CPU ms per query, one after the other.
Data: ../shared/data (read only).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from results import write_section

from instrec.config import Config
from instrec.evaluation.datasets import load_split
from instrec.evaluation.runner import run
from instrec.recognizer import Recognizer

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
REFERENCE = ROOT.parent / "shared" / "reference" / "vote_shortlist.py"
SETS = ("beer-labels", "ukbench-dev", "coil100", "att-faces")


def log(*a: object) -> None:
    print(*a, flush=True)


def as_layout(root: Path, folder: Path) -> Path:
    """The split instrec evaluates (1 shot, unknown 0.2, seed 0) as gallery/ + queries/ links, for the reference."""
    split = load_split(root, 1, 0.2, 0)
    if split.layout == "gallery/queries":
        return root
    for name, files in split.gallery:
        (folder / "gallery" / name).mkdir(parents=True)
        for f in files:
            (folder / "gallery" / name / f.name).symlink_to(f.resolve())
    for number, (path, truth) in enumerate(split.queries):
        target = folder / "queries" / (truth or "_unknown")
        target.mkdir(parents=True, exist_ok=True)
        (target / f"{number:05d}{path.suffix}").symlink_to(path.resolve())
    return folder


def reference(layout: Path) -> dict:
    out = subprocess.run([sys.executable, str(REFERENCE), str(layout)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def accuracy(rows: list[str]) -> None:
    rows += [
        "### Accuracy and the decision at the calibrated threshold (no negatives)",
        "",
        "| set | engine | top-1 | AUROC | TAR@FAR=1% | accepted correct | false accept | ECE | threshold | ms/query |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in SETS:
        root = DATA / name
        if not root.is_dir():
            log(f"{name}: absent")
            continue
        s = run(root, shots=1, unknown_fraction=0.2, seed=0, config=Config.load()).summary
        rows.append(
            f"| {name} | instrec | {s['top1']:.3f} | {s['auroc']:.3f} | {s['tar_at_far_1pct']:.3f} | "
            f"{s['accept_correct']:.3f} | {s['false_accept']:.3f} | {s['ece']:.3f} | {s['threshold']:.3f} | "
            f"{s['ms_per_query']:.0f} |"
        )
        log(rows[-1])
        log("   ", s["calibration"])
        with tempfile.TemporaryDirectory() as folder:
            r = reference(as_layout(root, Path(folder)))
        rows.append(f"| {name} | reference | {r['top1']:.3f} | {r['auroc']:.3f} | | | | | | {r['ms_per_query']:.0f} |")
        log(rows[-1])


def tiny_galleries(rows: list[str]) -> None:
    objects = sorted(p for p in (DATA / "ukbench-dev").iterdir() if p.is_dir())
    strangers = [sorted(p.iterdir())[0] for p in objects[-25:]]
    rows += [
        "",
        "### Tiny galleries: 25 photos of other objects, false accepts",
        "",
        "| instances enrolled | with the prior | after calibrate |",
        "|---|---|---|",
    ]
    for n in (1, 3, 10):
        with tempfile.TemporaryDirectory() as home, Recognizer(Config.load(home=home)) as rec:
            for folder in objects[:n]:
                rec.enroll([sorted(folder.iterdir())[0]], instance_id=folder.name)
            prior = sum(not r.unknown for r in rec.recognize_many(strangers))
            rec.calibrate()
            calibrated = sum(not r.unknown for r in rec.recognize_many(strangers))
        rows.append(f"| {n} | {prior} / 25 | {calibrated} / 25 |")
        log(rows[-1])


def phone_photos(rows: list[str]) -> None:
    objects = sorted(p for p in (DATA / "ukbench-dev").iterdir() if p.is_dir())[:20]
    queries = [f for folder in objects for f in sorted(folder.iterdir())[1:]]
    large = []
    for f in queries:
        buffer = io.BytesIO()
        Image.open(f).convert("RGB").resize((4032, 3024), Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=90)
        large.append(buffer.getvalue())
    small = [f.read_bytes() for f in queries]
    with tempfile.TemporaryDirectory() as home, Recognizer(Config.load(home=home)) as rec:
        for folder in objects:
            rec.enroll([sorted(folder.iterdir())[0]], instance_id=folder.name)
        rec.recognize(small[0])  # warm
        timings: dict[str, tuple[list[float], list[float]]] = {"4032x3024 JPEG": ([], []), "320x240 JPEG": ([], [])}
        for big, little, truth in zip(large, small, queries):
            for label, data in (("4032x3024 JPEG", big), ("320x240 JPEG", little)):
                wall, cpu = time.perf_counter(), time.process_time()
                rec.recognize(data)
                timings[label][0].append((time.perf_counter() - wall) * 1e3)
                timings[label][1].append((time.process_time() - cpu) * 1e3)
    rows += [
        "",
        f"### Phone photos: {len(queries)} queries, 20 instances, median ms per query",
        "",
        "| query | wall | CPU |",
        "|---|---|---|",
    ]
    for label, (wall, cpu) in timings.items():
        rows.append(f"| {label} | {statistics.median(wall):.0f} | {statistics.median(cpu):.0f} |")
        log(rows[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", action="store_true", help="write the tables into benchmarks/RESULTS.md")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--skip-tiny", action="store_true")
    args = parser.parse_args()
    rows: list[str] = []
    accuracy(rows)
    if not args.skip_tiny:
        tiny_galleries(rows)
    if not args.skip_large:
        phone_photos(rows)
    if args.results:
        write_section("Real data as a new user meets it", "python benchmarks/bench_real.py --results", rows)


if __name__ == "__main__":
    main()
