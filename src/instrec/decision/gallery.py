"""Genuine and stranger scores of a gallery, measured with probes (:mod:`instrec.decision.probes`).

The recognizer hands in its ranking (photos -> instances ranked by score, before the decision) and
the decision's own rule for lowering scores against competitors, so what is measured here is
exactly what recognition returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from PIL import Image

from instrec.decision.probes import background_photos, probes, stranger_views
from instrec.decision.scores import InstanceScore

Rank = Callable[[list[Image.Image]], list[list[InstanceScore]]]
Adjust = Callable[[list[InstanceScore]], list[InstanceScore]]
Progress = Callable[[int, int], None]
Holds = Callable[[Image.Image], bool]
BATCH = 8  # probes ranked at once


@dataclass(frozen=True)
class Shot:
    instance_pk: int
    pixels: Image.Image
    seed: int


@dataclass
class Scores:
    genuine: list[float] = field(default_factory=list)
    impostor: list[float] = field(default_factory=list)
    strangers: int = 0  # shipped strangers scored (the others hold an enrolled picture)


def measure(
    rank: Rank,
    adjust: Adjust,
    shots: Sequence[Shot],
    twins: dict[int, set[int]],
    holds: Holds,
    progress: Progress | None = None,
    with_strangers: bool = True,
) -> Scores:
    """Score the shipped strangers (``with_strangers``) and two probes per shot.

    A probe's own instance gives a genuine score; the best of the others, with its own instance
    and its ``twins`` (instances holding a duplicate of one of its images) set aside, an impostor
    score, as if the photo's instance were not enrolled. A shipped scene the gallery ``holds``
    (someone enrolled that very picture) is neither a stranger nor a backdrop.
    """
    scores = Scores()
    backdrops = [photo for photo in background_photos() if not holds(photo)]
    if with_strangers:
        views = [view for photo in backdrops for view in stranger_views(photo)]
        for ranked in _ranked_in_batches(rank, views, None):
            if ranked:
                scores.impostor.append(adjust(ranked)[0].score)
                scores.strangers += 1
    owners = []
    photos = []
    for shot in shots:
        for probe in probes(shot.pixels, shot.seed, backdrops):
            owners.append(shot.instance_pk)
            photos.append(probe)
    for ranked, owner in zip(_ranked_in_batches(rank, photos, progress), owners):
        own = [s.score for s in adjust(ranked) if s.instance_pk == owner]
        others = adjust([s for s in ranked if s.instance_pk != owner and s.instance_pk not in twins.get(owner, ())])
        if own:
            scores.genuine.append(own[0])
        if others:
            scores.impostor.append(others[0].score)
    return scores


def _ranked_in_batches(rank: Rank, photos: list[Image.Image], progress: Progress | None):
    for start in range(0, len(photos), BATCH):
        yield from rank(photos[start : start + BATCH])
        if progress:
            progress(min(start + BATCH, len(photos)), len(photos))
