"""Any shape, mode and format of picture within the limits gets an answer or an ImageError, never a crash.

A property test through the public API: bytes (or a PIL image) -> ``load_image`` -> ``Recognizer``
on a one-instance library, over sizes from 1 px to 70000 px on a side, extreme aspect ratios and
every PIL mode a user can hand in.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from instrec.config import Config
from instrec.errors import ImageError
from instrec.images import load_image
from instrec.recognizer import Recognizer
from tests.photos import sample_photo

MODES = ("L", "LA", "RGB", "RGBA", "P", "CMYK", "I;16", "I", "F", "1")
# Where each mode can be written; "pil" hands the image itself to the engine.
FORMATS = {
    "1": ("PNG", "TIFF", "BMP", "GIF", "pil"),
    "L": ("PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP", "pil"),
    "LA": ("PNG", "TIFF", "pil"),
    "RGB": ("PNG", "JPEG", "TIFF", "BMP", "WEBP", "pil"),
    "RGBA": ("PNG", "TIFF", "WEBP", "pil"),
    "P": ("PNG", "GIF", "TIFF", "BMP", "pil"),
    "CMYK": ("JPEG", "TIFF", "pil"),
    "I;16": ("PNG", "TIFF", "pil"),
    "I": ("TIFF", "pil"),
    "F": ("TIFF", "pil"),
}
LARGEST_SIDE = {"JPEG": 65_500, "GIF": 65_535, "WEBP": 16_383}  # libjpeg stops short of the format's 65535

elongated = st.tuples(st.integers(1, 70_000), st.integers(1, 48))
any_aspect = st.tuples(st.integers(1, 1500), st.integers(1, 1500))
sizes = st.one_of(elongated, elongated.map(lambda s: s[::-1]), any_aspect)


class Picture:
    """File bytes or a PIL image, shown by its size, mode and format: a falsifying example's repr, not its bytes."""

    def __init__(self, src: Any, what: str):
        self.src, self.what = src, what

    def __repr__(self) -> str:
        return self.what


@st.composite
def pictures(draw: st.DrawFn) -> Picture:
    """A picture of a drawn size, mode and format."""
    width, height = draw(sizes)
    mode = draw(st.sampled_from(MODES))
    fmt = draw(st.sampled_from([f for f in FORMATS[mode] if max(width, height) <= LARGEST_SIDE.get(f, 10**9)]))
    seed = draw(st.integers(0, 2**32 - 1))
    image = _picture(width, height, mode, seed)
    if fmt == "pil":
        return Picture(image, f"{width}x{height} {mode} PIL image")
    out = io.BytesIO()
    image.save(out, format=fmt)
    return Picture(out.getvalue(), f"{width}x{height} {mode} {fmt}")


def _picture(width: int, height: int, mode: str, seed: int) -> Image.Image:
    """Blocky random content: cheap to make and to encode at 70000 px, yet not a flat colour."""
    rng = np.random.default_rng(seed)
    tile = (min(width, 8), min(height, 8))
    if mode in ("I;16", "I", "F"):
        values = {"I;16": rng.integers(0, 65536, tile[::-1]), "I": rng.integers(-(2**20), 2**20, tile[::-1])}
        array = values.get(mode, rng.random(tile[::-1]))
        small = Image.fromarray(array.astype({"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]))
        small = small if small.mode == mode else small.convert(mode)
        return small.resize((width, height), Image.Resampling.NEAREST)
    rgba = Image.fromarray(rng.integers(0, 256, (*tile[::-1], 4), dtype=np.uint8), "RGBA")
    rgba = rgba.resize((width, height), Image.Resampling.NEAREST)
    return rgba.convert("RGB").convert("P") if mode == "P" else rgba.convert(mode)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Any:
    config = Config().with_overrides({"home": str(tmp_path_factory.mktemp("shapes")), "decision.auto_calibrate": False})
    with Recognizer(config, embedder=embedder) as recognizer:
        recognizer.enroll([sample_photo("astronaut")], instance_id="astronaut")
        yield recognizer


def _answers_or_refuses(library: Any, picture: Picture, enrol: bool) -> None:
    src, what = picture.src, picture.what
    try:
        loaded = load_image(src, library.config.limits)
    except ImageError:
        return
    result = library.recognize(src, k=1)
    assert [m.instance_id for m in result.matches] == ["astronaut"], what
    assert max(loaded.pixels.size) <= 1024 and min(loaded.pixels.size) >= 1, what
    if enrol:
        enrolled = library.enroll([src], instance_id="shape")
        assert enrolled.added or enrolled.duplicates, what
        library.remove("shape")


_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(max_examples=60, **_COMMON)
@given(picture=pictures(), enrol=st.booleans())
def test_every_picture_is_answered_or_refused_with_an_image_error(library, picture, enrol):
    _answers_or_refuses(library, picture, enrol)


@pytest.mark.slow
@settings(max_examples=500, **_COMMON)
@given(picture=pictures(), enrol=st.booleans())
def test_every_picture_is_answered_or_refused_many_examples(library, picture, enrol):
    _answers_or_refuses(library, picture, enrol)


def test_a_line_thin_picture_is_answered_when_min_side_allows_it(tmp_path, embedder):
    """With limits.min_side=1 a 1024x1 picture reaches every stage: each must cope with a 1 px side."""
    config = Config().with_overrides({"home": str(tmp_path), "limits.min_side": 1})
    with Recognizer(config, embedder=embedder) as recognizer:
        recognizer.enroll([sample_photo("astronaut")], instance_id="astronaut")
        for size in ((1024, 1), (1, 1024), (4000, 4)):
            assert recognizer.recognize(Image.new("RGB", size, (200, 30, 30))).matches
