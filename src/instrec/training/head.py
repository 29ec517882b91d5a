"""A linear head on cached descriptors, trained with a pytorch-metric-learning loss.

The head starts as the supervised whitening (the same mean and projection), so epoch 0 is the
baseline and validation can only keep a head that beats it on instances it never trained on. It
stays linear after pooling, so it is saved and applied as a :class:`Whitening`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from instrec.embedding.whitening import Whitening
from instrec.errors import InstrecError
from instrec.training.features import FeatureSet
from instrec.training.metrics import OneShot, one_shot

LOSSES = ("arcface", "proxy-anchor")
PATIENCE = 5  # epochs without a better validation figure before stopping
BATCH = 256
LEARNING_RATE = 1e-4  # of the head, whose entries are ~1/sqrt(input_dim) after the rescale below
LOSS_LEARNING_RATE = 1e-2  # class weights / proxies start from class means and must move faster

EpochReport = Callable[[int, int, float, OneShot | None], None]  # (epoch, epochs, mean loss, validation)


@dataclass(frozen=True)
class HeadRun:
    head: Whitening
    best_epoch: int  # 0: no epoch beat the initial whitening on validation
    epochs_run: int
    validation: OneShot | None  # of the kept head; None without validation instances


def _loss(name: str, classes: int, dims: int) -> Any:
    from pytorch_metric_learning import losses

    if name == "arcface":
        return losses.ArcFaceLoss(classes, dims)
    if name == "proxy-anchor":
        return losses.ProxyAnchorLoss(classes, dims)
    raise InstrecError(f"unknown loss {name!r}: choose one of {', '.join(LOSSES)}")


def _start_classes_at_their_means(loss: Any, embedded: Any, labels: Any) -> None:
    """Random class weights would first drag the head away from the whitening towards noise."""
    import torch

    means = torch.stack([embedded[labels == c].mean(0) for c in range(int(labels.max()) + 1)])
    means = torch.nn.functional.normalize(means, dim=1)
    with torch.no_grad():
        if hasattr(loss, "W"):  # ArcFace: (dims, classes)
            loss.W.copy_(means.T)
        else:  # ProxyAnchor: (classes, dims)
            loss.proxies.copy_(means)


def train_head(
    train: FeatureSet,
    validation: FeatureSet | None,
    start: Whitening,
    loss_name: str,
    epochs: int,
    seed: int,
    report: EpochReport | None = None,
) -> HeadRun:
    """``train``: the training instances' photos and views; ``validation``: other instances' photos."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    _, labels = np.unique(train.labels, return_inverse=True)  # loss classes 0..k-1
    x = torch.from_numpy((train.vectors - start.mean).astype(np.float32))
    y = torch.from_numpy(labels.astype(np.int64))
    # Output is normalised, so one scalar rescale leaves the map unchanged and puts the learning rate on a known scale.
    scale = float(np.linalg.norm(start.projection) / np.sqrt(start.dims))
    weight = torch.nn.Parameter(torch.from_numpy(start.projection / scale))
    loss = _loss(loss_name, int(labels.max()) + 1, start.dims)
    with torch.no_grad():
        _start_classes_at_their_means(loss, torch.nn.functional.normalize(x @ weight, dim=1), y)
    optimiser = torch.optim.Adam(
        [{"params": [weight], "lr": LEARNING_RATE}, {"params": loss.parameters(), "lr": LOSS_LEARNING_RATE}]
    )

    def head() -> Whitening:
        projection = weight.detach().numpy().copy()
        return Whitening(start.mean, projection, start.explained, len(train.vectors), start.power, start.shrinkage)

    def validate() -> OneShot | None:
        return None if validation is None else one_shot(head().apply(validation.vectors), validation.labels, validation.images)

    best, best_head, best_epoch, epoch = validate(), head(), 0, 0
    for epoch in range(1, epochs + 1):
        total = 0.0
        for batch in np.array_split(rng.permutation(len(x)), max(1, len(x) // BATCH)):
            optimiser.zero_grad()
            value = loss(torch.nn.functional.normalize(x[batch] @ weight, dim=1), y[batch])
            value.backward()
            optimiser.step()
            total += float(value.detach()) * len(batch)
        measured = validate()
        if report is not None:
            report(epoch, epochs, total / len(x), measured)
        if validation is None:
            best_head, best_epoch = head(), epoch
        elif measured is not None and measured.better_than(best):
            best, best_head, best_epoch = measured, head(), epoch
        elif epoch - best_epoch >= PATIENCE:
            break
    return HeadRun(best_head, best_epoch, epoch, best)
