"""The faces profile on att-faces: does it recognise people, and does it say "unknown" to strangers?

End to end (unknown fraction 0.2, seed 0, 1 and 3 shots): the faces profile calibrated on the
gallery, then uncalibrated (its threshold rising with the gallery's vectors), the same answers
under the threshold fixed at the cosine 1 % of pairs of different people reach (what the profile did
before), with HOG alone (before the CNN backed it up), with the score lowered against the competing
people (what the objects profile does; 1 shot), and optionally the objects profile. Then per
detector: the share of photos with a detected face and ms per photo for detect + align + embed (and
for a photo without a face, the detector's whole cost). The rest is measured on the face vectors themselves,
exactly as recognition scores them (an instance scores as its best cosine): galleries of 1, 3 and 10
people against everyone else; a person's shots as their nearest shot or as their prototype; and
enrolment shots augmented for light and pose, over several seeds of the unknown split. Also on a
relit and occluded att-faces built on the fly (the enrolled shot clean, every query under strong
brightness / contrast change with an occluding rectangle).

    python benchmarks/bench_faces.py [--objects] [--results]
    python benchmarks/bench_faces.py --detectors [--results]   # the detectors' cost alone (minutes, not an hour)
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage.data
from fit_face_tail import gallery_draws, stranger_cosines
from PIL import Image, ImageDraw, ImageEnhance
from results import write_section

from instrec.config import Config
from instrec.decision.tail import tail_threshold
from instrec.embedding.faces import FaceEmbedder
from instrec.evaluation.compare import Setting, compare
from instrec.evaluation.runner import Run
from instrec.evaluation.datasets import load_split
from instrec.evaluation.metrics import QueryOutcome, summarise
from instrec.images import iter_image_files
from instrec.profiles import StrangerTail

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "att-faces"
FAR = 0.01
FACES = {"profile": "faces"}
NO_FACE = "scikit-image coffee (no face, 600x400)"
DETECTORS_SECTION = "Faces profile: detection cost per photo"
COLUMNS = ("top1", "auroc", "tar_at_far_1pct", "threshold", "accept_correct", "false_accept", "ms_per_query")
STUDY_COLUMNS = ("top1", "auroc", "tar_at_far_1pct", "accept_correct", "false_accept")
SEEDS = tuple(range(10))  # unknown splits of the vector studies
TINY = (1, 3, 10)  # people enrolled in the tiny galleries
DRAWS = 300  # random tiny galleries per size
VIEWS = ((15.0, 1.0), (-15.0, 1.0), (0.0, 0.7), (0.0, 1.3))  # enrolment views: (degrees, brightness), each with noise
NOISE = 3.0  # standard deviation of the views' pixel noise (of 255)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", action="store_true", help="add the objects profile's rows (slow)")
    parser.add_argument("--detectors", action="store_true", help="only the detectors' table: faces found, ms per photo")
    parser.add_argument("--results", action="store_true", help="write the tables into benchmarks/RESULTS.md")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is absent (see ../shared/data/README.md)")
    config = Config.load(overrides=FACES)
    face, tail = config.tuning.face, config.tuning.decision.stranger_tail
    assert face is not None and tail is not None
    lines = [
        f"att-faces, unknown fraction 0.2, seed 0; the profile's detector is {face.detector.upper()}. Accepted right: known",
        "queries answered with the right person at the threshold; false accepts: strangers' queries answered with",
        "someone. ms/query is the wall median. The lowered rows' scores are on another scale than the thresholds:",
        "only their top-1, AUROC and TAR apply.",
        "",
        "| set | setting | shots | calibrated | top-1 | AUROC | TAR@FAR=1% | threshold | accepted right | false accepts "
        "| ms/query |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    detectors = [
        "att-faces photos and a photo without a face, as a query takes them (detect + align + embed); medians per photo.",
        "",
        "| set | detector | photos with a face | wall ms/photo | CPU ms/photo |",
        "|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="att-relit-") as relit:
        sets = {"att-faces": (DATA, [1, 3]), "att-faces relit+occluded": (_relit_copy(DATA, Path(relit)), [1])}
        embedders = {
            d: FaceEmbedder(face.model_copy(update={"detector": d})) for d in dict.fromkeys((face.detector, "hog", "cnn"))
        }
        embedder, vectors = embedders[face.detector], {}
        photos = {name: [_loaded(path) for path in iter_image_files(root, recursive=True)] for name, (root, _) in sets.items()}
        photos[NO_FACE] = [Image.fromarray(skimage.data.coffee())]
        for name, shown in photos.items():
            for detector, used in embedders.items():
                if detector == "cnn" and name == "att-faces relit+occluded":
                    continue  # the slowest: its share of faces found is the other detectors' union, nearly
                found, ms, cpu_ms, vectors[name, detector] = _detect_and_embed(used, shown)
                detectors.append(f"| {name} | {detector.upper()} | {found:.3f} | {ms:.1f} | {cpu_ms:.1f} |")
                print(detectors[-1], flush=True)
        if args.detectors:
            if args.results:
                write_section(DETECTORS_SECTION, "python benchmarks/bench_faces.py --detectors", detectors)
            return
        people = np.asarray([path.parent.name for path in iter_image_files(DATA, recursive=True)])
        # The profile's threshold before it rose with the gallery: the cosine 1 % of pairs of different people reach (HOG).
        fixed = round(float(np.quantile(stranger_cosines(vectors["att-faces", "hog"], people), 1 - FAR)), 3)
        calibrated = [Setting("faces", FACES)] + ([Setting("objects", {})] if args.objects else [])
        uncalibrated = [Setting("faces", FACES)] + [
            Setting(f"faces ({d.upper()})", {**FACES, "tuning.face.detector": d}) for d in ("hog",) if d != face.detector
        ]
        lowered = Setting("faces, lowered by competitors", {**FACES, "tuning.decision.competitor_weight": "0.75"})
        for name, (root, shots) in sets.items():
            runs = [(calibrated, shots, True), (uncalibrated, shots, False)] + [([lowered], [1], False)] * (root == DATA)
            for settings, counts, calibrate in runs:
                for row in compare(root, settings, counts, base=Config.load(), unknown_fraction=0.2, seed=0, calibrate=calibrate):
                    lines.append(_row(name, row.setting.name, row.shots, calibrate, row.run.summary))
                    if row.setting is uncalibrated[0]:  # the same answers under the threshold before
                        lines.append(_row(name, f"faces, threshold fixed at {fixed}", row.shots, False, _at(row.run, fixed)))
                    print(*lines[-1 - (row.setting is uncalibrated[0]) :], sep="\n", flush=True)
        shot_views = _enrolment_views(embedder, DATA, max(sets["att-faces"][1]))
        roots = {name: root for name, (root, _) in sets.items()}
        base = {name: vectors[name, face.detector] for name in sets}
        target_far = config.decision.target_far
        lines += _tiny_galleries(base["att-faces"], people, fixed, tail, target_far)
        lines += _aggregation(roots, base, tail, target_far)
        lines += _augmentation(roots, base, shot_views, tail, target_far)
    for line in lines[-40:]:
        print(line)
    if args.results:
        write_section("Faces profile on att-faces", "python benchmarks/bench_faces.py" + " --objects" * args.objects, lines)
        write_section(DETECTORS_SECTION, "python benchmarks/bench_faces.py" + " --objects" * args.objects, detectors)


def _row(name: str, setting: str, shots: int, calibrated: bool, summary: dict) -> str:
    cells = [
        "-" if summary.get(c) is None else f"{summary[c]:.0f}" if c.startswith("ms") else f"{summary[c]:.3f}" for c in COLUMNS
    ]
    return f"| {name} | {setting} | {shots} | {'yes' if calibrated else 'no'} | " + " | ".join(cells) + " |"


def _at(run: Run, threshold: float) -> dict:
    """The run's figures had its answers been decided at ``threshold``."""
    decided = [dataclasses.replace(o, unknown=o.top_score < threshold) for o in run.outcomes]
    return {**run.summary, **summarise(decided), "threshold": threshold}


