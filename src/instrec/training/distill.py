"""Distillation: the cheap student (the configured backbone, frozen, and a linear head) trained to
rank photos as a bigger teacher does, on photos without labels.

Both descriptors are first PCA-whitened on the same unlabelled photos (label-free, and on the
benchmark's sets it is worth more than the teacher's extra pixels: ``benchmarks/bench_distil.py``).
The head starts as the student's whitening and is refined with a relational loss (Park et al.,
"Relational Knowledge Distillation", CVPR 2019): the squared error between the student's pairwise
cosines in a batch and the whitened teacher's. Recognition ranks by cosine, so the pairwise
similarities are what the student must get right; the two whitened spaces have their own axes, so
no per-photo term ties one to the other. The head stays linear after pooling, so it is saved and
applied as a :class:`~instrec.embedding.whitening.Whitening` (``descriptor.whitening=MODEL_DIR``) and
runs at the student's cost.

Labels are never used: any folder of photos (sub-folders or not) is distillation data. Validation
holds out a share of the photos (with their views) and stops on the relational error there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from instrec.config import Config
from instrec.embedding import Embedder
from instrec.embedding.whitening import Whitening, fit_whitening
from instrec.errors import InstrecError
from instrec.extras import require_extra
from instrec.images import iter_image_files
from instrec.training.data import LabelledFolder
from instrec.training.features import FeatureSet, cached_features, embed_folder
from instrec.training.model import save_model

PATIENCE = 5  # epochs without a lower validation error before stopping
BATCH = 256
LEARNING_RATE = 1e-4  # of the head, whose entries are ~1/sqrt(input_dim) after the rescale in _train
WHITENED_DIMS = 512  # of both whitenings, at most one less than the distillation rows
UNLABELLED = ""  # the one pseudo-instance all distillation photos belong to

StageReport = Callable[[str, int, int], None]  # (stage, done, total)
EpochReport = Callable[[int, int, float, float | None], None]  # (epoch, epochs, mean loss, validation error)


@dataclass(frozen=True)
class DistilSettings:
    teacher: str = "efficientnet_lite2"  # a registered backbone with weights of its own
    epochs: int = 30
    seed: int = 0  # decides the validation photos, the augmented views and the batches
    val_fraction: float = 0.2  # share of photos held out to stop on
    views: int = 4  # augmented views per photo, besides the photo itself
    # The teacher's long side in px (None: the student's): the student's own backbone looking at more
    # pixels is a teacher too, a multi-scale one, with no second network to ship.
    teacher_side: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.views < 0:
            raise InstrecError("--epochs and --views must be >= 0")
        if not 0.0 <= self.val_fraction < 1.0:
            raise InstrecError("--val-fraction must be in [0, 1)")
        if self.teacher_side is not None and self.teacher_side < 32:
            raise InstrecError("--teacher-side must be at least 32 px")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Distilled:
    head: Whitening
    metrics: dict[str, Any]  # validation relational errors (None without validation photos), epochs


def unlabelled_photos(root: str | Path) -> LabelledFolder:
    """Every photo under ``root`` (in sub-folders or not) as one unlabelled set."""
    root = Path(root)
    if not root.is_dir():
        raise InstrecError(f"distillation folder {root} does not exist")
    files = tuple(iter_image_files(root, recursive=True))
    if len(files) < 2:
        raise InstrecError(f"{root}: distillation needs at least 2 photos (found {len(files)})")
    return LabelledFolder(root, (UNLABELLED,), (files,))


def student_and_teacher(config: Config, settings: DistilSettings) -> tuple[Embedder, Embedder]:
    """The configured backbone without its projection, and ``settings``' teacher, as embedders."""
    raw = config.descriptor.model_copy(update={"whitening": None})
    tuning = config.tuning.descriptor
    teacher_tuning = tuning if settings.teacher_side is None else tuning.model_copy(update={"max_side": settings.teacher_side})
    teacher = raw.model_copy(update={"backbone": settings.teacher, "weights": None})
    return Embedder(raw, config.runtime, tuning), Embedder(teacher, config.runtime, teacher_tuning)


def relational_error(student: Any, teacher: Any) -> Any:
    """Mean squared difference of the pairwise cosines of two batches of the same photos, row for row
    (``student`` any scale, ``teacher`` unit rows); torch tensors in, a scalar tensor out."""
    import torch

    s = torch.nn.functional.normalize(student, dim=1)
    return ((s @ s.T - teacher @ teacher.T) ** 2).mean()


