"""The tests' photos: real photos bundled with scikit-image, and query-like views of them.

The tests own these (the demo has its own): many assertions rest on exactly these pixels, so a
change to what the demo shows must not move them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image, ImageDraw, ImageEnhance

# Enrolled photos: scenes, cells, text, textures, grey and colour. Never enrolled: must be "unknown".
ENROLLED = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "camera",
    "clock",
    "coins",
    "logo",
    "page",
    "brick",
    "colorwheel",
    "moon",
)
NEVER_ENROLLED = ("cell", "text", "gravel")


def sample_photo(name: str) -> Image.Image:
    """scikit-image's sample ``name`` as RGB (grey and RGBA samples converted; every one used is 8-bit)."""
    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")


def altered_views(photo: Image.Image, seed: int = 0) -> dict[str, Image.Image]:
    """Four views a query might be, drawn from ``seed``.

    crop: 70 % of each side, from a corner 5-20 % in; rotated: 10-20 degrees on grey, canvas grown to
    fit; occluded: a dark block of 30 % of each side anywhere in the top-left 60 %; relit: darker,
    with more contrast.
    """
    rng = np.random.default_rng(seed)
    size = np.array(photo.size)
    corner = (rng.uniform(0.05, 0.2, 2) * size).astype(int)
    angle = float(rng.uniform(10, 20))
    block = (rng.uniform(0, 0.6, 2) * size).astype(int)
    occluded = photo.copy()
    ImageDraw.Draw(occluded).rectangle([*block, *(block + (0.3 * size).astype(int))], fill=(40, 40, 40))
    darker = ImageEnhance.Brightness(photo).enhance(0.65)
    return {
        "crop": photo.crop([*corner, *(corner + (0.7 * size).astype(int))]),
        "rotated": photo.rotate(angle, resample=Image.BILINEAR, expand=True, fillcolor=(128, 128, 128)),
        "occluded": occluded,
        "relit": ImageEnhance.Contrast(darker).enhance(1.3),
    }


def write_gallery(folder: Path) -> Path:
    """One photo per enrolled name as ``folder/<name>/<name>.jpg``, the layout ``enroll_folder`` reads."""
    for name in ENROLLED:
        (folder / name).mkdir(parents=True, exist_ok=True)
        sample_photo(name).save(folder / name / f"{name}.jpg", quality=92)
    return folder
