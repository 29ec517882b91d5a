"""Local features completed after the fact, from the stored originals."""

from __future__ import annotations

import logging
from typing import Callable

from instrec.config import LimitsConfig
from instrec.errors import ImageError, InstrecError, UnknownImageError
from instrec.images import load_image
from instrec.library.library import Library
from instrec.rerank import LocalFeatures

log = logging.getLogger(__name__)


def complete_local_features(library: Library, limits: LimitsConfig, progress: Callable[[int, int], None] | None = None) -> int:
    """Extract the features of images enrolled while re-ranking was off, and the colour of images
    enrolled before colour signatures existed; returns how many were completed.

    Reads the stored originals, so no source folder is needed; resumable (each image is its own
    transaction) and safe alongside other writers (an image removed meanwhile is skipped).
    """
    verifier = library.verifier
    if verifier is None:
        raise InstrecError("re-ranking is off (rerank.enabled=false): there is nothing to extract")
    catalog = library.catalog
    incomplete = {pk for pk, size in catalog.features.sizes().items() if not LocalFeatures.packed_complete(size)}
    missing = sorted(set(catalog.features.missing()) | incomplete)
    done = 0
    for number, image_pk in enumerate(missing, 1):
        try:
            image = load_image(library.blobs.get(catalog.get_image(image_pk).sha256), limits)
        except (UnknownImageError, ImageError, OSError) as error:
            log.warning("image %d skipped: %s", image_pk, error)
            continue
        done += catalog.features.put(image_pk, verifier.extract(image.pixels, image.alpha).pack())
        if progress:
            progress(number, len(missing))
    library.sync()
    return done
