"""Run the engine end to end on a dataset split, in a throw-away library, and measure it."""

from __future__ import annotations

import dataclasses
import resource
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from instrec.config import Config
from instrec.decision import Calibration
from instrec.errors import InstrecError
from instrec.evaluation.datasets import load_split
from instrec.evaluation.metrics import Candidate, QueryOutcome, summarise
from instrec.recognizer import Recognition, Recognizer

Progress = Callable[[str, int, int], None]
RANKED_DEPTH = 100  # instances kept per query for top-5 / MRR
CANDIDATES_KEPT = 3  # answers per query kept with their gallery image, for the failure strips


@dataclasses.dataclass(frozen=True)
class Run:
    """Summary metrics plus the per-query outcomes behind them (what plots and failure strips need)."""

    summary: dict[str, Any]
    outcomes: list[QueryOutcome]
    calibration: Calibration | None = None  # the gallery's decision the queries were answered under


def evaluate(root: str | Path, **options: Any) -> dict[str, Any]:
    """The metrics of :func:`run` (same arguments)."""
    return run(root, **options).summary


def run(
    root: str | Path,
    *,
    shots: int = 1,
    unknown_fraction: float = 0.0,
    seed: int = 0,
    config: Config | None = None,
    progress: Progress | None = None,
    embedder: Any = None,
    calibrate: bool = True,
) -> Run:
    """Enrol the split's gallery into a fresh library, calibrate (unless told not to: then the
    threshold is the prior's), run every query; keep every outcome."""
    split = load_split(root, shots, unknown_fraction, seed)
    config = config or Config.load()
    with tempfile.TemporaryDirectory(prefix="instrec-eval-") as home:
        config = config.with_overrides({"home": str(home)})
        with Recognizer(config, embedder=embedder) as recognizer:
            enrol_s, gallery_images = _enrol(recognizer, split.gallery, progress)
            if calibrate:
                recognizer.calibrate()
            outcomes = _query(recognizer, split.queries, {name: len(files) for name, files in split.gallery}, progress)
            index = recognizer.library.index_info()
            calibration = recognizer.calibration
    result: dict[str, Any] = {
        "dataset": str(root),
        "layout": split.layout,
        "shots": shots,
        "unknown_fraction": unknown_fraction,
        "seed": seed,
        "instances": len(split.gallery),
        "gallery_images": gallery_images,
        **summarise(outcomes),
        "threshold": calibration.threshold,
        "calibration": calibration.describe(),
        "enrol_images_per_s": gallery_images / enrol_s if enrol_s > 0 else None,
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "index": index["kind"],
        "settings": {"descriptor": config.descriptor_key(), "profile": config.profile},
    }
    return Run(result, outcomes, calibration)


def _enrol(recognizer: Recognizer, gallery, progress: Progress | None) -> tuple[float, int]:
    recognizer.library  # build the model and open the library before the clock starts
    started = time.perf_counter()
    images = 0
    for number, (instance_id, files) in enumerate(gallery, 1):
        result = recognizer.enroll(files, instance_id=instance_id, skip_bad=True)
        images += len(result.added)
        if progress:
            progress("enrol", number, len(gallery))
    return time.perf_counter() - started, images


def _query(recognizer: Recognizer, queries, gallery_sizes: dict[str, int], progress: Progress | None) -> list[QueryOutcome]:
    outcomes = []
    for number, (path, truth) in enumerate(queries, 1):
        started = time.perf_counter()
        try:
            recognition = recognizer.recognize(path, k=RANKED_DEPTH, with_images=True)
        except InstrecError:
            continue  # unreadable query: not counted (it is reported by the loader's error)
        ms = (time.perf_counter() - started) * 1e3
        outcomes.append(
            QueryOutcome(
                truth=truth,
                ranked=[m.instance_id for m in recognition.matches],
                top_score=recognition.matches[0].score if recognition.matches else -1.0,
                unknown=recognition.unknown,
                image_relevance=[hit.instance_id == truth for hit in recognition.images],
                relevant_images=gallery_sizes.get(truth, 0) if truth else 0,
                ms=ms,
                query=str(path),
                top=_candidates(recognizer, recognition),
                timing_ms=dict(recognition.timing_ms),
                confidence=recognition.matches[0].confidence if recognition.matches else None,
            )
        )
        if progress:
            progress("query", number, len(queries))
    return outcomes


def _candidates(recognizer: Recognizer, recognition: Recognition) -> tuple[Candidate, ...]:
    return tuple(
        Candidate(m.instance_id, m.label, m.score, recognizer.gallery.image(m.image_id).source)
        for m in recognition.matches[:CANDIDATES_KEPT]
    )