def _tiny_galleries(vectors: np.ndarray, people: np.ndarray, fixed: float, tail: StrangerTail, far: float) -> list[str]:
    """False accepts and accepted right in galleries of a few people, the fixed threshold against the tail's."""
    rng = np.random.default_rng(0)
    lines = [
        "",
        f"Tiny galleries: the first 1 or 3 photos of 1, 3 or 10 people drawn at random ({DRAWS} draws, seed 0) enrolled,",
        "every photo of the other people a stranger, every other photo of the enrolled a known query.",
        "",
        "| people | shots | threshold | false accepts | accepted right | threshold (tail) | false accepts | accepted right |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for shots in (1, 3):
        for enrolled in TINY:
            strangers, (own, other) = gallery_draws(vectors, people, enrolled, shots, DRAWS, rng)
            cells = []
            for threshold in (fixed, tail_threshold(tail.scale, tail.dim, far, enrolled * shots)):
                right = (own >= threshold) & (own > other)
                cells += [f"{threshold:.3f}", f"{np.mean(strangers >= threshold):.3f}", f"{np.mean(right):.3f}"]
            lines.append(f"| {enrolled} | {shots} | " + " | ".join(cells) + " |")
    return lines


def _aggregation(roots: dict[str, Path], vectors: dict[str, np.ndarray], tail: StrangerTail, far: float) -> list[str]:
    """3 shots: a person scored as their nearest shot, or as their prototype (mean of the shots, renormalised)."""
    lines = _study_header("Per-person aggregation of 3 shots", "aggregation")
    for name, root in roots.items():
        if name != "att-faces":
            continue
        for aggregate in ("nearest shot", "prototype"):
            runs = [_study(root, vectors[name], 3, seed, tail, far, prototype=aggregate == "prototype") for seed in SEEDS]
            lines.append(_study_row(name, aggregate, 3, runs))
    return lines


def _augmentation(
    roots: dict[str, Path], vectors: dict[str, np.ndarray], views: dict[int, np.ndarray], tail: StrangerTail, far: float
) -> list[str]:
    """Enrolment shots with their light and pose views: none, added as vectors, or averaged into the shot's."""
    lines = _study_header(
        f"Enrolment augmentation: each shot's {len(VIEWS)} views (+-15 degrees, x0.7 and x1.3 brightness, noise {NOISE:g}/255)",
        "enrolment",
    )
    for name, root in roots.items():
        for shots in (1, 3) if name == "att-faces" else (1,):
            for mode in ("shots only", "views added", "views averaged"):
                runs = [_study(root, vectors[name], shots, seed, tail, far, views=views, mode=mode) for seed in SEEDS]
                lines.append(_study_row(name, mode, shots, runs))
    return lines


def _study_header(title: str, what: str) -> list[str]:
    return [
        "",
        f"{title}. Uncalibrated (the tail's threshold for the gallery's vectors); mean +- standard deviation",
        f"over the unknown splits of seeds {SEEDS[0]}-{SEEDS[-1]} (fraction 0.2).",
        "",
        f"| set | {what} | shots | " + " | ".join(c.replace("_", " ") for c in STUDY_COLUMNS) + " |",
        "|---|---|---|" + "---|" * len(STUDY_COLUMNS),
    ]


def _study_row(name: str, setting: str, shots: int, runs: list[dict]) -> str:
    cells = [f"{np.mean([r[c] for r in runs]):.3f} +- {np.std([r[c] for r in runs]):.3f}" for c in STUDY_COLUMNS]
    return f"| {name} | {setting} | {shots} | " + " | ".join(cells) + " |"


def _study(
    root: Path,
    vectors: np.ndarray,
    shots: int,
    seed: int,
    tail: StrangerTail,
    far: float,
    *,
    prototype: bool = False,
    views: dict[int, np.ndarray] | None = None,
    mode: str = "shots only",
) -> dict:
    """The split's figures from the photos' vectors (rows in ``iter_image_files(root, recursive=True)`` order)."""
    row = {path: number for number, path in enumerate(iter_image_files(root, recursive=True))}
    split = load_split(root, shots, 0.2, seed)
    gallery, owners = [], []
    for person, files in split.gallery:
        shots_of = []
        for path in files:
            shot = vectors[row[path]][None]
            extra = views[row[path]] if views is not None and mode != "shots only" else np.zeros((0, shot.shape[1]))
            shots_of.append(_unit(np.concatenate([shot, extra]).sum(0))[None] if mode == "views averaged" else shot)
            shots_of += [extra] if mode == "views added" else []
        person_vectors = np.concatenate(shots_of)
        gallery += [_unit(person_vectors.sum(0))[None]] if prototype else [person_vectors]
        owners += [person] * (1 if prototype else len(person_vectors))
    matrix, names = np.concatenate(gallery), np.asarray(owners)
    threshold = tail_threshold(tail.scale, tail.dim, far, len(matrix))
    outcomes = []
    for path, truth in split.queries:
        scores = vectors[row[path]] @ matrix.T
        order = np.argsort(-scores, kind="stable")
        ranked = list(dict.fromkeys(names[order].tolist()))
        best = float(scores[order[0]])
        outcomes.append(QueryOutcome(truth, ranked, best, best < threshold, [], 0, 0.0))
    return summarise(outcomes)


def _enrolment_views(embedder: FaceEmbedder, root: Path, shots: int) -> dict[int, np.ndarray]:
    """The vectors of the light and pose views (:data:`VIEWS`) of each person's first ``shots`` photos,
    by row of ``iter_image_files(root, recursive=True)`` (the relit copy keeps the same rows)."""
    rng = np.random.default_rng(0)
    paths = iter_image_files(root, recursive=True)
    first = {path for folder in sorted({p.parent for p in paths}) for path in iter_image_files(folder)[:shots]}
    out = {}
    for number, path in enumerate(paths):
        if path in first:
            photo = _loaded(path)
            out[number] = embedder.embed([_view(photo, angle, light, rng) for angle, light in VIEWS])
    return out


def _view(photo: Image.Image, angle: float, light: float, rng: np.random.Generator) -> Image.Image:
    fill = tuple(int(v) for v in np.asarray(photo).reshape(-1, 3).mean(axis=0))
    pixels = np.asarray(photo.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=fill), np.float32) * light
    pixels += rng.normal(0.0, NOISE, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def _loaded(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def _detect_and_embed(embedder: FaceEmbedder, photos: list[Image.Image]) -> tuple[float, float, float, np.ndarray]:
    """Share of photos with a face found, median wall and CPU ms per photo of what a query costs
    (``located``; CPU since the machine is shared), and each photo's vector as a query gets it (its
    largest face, or the whole photo; zero if neither)."""
    found, ms, cpu_ms, vectors = 0, [], [], np.zeros((len(photos), embedder.dim), np.float32)
    for number, photo in enumerate(photos):
        started, cpu = time.perf_counter(), time.process_time()
        faces = embedder.located(photo)
        ms.append((time.perf_counter() - started) * 1e3)
        cpu_ms.append((time.process_time() - cpu) * 1e3)
        if faces:
            found += faces[0][0] is not None
            vectors[number] = faces[0][1]
    return found / len(photos), float(np.median(ms)), float(np.median(cpu_ms)), vectors


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
