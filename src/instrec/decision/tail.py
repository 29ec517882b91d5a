"""The uncalibrated threshold of plain cosine scores from an embedding trained to separate identities
(the faces profile): it rises with the number of gallery vectors a stranger is compared with.

A stranger's best score is the largest of its cosines with every gallery vector, so a threshold that
lets a share ``far`` of strangers through against one vector lets through about ``n`` times as many
against ``n``. Against ``n`` vectors, the threshold is the cosine that a share
``q = 1 - (1 - far) ** (1 / n)`` of pairs of different people reach. That share soon lies past the
pairs any set of faces holds, so it is read from a model of the tail: near its low end, the distance
between the unit vectors of two different people, ``d = sqrt(2 - 2 cos)``, falls below ``r`` for a
share ``(r / scale) ** dim`` of pairs (the lower tail of distances among points spread over ``dim``
dimensions). Unlike a straight-line extrapolation of the cosine, it never passes 1, however large
the gallery. ``benchmarks/fit_face_tail.py`` fits ``scale`` and ``dim`` on pairs of different people.
"""

from __future__ import annotations

import math


def tail_threshold(scale: float, dim: float, target_far: float, vectors: int) -> float:
    """The cosine that lets ``target_far`` of strangers through a gallery of ``vectors`` vectors
    (at least one), for a tail of ``scale`` and ``dim`` (see the module's doc)."""
    if not 0 < target_far < 1:
        raise ValueError("target false-accept rate must be between 0 and 1")
    share = -math.expm1(math.log1p(-target_far) / max(1, vectors))  # of pairs: 1 - (1 - far)^(1/n), precisely
    distance = scale * share ** (1.0 / dim)
    return 1.0 - distance * distance / 2.0
