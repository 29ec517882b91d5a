"""Genuine and stranger scores of a gallery, measured with probes (:mod:`instrec.decision.probes`).

The recognizer hands in its ranking (photos -> instances ranked by score, before the decision) and
the decision's own rule for lowering scores against competitors, so what is measured here is
exactly what recognition returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from PIL import Image

from instrec.decision.probes import probes, strangers
from instrec.decision.scores import InstanceScore

Rank = Callable[[list[Image.Image]], list[list[InstanceScore]]]
Adjust = Callable[[list[InstanceScore]], list[InstanceScore]]
Progress = Callable[[int, int], None]
BATCH = 8  # probes ranked at once
# A shipped stranger that verifies this well, or scores this high, is an enrolled picture, not a
# stranger: it is left out, and not used as a backdrop either.
ENROLLED_GEOMETRY = 0.5
ENROLLED_SCORE = 0.9


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


def measure(rank: Rank, adjust: Adjust, shots: Sequence[Shot], twins: dict[int, set[int]],
            progress: Progress | None = None, with_strangers: bool = True) -> Scores:
    """Score the shipped strangers (``with_strangers``) and two probes per shot.

    A probe's own instance gives a genuine score; the best of the others, with its own instance
    and its ``twins`` (instances holding a duplicate of one of its images) set aside, an impostor
    score, as if the photo's instance were not enrolled.
    """
    scores = Scores()
    backdrops = []
    for photo, ranked in _ranked_in_batches(rank, strangers(), None):
        top = ranked[0] if ranked else None
        enrolled = top is not None and ((top.geometry or 0.0) >= ENROLLED_GEOMETRY or top.score >= ENROLLED_SCORE)
        if with_strangers and not enrolled and ranked:
            scores.impostor.append(adjust(ranked)[0].score)
            scores.strangers += 1
        if not enrolled:
            backdrops.append(photo)
    owners = []
    photos = []
    for shot in shots:
        for probe in probes(shot.pixels, shot.seed, backdrops):
            owners.append(shot.instance_pk)
            photos.append(probe)
    for (_, ranked), owner in zip(_ranked_in_batches(rank, photos, progress), owners):
        own = [s.score for s in adjust(ranked) if s.instance_pk == owner]
        others = adjust([s for s in ranked if s.instance_pk != owner and s.instance_pk not in twins.get(owner, ())])
        if own:
            scores.genuine.append(own[0])
        if others:
            scores.impostor.append(others[0].score)
    return scores


def _ranked_in_batches(rank: Rank, photos: list[Image.Image], progress: Progress | None):
    for start in range(0, len(photos), BATCH):
        batch = photos[start : start + BATCH]
        yield from zip(batch, rank(batch))
        if progress:
            progress(min(start + BATCH, len(photos)), len(photos))