def distil_head(
    student: FeatureSet, teacher: FeatureSet, settings: DistilSettings = DistilSettings(), report: EpochReport | None = None
) -> Distilled:
    """``student``, ``teacher``: the two backbones' descriptors of the same photos and views, row for row."""
    if len(student.vectors) != len(teacher.vectors) or not np.array_equal(student.images, teacher.images):
        raise InstrecError("the student's and the teacher's descriptors must be of the same photos, row for row")
    photos = np.unique(student.images)
    held = int(round(settings.val_fraction * len(photos)))
    order = np.random.default_rng(settings.seed).permutation(photos)
    validating = np.isin(student.images, order[:held])
    fitting = ~validating
    dims = min(WHITENED_DIMS, int(fitting.sum()) - 1, student.vectors.shape[1], teacher.vectors.shape[1])
    if dims < 1:
        raise InstrecError("distillation needs at least 2 rows (photos and their views) to fit on")
    start = fit_whitening(student.vectors[fitting], dims)
    target = fit_whitening(teacher.vectors[fitting], dims).apply(teacher.vectors)
    # Validation: the held-out photos themselves, as recognition sees them (their views are not queries).
    checked = validating & (student.views == 0)
    val = (student.vectors[checked], target[checked]) if checked.sum() >= 2 else None
    head, run = _train(start, student.vectors[fitting], target[fitting], val, settings, report)
    figures = {
        "distillation_photos": int(len(photos) - held),
        "validation_photos": int(held),
        "dims": dims,
        "validation_error_start": None if val is None else round(_error(start, *val), 6),
        "validation_error": None if val is None else round(_error(head, *val), 6),
        **run,
    }
    return Distilled(head, figures)


def _error(head: Whitening, student: np.ndarray, target: np.ndarray) -> float:
    import torch

    return float(relational_error(torch.from_numpy(head.apply(student)), torch.from_numpy(target)))


def _train(
    start: Whitening,
    x_rows: np.ndarray,
    t_rows: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray] | None,
    settings: DistilSettings,
    report: EpochReport | None,
) -> tuple[Whitening, dict[str, int]]:
    """Refine ``start``'s projection with the relational loss; keep the epoch best on validation."""
    import torch

    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    x = torch.from_numpy((x_rows - start.mean).astype(np.float32))
    t = torch.from_numpy(np.asarray(t_rows, np.float32))
    # Output is normalised, so one scalar rescale leaves the map unchanged and puts the learning rate on a known scale.
    scale = float(np.linalg.norm(start.projection) / np.sqrt(start.dims))
    weight = torch.nn.Parameter(torch.from_numpy(start.projection / scale))
    optimiser = torch.optim.Adam([weight], lr=LEARNING_RATE)

    def head() -> Whitening:
        projection = weight.detach().numpy().astype(np.float32)
        return Whitening(start.mean, projection, start.explained, start.pool_size, start.power, start.shrinkage)

    def validate() -> float | None:
        return None if validation is None else _error(head(), *validation)

    best, best_head, best_epoch, epoch = validate(), head(), 0, 0
    for epoch in range(1, settings.epochs + 1):
        total = 0.0
        for batch in np.array_split(rng.permutation(len(x)), max(1, len(x) // BATCH)):
            optimiser.zero_grad()
            value = relational_error(x[batch] @ weight, t[batch])
            value.backward()
            optimiser.step()
            total += float(value.detach()) * len(batch)
        measured = validate()
        if report is not None:
            report(epoch, settings.epochs, total / len(x), measured)
        if measured is None or best is None or measured < best:
            best, best_head, best_epoch = measured, head(), epoch
        elif epoch - best_epoch >= PATIENCE:
            break
    return best_head, {"best_epoch": best_epoch, "epochs_run": epoch}


def distil(
    folder: str | Path,
    out: str | Path,
    settings: DistilSettings = DistilSettings(),
    config: Config | None = None,
    cache: Path | None = None,
    progress: StageReport | None = None,
    epochs_report: EpochReport | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Embed every photo under ``folder`` with the configured backbone (the student) and with
    ``settings.teacher``, distil a head, save it under ``out``: (the model directory, its figures).

    ``cache``: an .npz path; the student's and the teacher's descriptors are kept beside it (``NAME-student.npz``,
    ``NAME-teacher.npz``) and reused when data, descriptors, views and seed are the same.
    """
    require_extra("train", "instrec train --teacher")
    config = config or Config()
    photos = unlabelled_photos(folder)
    student, teacher = student_and_teacher(config, settings)
    digest = photos.digest()

    def features(embedder: Embedder, role: str) -> FeatureSet:
        def compute() -> FeatureSet:
            report = None if progress is None else (lambda done, total: progress(f"embed ({role})", done, total))
            return embed_folder(embedder, photos, settings.views, settings.seed, config.limits, report)

        if cache is None:
            return compute()
        key = f"{digest}:{embedder.digest}:views={settings.views}:seed={settings.seed}"
        return cached_features(cache.with_name(f"{cache.stem}-{role}.npz"), key, compute)

    fitted = distil_head(features(student, "student"), features(teacher, "teacher"), settings, epochs_report)
    manifest = {
        "base": {"backbone": config.descriptor.backbone, "descriptor_digest": student.digest},
        "method": "distil",
        "teacher": {"backbone": settings.teacher, "descriptor_digest": teacher.digest},
        "loss": "relational (whitened spaces)",
        "training_data": {"digest": digest, "instances": None, "images": photos.image_count},
        "settings": settings.to_dict(),
        "validation": fitted.metrics,
    }
    return save_model(Path(out), fitted.head, manifest), fitted.metrics
