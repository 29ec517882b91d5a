"""From cached features to a projection: split by instance, fit the whitening, train the head on it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from instrec.embedding.whitening import Whitening
from instrec.errors import InstrecError
from instrec.training.data import split_by_instance
from instrec.training.features import FeatureSet
from instrec.training.head import EpochReport, train_head
from instrec.training.losses import LOSSES
from instrec.training.metrics import OneShot, one_shot
from instrec.training.supervised_whitening import fit_supervised_whitening

METHODS = ("whiten", "head", "partial", "full")
FINETUNED = ("partial", "full")  # the backbone trains too (training/finetune.py)


@dataclass(frozen=True)
class TrainSettings:
    method: str = "whiten"
    loss: str = "arcface"
    epochs: int = 30
    seed: int = 0
    val_fraction: float = 0.2
    dims: int = 256
    views: int = 4  # augmented views per photo, besides the photo itself (cached, for whiten and head)
    epoch_images: int = 0  # partial / full: augmented photos per epoch; 0 = each training photo once

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InstrecError(f"unknown --method {self.method!r}: choose one of {', '.join(METHODS)}")
        if self.loss not in LOSSES:
            raise InstrecError(f"unknown --loss {self.loss!r}: choose one of {', '.join(LOSSES)}")
        if self.epochs < 1 or self.views < 0 or self.dims < 1 or self.epoch_images < 0:
            raise InstrecError("--epochs and --dims must be >= 1, --views and --epoch-images >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Fitted:
    projection: Whitening
    metrics: dict[str, Any]  # validation 1-shot figures (empty without validation instances), epochs


def figures(result: OneShot | None) -> dict[str, float] | None:
    return None if result is None else {"top1": round(result.top1, 4), "margin": round(result.margin, 4)}


def fit_projection(features: FeatureSet, settings: TrainSettings, report: EpochReport | None = None) -> Fitted:
    """``features``: every instance's photos and views; validation instances are drawn by ``settings.seed``."""
    train_ids, val_ids = split_by_instance(int(features.labels.max()) + 1, settings.val_fraction, settings.seed)
    train = features.of_instances(train_ids)
    validation = features.of_instances(val_ids).originals if len(val_ids) else None
    whitening = fit_supervised_whitening(train.vectors, train.labels, settings.dims)

    def measured(projection: Whitening | None) -> OneShot | None:
        if validation is None:
            return None
        vectors = validation.vectors if projection is None else projection.apply(validation.vectors)
        return one_shot(vectors, validation.labels, validation.images)

    metrics: dict[str, Any] = {
        "train_instances": len(train_ids),
        "validation_instances": len(val_ids),
        "validation_pretrained": figures(measured(None)),
        "validation_whitening": figures(measured(whitening)),
    }
    if settings.method != "head":  # partial and full start from the whitening
        return Fitted(whitening, metrics)
    run = train_head(train, validation, whitening, settings.loss, settings.epochs, settings.seed, report)
    metrics |= {"validation_head": figures(run.validation), "best_epoch": run.best_epoch, "epochs_run": run.epochs_run}
    return Fitted(run.head, metrics)
