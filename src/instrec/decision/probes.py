"""Query-like probes for calibration: synthetic photos of enrolled images, and real strangers.

An enrolled shot is a clean catalogue image; a query is a photo of the object, smaller, tilted,
partly hidden, in other light, against other things. Scored against the gallery, the clean shot
measures catalogue-vs-catalogue similarity, which is not what the threshold has to separate. Its
probes look like queries instead: the shot warped in perspective and pasted small onto a real scene,
or a tilted partial crop with an occluder, then re-lit, blurred and JPEG-compressed. A probe's score
for its own instance is a genuine score; its best other instance is an impostor score.

The strangers are real scene photos that ship with instrec (``backgrounds/``, public-domain and CC0
samples of scikit-image: see CREDITS.txt), whole and as mirrored crops. They are the backdrops of the
scene probes too. Every probe is a deterministic function of the shot and a seed.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

BACKGROUNDS = Path(__file__).with_name("backgrounds")
PROBE_SIDE = 480  # long side of a probe photo: what a phone photo is worked at
_STRANGER_CROP = 0.7


@cache
def background_photos() -> tuple[Image.Image, ...]:
    """The shipped scene photos, RGB, in name order."""
    return tuple(Image.open(path).convert("RGB") for path in sorted(BACKGROUNDS.glob("*.jpg")))


def stranger_views(photo: Image.Image) -> list[Image.Image]:
    """A scene photo as two strangers: whole, and as a mirrored crop."""
    w, h = photo.size
    cw, ch = round(_STRANGER_CROP * w), round(_STRANGER_CROP * h)
    return [photo, ImageOps.mirror(photo.crop((w - cw, h - ch, w, h)))]


def strangers() -> list[Image.Image]:
    """Photos of things no gallery holds (unless it enrolled one of the shipped pictures)."""
    return [view for photo in background_photos() for view in stranger_views(photo)]


def probes(shot: Image.Image, seed: int, backdrops: list[Image.Image] | None = None) -> list[Image.Image]:
    """Two query-like photos of ``shot``: placed in a scene, and a partial view with an occluder.

    ``backdrops`` are the scenes to place it in (default: the shipped ones); an empty list uses
    plain noise, for galleries that hold the shipped scenes themselves.
    """
    rng = np.random.default_rng(seed)
    shot = shot.convert("RGB")
    scenes = background_photos() if backdrops is None else backdrops
    backdrop = scenes[int(rng.integers(len(scenes)))] if scenes else _noise(rng)
    return [_degraded(_in_scene(shot, backdrop, rng), rng), _degraded(_partial(shot, rng), rng)]


def _in_scene(shot: Image.Image, backdrop: Image.Image, rng: np.random.Generator) -> Image.Image:
    """``shot`` at 40-70 % of the scene's long side, its corners moved by up to 12 % (a tilted view)."""
    scene = _fit(backdrop, PROBE_SIDE)
    sw, sh = scene.size
    scale = rng.uniform(0.4, 0.7) * max(sw, sh) / max(shot.size)
    w, h = max(8, round(shot.width * scale)), max(8, round(shot.height * scale))
    w, h = min(w, sw), min(h, sh)
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    moved = corners + rng.uniform(-0.12, 0.12, (4, 2)) * [w, h]
    moved = (moved - moved.min(axis=0)).astype(np.float32)
    size = np.ceil(moved.max(axis=0)).astype(int) + 1
    warp = cv2.getPerspectiveTransform(corners, moved)
    small = np.asarray(shot.resize((w, h), Image.Resampling.LANCZOS))
    pixels = cv2.warpPerspective(small, warp, tuple(size), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), warp, tuple(size), flags=cv2.INTER_LINEAR)
    placed = Image.fromarray(pixels).crop((0, 0, min(size[0], sw), min(size[1], sh)))
    alpha = Image.fromarray(mask).crop((0, 0, placed.width, placed.height))
    x = int(rng.integers(0, max(1, sw - placed.width + 1)))
    y = int(rng.integers(0, max(1, sh - placed.height + 1)))
    scene.paste(placed, (x, y), alpha)
    return scene


def _partial(shot: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A 60-85 % crop of ``shot``, turned by up to 12 degrees, a dark block over a sixth of it."""
    w, h = shot.size
    share = rng.uniform(0.6, 0.85)
    cw, ch = round(share * w), round(share * h)
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    view = _fit(shot.crop((x, y, x + cw, y + ch)), PROBE_SIDE)
    view = view.rotate(
        float(rng.uniform(-12, 12)),
        resample=Image.Resampling.BILINEAR,
        expand=True,
        fillcolor=tuple(int(v) for v in rng.integers(60, 200, 3)),
    )
    vw, vh = view.size
    bw, bh = round(vw * 0.4), round(vh * 0.4)
    bx, by = int(rng.integers(0, vw - bw + 1)), int(rng.integers(0, vh - bh + 1))
    view.paste(tuple(int(v) for v in rng.integers(20, 90, 3)), (bx, by, bx + bw, by + bh))
    return view


def _degraded(photo: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Other light and white balance, a little blur and noise, JPEG at phone-upload quality."""
    photo = ImageEnhance.Brightness(photo).enhance(rng.uniform(0.65, 1.3))
    photo = ImageEnhance.Contrast(photo).enhance(rng.uniform(0.75, 1.2))
    balance = rng.uniform(0.85, 1.15, 3)
    pixels = np.asarray(photo, np.float32) * balance
    pixels += rng.normal(0, rng.uniform(1, 5), pixels.shape)
    photo = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    photo = photo.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 1.2)))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=int(rng.integers(55, 85)))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _fit(image: Image.Image, side: int) -> Image.Image:
    """A copy with its long side ``side``."""
    scale = side / max(image.size)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.LANCZOS)


def _noise(rng: np.random.Generator) -> Image.Image:
    """A plain backdrop: smooth random colour blobs (no keypoints worth matching)."""
    small = rng.integers(40, 215, (6, 8, 3)).astype(np.uint8)
    return Image.fromarray(small).resize((PROBE_SIDE, PROBE_SIDE * 3 // 4), Image.Resampling.BICUBIC)
