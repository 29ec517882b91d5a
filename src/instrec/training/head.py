"""A linear head on cached descriptors, trained with a pytorch-metric-learning loss.

The head starts as the supervised whitening (the same mean and projection), so epoch 0 is the
baseline and validation can only keep a head that beats it on instances it never trained on. It
stays linear after pooling, so it is saved and applied as a :class:`Whitening`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from instrec.embedding.whitening import Whitening
from instrec.training.features import FeatureSet
from instrec.training.losses import batches, epoch_seed, make_loss, start_classes_at_their_means
from instrec.training.metrics import EarlyStopping, OneShot, one_shot

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
    _, labels = np.unique(train.labels, return_inverse=True)  # loss classes 0..k-1
    x = torch.from_numpy((train.vectors - start.mean).astype(np.float32))
    y = torch.from_numpy(labels.astype(np.int64))
    # Output is normalised, so one scalar rescale leaves the map unchanged and puts the learning rate on a known scale.
    scale = float(np.linalg.norm(start.projection) / np.sqrt(start.dims))
    weight = torch.nn.Parameter(torch.from_numpy(start.projection / scale))
    loss = make_loss(loss_name, int(labels.max()) + 1, start.dims)
    with torch.no_grad():
        start_classes_at_their_means(loss, torch.nn.functional.normalize(x @ weight, dim=1), y, seed)
    groups = [{"params": [weight], "lr": LEARNING_RATE}, {"params": list(loss.parameters()), "lr": LOSS_LEARNING_RATE}]
    optimiser = torch.optim.Adam([group for group in groups if group["params"]])

    def head() -> Whitening:
        projection = weight.detach().numpy().copy()
        return Whitening(start.mean, projection, start.explained, len(train.vectors), start.power, start.shrinkage)

    def validate() -> OneShot | None:
        return None if validation is None else one_shot(head().apply(validation.vectors), validation.labels, validation.images)

    stopping = EarlyStopping(PATIENCE, validation is not None, validate())
    best_head, epoch = head(), 0
    for epoch in range(1, epochs + 1):
        total, rows = 0.0, 0
        for batch in batches(labels, loss_name, BATCH, len(x), epoch_seed(seed, epoch)):
            optimiser.zero_grad()
            value = loss(torch.nn.functional.normalize(x[batch] @ weight, dim=1), y[batch])
            value.backward()
            optimiser.step()
            total, rows = total + float(value.detach()) * len(batch), rows + len(batch)
        measured = validate()
        if report is not None:
            report(epoch, epochs, total / rows, measured)
        if stopping.improved(epoch, measured):
            best_head = head()
        elif stopping.should_stop(epoch):
            break
    return HeadRun(best_head, stopping.best_epoch, epoch, stopping.best)
