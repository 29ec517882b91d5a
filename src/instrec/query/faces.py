"""A faces library's query: every face in a photo located, embedded and ranked (largest first)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from instrec.images import LoadedImage
from instrec.library import Library
from instrec.query.photos import InParallel, RankedPhotos, rank_photos
from instrec.results import Box


def rank_faces(
    library: Library, embedder: Any, loaded: LoadedImage, shortlist: int, in_parallel: InParallel
) -> tuple[list[Box | None], RankedPhotos]:
    """Each face's box (pixels of the photo as given; None: a face crop without a detected box) and its
    ranking; no boxes and an empty ranking, with the time the search for faces took, when it shows none."""
    t0 = time.perf_counter()
    faces = embedder.located(loaded.pixels)
    if not faces:
        return [], RankedPhotos([], [], [], {"embed": (time.perf_counter() - t0) * 1e3})
    vectors = np.stack([vector for _, vector in faces])
    ranked = rank_photos(library, lambda _: vectors, [loaded.pixels] * len(faces), shortlist, in_parallel)
    ranked.per_image_ms["embed"] = (time.perf_counter() - t0) * 1e3  # detection included, for the whole photo
    scale = (loaded.size or loaded.pixels.size)[0] / loaded.pixels.width  # loading shrinks large photos
    return [None if box is None else box.scaled(scale) for box, _ in faces], ranked
