"""``train``: a labelled folder in, a model directory out (what ``instrec train`` runs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from instrec.config import Config
from instrec.embedding import Embedder
from instrec.extras import require_extra
from instrec.training.data import LabelledFolder, read_labelled_folder, split_by_instance
from instrec.training.features import FeatureSet, cached_features, embed_folder
from instrec.training.fit import FINETUNED, Fitted, TrainSettings, figures, fit_projection
from instrec.training.head import EpochReport
from instrec.training.model import save_model

StageReport = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class TrainResult:
    model: Path
    metrics: dict[str, Any]


def train(
    folder: str | Path,
    out: str | Path,
    settings: TrainSettings = TrainSettings(),
    config: Config | None = None,
    cache: Path | None = None,
    progress: StageReport | None = None,
    epochs_report: EpochReport | None = None,
) -> TrainResult:
    """Embed ``folder`` (one sub-folder per instance) with the configured backbone, fit, save under ``out``.

    ``cache``: an .npz for the descriptors, reused when data, descriptor, views and seed are the same.
    ``partial`` / ``full`` keep a checkpoint in ``out`` after each epoch: the same call resumes a killed run.
    """
    return train_labelled(read_labelled_folder(folder), out, settings, config, cache, progress, epochs_report)


def train_labelled(
    labelled: LabelledFolder,
    out: str | Path,
    settings: TrainSettings = TrainSettings(),
    config: Config | None = None,
    cache: Path | None = None,
    progress: StageReport | None = None,
    epochs_report: EpochReport | None = None,
) -> TrainResult:
    """:func:`train` of a folder already read (e.g. a benchmark's training half)."""
    require_extra("train", "instrec train")
    config = config or Config()
    out = Path(out)
    # The projection is learned on raw pooled descriptors: any configured whitening would be replaced.
    embedder = Embedder(config.descriptor.model_copy(update={"whitening": None}), config.runtime, config.tuning.descriptor)
    data_digest = labelled.digest()

    def compute() -> FeatureSet:
        report = None if progress is None else (lambda done, total: progress("embed", done, total))
        return embed_folder(embedder, labelled, settings.views, settings.seed, config.limits, report)

    key = f"{data_digest}:{embedder.digest}:views={settings.views}:seed={settings.seed}"
    features = cached_features(cache, key, compute) if cache is not None else compute()
    fitted: Fitted = fit_projection(features, settings, epochs_report)
    manifest = {
        "base": {"backbone": config.descriptor.backbone, "descriptor_digest": embedder.digest},
        "method": settings.method,
        "loss": settings.loss if settings.method != "whiten" else None,
        "training_data": {"digest": data_digest, "instances": len(labelled.instances), "images": labelled.image_count},
        "settings": settings.to_dict(),
    }
    if settings.method in FINETUNED:
        fitted = _finetuned(labelled, features, fitted, embedder, settings, config, out, epochs_report)
    return TrainResult(save_model(out, fitted.projection, {**manifest, "validation": fitted.metrics}), fitted.metrics)


def _finetuned(
    labelled: LabelledFolder,
    features: FeatureSet,
    start: Fitted,
    embedder: Embedder,
    settings: TrainSettings,
    config: Config,
    out: Path,
    report: EpochReport | None,
) -> Fitted:
    """The backbone and head trained from ``start`` (the whitening); its weights written into ``out``."""
    import torch

    from instrec.embedding.spec import MODEL_BACKBONE
    from instrec.training.checkpoint import Checkpoint
    from instrec.training.finetune import finetune

    train_ids, val_ids = split_by_instance(len(labelled.instances), settings.val_fraction, settings.seed)
    seen = features.of_instances(train_ids)
    checkpoint = Checkpoint(out, f"{labelled.digest()}:{embedder.digest}:{sorted(settings.to_dict().items())}")
    start_vectors = (start.projection.apply(seen.vectors), seen.labels)
    run = finetune(
        labelled, (train_ids, val_ids), start.projection, start_vectors, embedder, settings, config.limits, checkpoint, report
    )
    out.mkdir(parents=True, exist_ok=True)
    torch.save(run.net.backbone_weights(), out / MODEL_BACKBONE)
    checkpoint.remove()
    metrics = start.metrics | {
        f"validation_{settings.method}": figures(run.validation),
        "best_epoch": run.best_epoch,
        "epochs_run": run.epochs_run,
    }
    return Fitted(run.net.projection(), metrics)
