"""``train``: a labelled folder in, a model directory out (what ``instrec train`` runs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from instrec.config import Config
from instrec.embedding import Embedder
from instrec.extras import require_extra
from instrec.training.data import read_labelled_folder
from instrec.training.features import FeatureSet, cached_features, embed_folder
from instrec.training.fit import Fitted, TrainSettings, fit_projection
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
    """
    require_extra("train", "instrec train")
    config = config or Config()
    labelled = read_labelled_folder(folder)
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
        "loss": settings.loss if settings.method == "head" else None,
        "training_data": {"digest": data_digest, "instances": len(labelled.instances), "images": labelled.image_count},
        "settings": settings.to_dict(),
        "validation": fitted.metrics,
    }
    return TrainResult(save_model(Path(out), fitted.projection, manifest), fitted.metrics)
