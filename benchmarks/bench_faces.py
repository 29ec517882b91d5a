"""The faces profile on att-faces: does it recognise people, and does it say "unknown" to strangers?

Rows (unknown fraction 0.2, seed 0, 1 and 3 shots): the faces profile (HOG detector) calibrated on
the gallery, then uncalibrated (the profile's fallback threshold), with the score lowered against
the competing people (what the objects profile does), with the CNN detector, and optionally the
objects profile. Then per detector: the share of photos with a detected face and ms per photo for
detect + align + embed; the cosine that 1 % of pairs of different people reach (where the profile's
fallback threshold comes from); and a relit and occluded att-faces built on the fly (the enrolled
shot clean, every query under strong brightness / contrast change with an occluding rectangle).

    python benchmarks/bench_faces.py [--objects] [--results]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance
from results import write_section

from instrec.config import Config
from instrec.embedding.faces import FaceEmbedder
from instrec.evaluation.compare import Setting, compare
from instrec.images import iter_image_files
from instrec.profiles import FaceTuning

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "att-faces"
FACES = {"profile": "faces"}
CNN = {**FACES, "tuning.face.detector": "cnn"}
COLUMNS = ("top1", "auroc", "tar_at_far_1pct", "threshold", "accept_correct", "false_accept", "ms_per_query")
FAR = 0.01


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", action="store_true", help="add the objects profile's rows (slow)")
    parser.add_argument("--results", action="store_true", help="write the tables into benchmarks/RESULTS.md")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is absent (see ../shared/data/README.md)")
    lines = [
        "att-faces, unknown fraction 0.2, seed 0. Accepted right: known queries answered with the right person at the",
        "threshold; false accepts: strangers' queries answered with someone. ms/query is the wall median. The lowered",
        "rows' scores are on another scale than the fallback threshold: only their top-1, AUROC and TAR apply.",
        "",
        "| set | setting | shots | calibrated | top-1 | AUROC | TAR@FAR=1% | threshold | accepted right | false accepts "
        "| ms/query |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    calibrated = [Setting("faces (HOG)", FACES)] + ([Setting("objects", {})] if args.objects else [])
    uncalibrated = [
        Setting("faces (HOG)", FACES),
        Setting("faces, lowered by competitors", {**FACES, "tuning.decision.competitor_weight": "0.75"}),
        Setting("faces (CNN)", CNN),
    ]
    with tempfile.TemporaryDirectory(prefix="att-relit-") as relit:
        sets = {"att-faces": (DATA, [1, 3]), "att-faces relit+occluded": (_relit_copy(DATA, Path(relit)), [1])}
        for name, (root, shots) in sets.items():
            for settings, calibrate in ((calibrated, True), (uncalibrated, False)):
                for row in compare(root, settings, shots, base=Config.load(), unknown_fraction=0.2, seed=0, calibrate=calibrate):
                    lines.append(_row(name, row.setting.name, row.shots, calibrate, row.run.summary))
                    print(lines[-1], flush=True)
        lines += ["", "| set | detector | photos with a face | ms/photo (detect + align + embed) |", "|---|---|---|---|"]
        vectors = {}
        for name, root in sets.items():
            photos = [_loaded(path) for path in iter_image_files(root[0], recursive=True)]
            for detector in ("hog", "cnn"):
                found, ms, vectors[name, detector] = _detect_and_embed(FaceEmbedder(FaceTuning(detector=detector)), photos)
                lines.append(f"| {name} | {detector.upper()} | {found:.3f} | {ms:.1f} |")
                print(lines[-1], flush=True)
    people = np.asarray([path.parent.name for path in iter_image_files(DATA, recursive=True)])
    strangers = _stranger_cosines(vectors["att-faces", "hog"], people)
    lines += [
        "",
        f"Cosine that {FAR:.0%} of att-faces' {len(strangers)} pairs of different people reach (HOG): "
        f"{np.quantile(strangers, 1 - FAR):.3f}.",
    ]
    print(lines[-1])
    if args.results:
        write_section("Faces profile on att-faces", "python benchmarks/bench_faces.py" + " --objects" * args.objects, lines)


def _row(name: str, setting: str, shots: int, calibrated: bool, summary: dict) -> str:
    cells = [
        "-" if summary.get(c) is None else f"{summary[c]:.0f}" if c.startswith("ms") else f"{summary[c]:.3f}" for c in COLUMNS
    ]
    return f"| {name} | {setting} | {shots} | {'yes' if calibrated else 'no'} | " + " | ".join(cells) + " |"


def _loaded(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def _detect_and_embed(embedder: FaceEmbedder, photos: list[Image.Image]) -> tuple[float, float, np.ndarray]:
    """Share of photos with a face found, median ms per photo of ``embed``, and the vectors."""
    found = sum(bool(embedder.faces(photo)) for photo in photos) / len(photos)
    vectors, ms = [], []
    for photo in photos:
        started = time.perf_counter()
        vectors.append(embedder.embed([photo])[0])
        ms.append((time.perf_counter() - started) * 1e3)
    return found, float(np.median(ms)), np.asarray(vectors)


def _stranger_cosines(vectors: np.ndarray, people: np.ndarray) -> np.ndarray:
    upper = np.triu_indices(len(vectors), 1)
    different = people[upper[0]] != people[upper[1]]
    return (vectors @ vectors.T)[upper][different]


def _relit_copy(source: Path, target: Path, seed: int = 0) -> Path:
    """``source`` with every photo but each person's first (the enrolled shot) relit and occluded."""
    rng = np.random.default_rng(seed)
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        (target / folder.name).mkdir(parents=True)
        for number, path in enumerate(iter_image_files(folder)):
            photo = _loaded(path)
            if number:
                photo = _relit_and_occluded(photo, rng)
            photo.save(target / folder.name / f"{path.stem}.png")
    return target


def _relit_and_occluded(photo: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Brightness x0.4-1.8 and contrast x0.5-1.8, then a grey rectangle of 20-35 % of each side anywhere."""
    photo = ImageEnhance.Contrast(ImageEnhance.Brightness(photo).enhance(rng.uniform(0.4, 1.8))).enhance(rng.uniform(0.5, 1.8))
    size = np.asarray(photo.size)
    block = (rng.uniform(0.2, 0.35, 2) * size).astype(int)
    corner = (rng.uniform(0, 1, 2) * (size - block)).astype(int)
    ImageDraw.Draw(photo).rectangle([*corner, *(corner + block)], fill=(int(rng.integers(0, 256)),) * 3)
    return photo


if __name__ == "__main__":
    main()
