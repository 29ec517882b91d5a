"""The metric-learning losses a head or a fine-tuned backbone trains with, and the batches they need.

Margin and proxy losses come from pytorch-metric-learning. ``protonet`` (prototypical networks,
Snell et al. 2017) learns from episodes: N instances, K photos each (pml's ``MPerClassSampler``);
half of each instance's photos make its prototype, the other half are classified among the episode's
prototypes. It has no class weights, so it alone can be trained without a fixed set of classes.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from instrec.errors import InstrecError

LOSSES = ("arcface", "subcenter-arcface", "proxy-anchor", "protonet")
SUB_CENTERS = 3  # SubCenter-ArcFace: centres per class, so a class's odd photos need not pull the main one
EPISODE_SHOTS = 4  # protonet: photos per instance in an episode (2 make its prototype, 2 are queried)
PROTOTYPE_SCALE = 16.0  # protonet: cosine -> logit, as the proxy losses scale theirs


class PrototypeLoss:
    """Cross-entropy of each query against the episode's prototypes (normalised support means)."""

    def __init__(self) -> None:
        import torch

        self._torch = torch

    def parameters(self) -> list[Any]:
        return []

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state  # nothing learned besides the embedding

    def to(self, device: Any) -> "PrototypeLoss":
        del device  # no tensors of its own: it follows the embedding's device
        return self

    def __call__(self, embedded: Any, labels: Any) -> Any:
        torch = self._torch
        classes = torch.unique(labels)
        support, query, query_labels = [], [], []
        for index, label in enumerate(classes):
            rows = torch.nonzero(labels == label).flatten()
            if len(rows) < 2:
                raise InstrecError("protonet: each instance in an episode needs at least 2 photos")
            half = len(rows) // 2
            support.append(embedded[rows[:half]].mean(0))
            query.append(embedded[rows[half:]])
            query_labels.append(torch.full((len(rows) - half,), index, dtype=torch.long, device=embedded.device))
        prototypes = torch.nn.functional.normalize(torch.stack(support), dim=1)
        logits = PROTOTYPE_SCALE * torch.cat(query) @ prototypes.T
        return torch.nn.functional.cross_entropy(logits, torch.cat(query_labels))


def make_loss(name: str, classes: int, dims: int) -> Any:
    from pytorch_metric_learning import losses

    if name == "arcface":
        return losses.ArcFaceLoss(classes, dims)
    if name == "subcenter-arcface":
        return losses.SubCenterArcFaceLoss(num_classes=classes, embedding_size=dims, sub_centers=SUB_CENTERS)
    if name == "proxy-anchor":
        return losses.ProxyAnchorLoss(classes, dims)
    if name == "protonet":
        return PrototypeLoss()
    raise InstrecError(f"unknown loss {name!r}: choose one of {', '.join(LOSSES)}")


def start_classes_at_their_means(loss: Any, embedded: Any, labels: Any, seed: int) -> None:
    """Random class weights would first drag the embedding away from where it starts towards noise.

    SubCenter-ArcFace's centres of a class start at its mean, a little apart (by ``seed``), so they can split.
    """
    import torch

    means = torch.stack([embedded[labels == c].mean(0) for c in range(int(labels.max()) + 1)])
    means = torch.nn.functional.normalize(means, dim=1)
    with torch.no_grad():
        if isinstance(loss, PrototypeLoss):
            return
        if hasattr(loss, "sub_centers"):  # (dims, classes * sub_centers), a class's centres side by side
            jitter = torch.randn(loss.W.shape, generator=torch.Generator().manual_seed(seed)) * 0.01
            loss.W.copy_(means.T.repeat_interleave(loss.sub_centers, dim=1) + jitter)
        elif hasattr(loss, "W"):  # ArcFace: (dims, classes)
            loss.W.copy_(means.T)
        else:  # ProxyAnchor: (classes, dims)
            loss.proxies.copy_(means)


@contextmanager
def _numpy_random(seed: int) -> Iterator[None]:
    """pml's samplers draw from its module-level ``NUMPY_RANDOM``; give them a seeded one meanwhile."""
    from pytorch_metric_learning.utils import common_functions

    saved = common_functions.NUMPY_RANDOM
    common_functions.NUMPY_RANDOM = np.random.RandomState(seed)
    try:
        yield
    finally:
        common_functions.NUMPY_RANDOM = saved


def batches(labels: np.ndarray, loss: str, size: int, count: int, seed: int) -> list[np.ndarray]:
    """One epoch's batches of row indices, about ``count`` rows in all, the same for the same ``seed``.

    ``protonet``: episodes of ``size // EPISODE_SHOTS`` instances x ``EPISODE_SHOTS`` photos; any other
    loss: a shuffle of the rows in chunks of about ``size``.
    """
    if loss != "protonet":
        order = np.random.default_rng(seed).permutation(len(labels))[:count]
        return np.array_split(order, max(1, len(order) // size))
    from pytorch_metric_learning.samplers import MPerClassSampler

    ways = min(max(2, size // EPISODE_SHOTS), len(np.unique(labels)))
    if ways < 2:
        raise InstrecError("protonet needs at least 2 training instances")
    episode = ways * EPISODE_SHOTS
    sampler = MPerClassSampler(labels, EPISODE_SHOTS, batch_size=episode, length_before_new_iter=max(episode, count))
    with _numpy_random(seed):
        rows = np.fromiter(iter(sampler), dtype=np.int64)
    return np.split(rows, len(rows) // episode)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's batches and views: a resumed run draws what an uninterrupted one did."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
