"""Augmented views of a training photo (albumentations): what a query may look like beside the shot.

With 1-3 photos per instance a head learns the photos themselves; crops, perspective, light, blur
and occlusion give it the variation queries bring. Each view is drawn from a seed of its own
(run seed, image, view), so a view is the same whatever order or run computes it.
"""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image


_own = threading.local()  # each thread its pipelines: a pipeline's random state is drawn from while it runs


def _pipeline(height: int, width: int):  # noqa: ANN202 - albumentations ships no type information
    pipelines = _own.__dict__.setdefault("pipelines", {})
    if (height, width) not in pipelines:
        pipelines[height, width] = _new_pipeline(height, width)
    return pipelines[height, width]


def _new_pipeline(height: int, width: int):  # noqa: ANN202
    import albumentations as A

    return A.Compose(
        [
            A.RandomResizedCrop(size=(height, width), scale=(0.5, 1.0), ratio=(0.75, 1.33)),
            A.Perspective(scale=(0.03, 0.08), p=0.5),
            A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03, p=0.8),
            A.GaussianBlur(blur_limit=(3, 5), p=0.3),
            A.CoarseDropout(num_holes_range=(1, 3), hole_height_range=(0.1, 0.25), hole_width_range=(0.1, 0.25), p=0.5),
        ]
    )


def augmented_view(
    photo: Image.Image, seed: int, image: int, view: int, size: tuple[int, int] | None = None, epoch: int | None = None
) -> Image.Image:
    """One random view of ``photo`` (RGB), the same for the same (seed, image, view, epoch).

    ``size``: (width, height) of the view; None: the photo's. A fine-tuned backbone trains on batches of
    one size, and on new views each ``epoch``.
    """
    pixels = np.asarray(photo.convert("RGB"))
    pipeline = _pipeline(*(pixels.shape[:2] if size is None else size[::-1]))
    stream = [seed, image, view] + ([] if epoch is None else [epoch])
    pipeline.set_random_seed(int(np.random.SeedSequence(stream).generate_state(1)[0]))
    return Image.fromarray(pipeline(image=pixels)["image"])
