"""From image neighbours to instance scores.

A query photo is searched with its whole-image vector; an instance scores as its best-matching
image, then lowered against the competing instances (:func:`against_competitors`), the score that
"unknown" is decided on.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
import numpy as np

# What an unrelated enrolled instance scores (fused; a plain cosine scores a little more): the level
# a gallery with fewer than `competitors` other instances counts the missing rivals at, so a score
# means the same in a library of 3 instances as in one of 30,000.
UNRELATED_SCORE = 0.3


@dataclass(frozen=True)
class InstanceScore:
    instance_pk: int
    score: float
    vector_id: int  # the best-matching gallery vector (for thumbnails / explanations)
    inliers: int | None = None  # RANSAC inliers behind the score, when geometric verification ran
    # Evidence from geometry alone (rerank.fuse.inlier_evidence of the instance's best-verified image):
    # a score channel that competitors do not lower, since a verified match is no hub. None: not verified.
    geometry: float | None = None
    # Where the inliers of the best-verified image lie in the query: (left, top, right, bottom) in
    # pixels of the photo as ranked (query.rank_photos' pixels). None: not verified, or by chance only.
    box: tuple[float, float, float, float] | None = None


def rank_instances(scores: np.ndarray, vector_ids: np.ndarray, instance_pks: np.ndarray) -> list[InstanceScore]:
    """Group image-level hits by instance, best first."""
    best: dict[int, InstanceScore] = {}
    for score, vector_id, instance_pk in zip(scores.tolist(), vector_ids.tolist(), instance_pks.tolist()):
        if instance_pk < 0:
            continue
        if instance_pk not in best:  # hits arrive best first
            best[instance_pk] = InstanceScore(instance_pk, score, vector_id)
    return sorted(best.values(), key=lambda s: -s.score)


def against_competitors(
    ranked: list[InstanceScore], weight: float, competitors: int = 1, missing: float = UNRELATED_SCORE
) -> list[InstanceScore]:
    """Each instance's score lowered by ``weight`` x the mean score of the ``competitors`` best
    *other* instances (a gallery with fewer counts the missing ones at ``missing``, what an
    unrelated instance scores), then raised to its ``geometry`` where that is larger; best first.
    ``ranked`` is best first by score.

    A never-enrolled object tends to resemble several enrolled ones about equally, while an enrolled
    one stands out from the rest: the lead over the field separates the two beyond the score itself.
    The field, not the runner-up alone: against the runner-up only, a query of either of two
    near-identical enrolled instances (a pack and its recoloured twin) loses its lead and becomes
    "unknown"; averaged over five, one twin weighs a fifth. Missing rivals count as unrelated ones,
    not as 0: a library of one instance would otherwise accept any photo that one resembles a little.

    Geometry stands apart because the field's mean is noise on top of it: a catalogue label
    verified by dozens of inliers in a bottle photo would otherwise score by how much the other
    labels happen to resemble the photo. It is also where the lowered scores' order can change.
    """
    if not ranked:
        return ranked
    best = [s.score for s in ranked[: competitors + 1]]
    best += [missing] * (competitors + 1 - len(best))
    total = sum(best)
    rivals = lambda i: (total - best[min(i, competitors)]) / competitors if weight else 0.0  # noqa: E731
    lowered = [
        dataclasses.replace(s, score=max(s.score - weight * rivals(i), s.geometry or -math.inf)) for i, s in enumerate(ranked)
    ]
    return sorted(lowered, key=lambda s: -s.score)
