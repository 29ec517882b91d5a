"""Augmented support views: extra gallery vectors per shot, so a query that shows part of the object,
a tilted camera or another light still lands near one of them (issue: 1-3 shots cannot cover the
views queries come in). Deterministic: the same shot always gets the same views, so re-enrolment
and re-embedding reproduce them.
"""

from __future__ import annotations

from typing import Callable

from PIL import Image, ImageEnhance

ViewMaker = Callable[[Image.Image], dict[str, Image.Image]]


def _crops(image: Image.Image) -> dict[str, Image.Image]:
    """Four 70% corner crops and a 60% centre crop: partial views and closer framings."""
    w, h = image.size
    cw, ch = round(0.7 * w), round(0.7 * h)
    boxes = {
        "crop-tl": (0, 0, cw, ch), "crop-tr": (w - cw, 0, w, ch),
        "crop-bl": (0, h - ch, cw, h), "crop-br": (w - cw, h - ch, w, h),
        "crop-centre": (round(0.2 * w), round(0.2 * h), round(0.8 * w), round(0.8 * h)),
    }
    return {name: image.crop(box) for name, box in boxes.items()}


def _rotations(image: Image.Image) -> dict[str, Image.Image]:
    """±15 degrees, cropped back to the rotated content so no fill colour enters the descriptor."""
    out = {}
    for angle in (-15, 15):
        rotated = image.rotate(angle, resample=Image.Resampling.BILINEAR, expand=False)
        w, h = image.size
        out[f"rotate{angle:+d}"] = rotated.crop((round(0.13 * w), round(0.13 * h), round(0.87 * w), round(0.87 * h)))
    return out


def _light(image: Image.Image) -> dict[str, Image.Image]:
    """Darker and lower-contrast, brighter and warmer: shop lights and phone exposure."""
    dark = ImageEnhance.Contrast(ImageEnhance.Brightness(image).enhance(0.6)).enhance(0.8)
    r, g, b = ImageEnhance.Brightness(image).enhance(1.3).split()
    warm = Image.merge("RGB", (r.point(lambda v: min(255, int(v * 1.1))), g, b.point(lambda v: int(v * 0.85))))
    return {"light-dark": dark, "light-warm": warm}


VIEW_FAMILIES: dict[str, ViewMaker] = {"crops": _crops, "rotations": _rotations, "light": _light}


def support_views(image: Image.Image, families: tuple[str, ...]) -> dict[str, Image.Image]:
    """Named extra views of an RGB shot for the given families (see ``VIEW_FAMILIES``)."""
    views: dict[str, Image.Image] = {}
    for family in families:
        views.update(VIEW_FAMILIES[family](image))
    return views
