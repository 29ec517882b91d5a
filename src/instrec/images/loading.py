"""Turn any supported image input into a trusted RGB picture, or a typed error naming its source.

Every input goes through the same checks: byte and pixel limits are enforced from the file size and
the header *before* any pixel is decoded (defeats decompression bombs), and so is the cost of the
work: ``limits.max_decoded_pixels`` caps the pixels decoded at full resolution (a JPEG is decoded
at reduced scale, every other format in full), and a picture too elongated to keep
``limits.min_side`` pixels across at working size is refused. Decoding is strict (a
truncated file is an error, never silently grey-padded), EXIF orientation is applied, and one colour
policy holds: 8-bit RGB, with transparency composited over WHITE (the usual background of product
cut-outs, so a cut-out matches a photo of the same object on a white table). The alpha channel of a
picture with transparent pixels is kept alongside: the object's edge looks the other way round
against a dark background, which local features are told (:mod:`instrec.rerank.features`).

Every stage works at 640 px or less, so pixels are kept at ``WORKING_SIDE`` on the long side at
most: a 12 MP phone JPEG is decoded at a quarter of its size straight from the DCT (JPEG draft
mode), other formats are downscaled in their own mode before any colour conversion, and no
full-size buffer outlives the decoding. The file's bytes are stored as they came.

No PIL global state (``MAX_IMAGE_PIXELS``, ``LOAD_TRUNCATED_IMAGES``) or warning filter is changed:
files are opened without ``Image.open``'s own bomb check (whose warning would reach the terminal
and whose message quotes PIL's threshold, not ours), the limits are checked here instead, which
keeps this safe to call from many threads.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, cast

import numpy as np
from PIL import ExifTags, Image

from instrec.config import LimitsConfig
from instrec.errors import (
    CorruptImageError,
    ImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    NotAnImageError,
)

ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray

IMAGE_EXTENSIONS: frozenset[str] = frozenset(".jpg .jpeg .png .bmp .gif .tif .tiff .webp .pgm .ppm .pbm .pnm".split())
"""Lower-case file suffixes (with the dot, as ``Path.suffix``) that :func:`iter_image_files` picks."""

# Only these decoders may run: no EPS (spawns Ghostscript) or exotic plugins on untrusted uploads.
_FORMATS = ("JPEG", "PNG", "BMP", "DIB", "GIF", "TIFF", "WEBP", "PPM")
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
BACKGROUND = (255, 255, 255)
# Long side of the pixels every stage gets: above the default tuning.rerank.max_side and the embedding's
# 224 px, with room for raising tuning.rerank.max_side. JPEGs are drafted to at least 3/4 of it (DCT
# scaling by 1/2, 1/4 or 1/8), then anything larger is resized down to it.
WORKING_SIDE = 1024
_DRAFT_SIDE = WORKING_SIDE * 3 // 4
# What PIL raises for broken data differs per plugin; all of them mean "corrupt".
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error, zlib.error)
# PIL's own check still runs inside a few plugins (a GIF frame reaching past the screen): its verdict
# is a refusal like ours.
_BOMBS = (Image.DecompressionBombError, Image.DecompressionBombWarning)
# What a plugin raises when the data is not its format: Image.open then tries the next one.
_NOT_THIS_FORMAT = (SyntaxError, IndexError, TypeError, struct.error)
# EXIF orientation -> the transposition that displays the picture upright (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_QUARTER_TURNS = {_UPRIGHT[5], _UPRIGHT[6], _UPRIGHT[7], _UPRIGHT[8]}  # these swap width and height


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image plus the exact bytes the library stores and hashes for it."""

    pixels: Image.Image  # mode "RGB", EXIF orientation applied, fully loaded, long side <= WORKING_SIDE
    source: str  # path as given, "<bytes>", "<PIL image>", "<array>", or the name= passed in
    original: bytes | None = None  # the file's bytes; None for PIL/array input
    size: tuple[int, int] | None = None  # the image's own (width, height), oriented; None: that of pixels
    alpha: Image.Image | None = None  # mode "L", same size as pixels, where the source has transparent pixels

    @functools.cached_property
    def encoded(self) -> bytes:
        """Original file bytes, or a canonical PNG of the pixels for PIL/array input.

        Computed on first use: recognising an array must not pay for a PNG encoding it never needs.
        """
        if self.original is not None:
            return self.original
        buf = io.BytesIO()
        self.pixels.save(buf, format="PNG")
        return buf.getvalue()

    @functools.cached_property
    def sha256(self) -> str:
        """Hex digest of ``encoded``: the identity used to spot duplicate enrolments."""
        return hashlib.sha256(self.encoded).hexdigest()

    @property
    def width(self) -> int:
        return (self.size or self.pixels.size)[0]

    @property
    def height(self) -> int:
        return (self.size or self.pixels.size)[1]


def load_image(src: ImageInput, limits: LimitsConfig = LimitsConfig(), *, name: str | None = None) -> LoadedImage:
    """Decode ``src`` into an RGB :class:`LoadedImage`; raise an ``ImageError`` naming the source."""
    if isinstance(src, Image.Image):
        source = name or "<PIL image>"
        return _from_pixels(*_decode(src, source, limits), source)
    if isinstance(src, np.ndarray):
        source = name or "<array>"
        im = _from_array(src, source, limits)
        return _from_pixels(*_to_rgb(im), im.size, source)
    if isinstance(src, (bytes, bytearray, memoryview)):
        source, data = name or "<bytes>", bytes(src)
        if len(data) > limits.max_bytes:
            raise ImageTooLargeError(source, f"{len(data)} bytes exceeds limits.max_bytes={limits.max_bytes}")
    elif isinstance(src, (str, os.PathLike)):
        source = name or os.fsdecode(src)
        data = _read_file(Path(os.fsdecode(src)), source, limits)
    else:
        raise TypeError(f"load_image expects a path, bytes, PIL image or numpy array, got {type(src).__name__}")
    if not data:
        raise CorruptImageError(source, "empty (0 bytes)")
    try:
        opened = _open(data)
    except _BOMBS as exc:
        raise ImageTooLargeError(source, f"refused before decoding: {exc}") from None
    except _DECODE_ERRORS as exc:
        raise CorruptImageError(source, f"unreadable image header: {exc}") from None
    if opened is None:
        raise NotAnImageError(source, f"not an image in a supported format ({', '.join(_FORMATS)})")
    with opened:
        rgb, alpha, size = _decode(opened, source, limits)
    return LoadedImage(rgb, source, data, size, alpha)


def load_images(
    sources: Sequence[ImageInput], limits: LimitsConfig = LimitsConfig(), *, skip_bad: bool = False
) -> tuple[list[LoadedImage], list[ImageError]]:
    """:func:`load_image` of each source; with ``skip_bad`` a bad one is set aside with its error
    instead of raising, so one unreadable file in a batch loses nothing else."""
    loaded, errors = [], []
    for source in sources:
        try:
            loaded.append(load_image(source, limits))
        except ImageError as error:
            if not skip_bad:
                raise
            errors.append(error)
    return loaded, errors


def iter_image_files(folder: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """Image files directly in ``folder`` (by extension, hidden ones skipped), sorted by name; then,
    if ``recursive``, those of its subfolders (hidden ones skipped) in order of their paths."""
    path = Path(folder)
    if not path.is_dir():
        raise ImageError(os.fsdecode(folder), "not a folder")
    files = (p for p in path.iterdir() if not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    below = sorted(d for d in path.rglob("*") if d.is_dir() and not d.name.startswith(".")) if recursive else []
    return sorted(files, key=lambda p: p.name) + [file for d in below for file in iter_image_files(d)]


def _read_file(path: Path, source: str, limits: LimitsConfig) -> bytes:
    """Read at most ``max_bytes`` (+1 to detect more): the size is checked before reading it all."""
    if path.is_dir():
        raise ImageError(source, "is a folder, not an image file")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limits.max_bytes:
                raise ImageTooLargeError(source, f"{size} bytes exceeds limits.max_bytes={limits.max_bytes}")
            data = f.read(limits.max_bytes + 1)  # st_size may lie (pipes, growing files)
    except FileNotFoundError:
        raise ImageError(source, "no such file") from None
    except OSError as exc:
        raise ImageError(source, f"cannot read file: {exc.strerror or exc}") from None
    if len(data) > limits.max_bytes:
        raise ImageTooLargeError(source, f"more than limits.max_bytes={limits.max_bytes} bytes")
    return data


def _open(data: bytes) -> Image.Image | None:
    """``Image.open(..., formats=_FORMATS)`` without PIL's decompression-bomb check (ours follows on
    the header); lazy: reads the header only. None if no allowed format takes the data."""
    Image.init()  # registers the TIFF and WebP plugins too
    prefix = data[:16]
    for fmt in _FORMATS:
        factory, accept = Image.OPEN[fmt]
        verdict = accept is None or accept(prefix)
        if isinstance(verdict, str) or not verdict:  # a str: PIL's "looks like it, but unsupported here"
            continue
        try:
            return factory(io.BytesIO(data), "")
        except _NOT_THIS_FORMAT:
            continue
    return None


def _working_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) scaled so the long side is at most ``WORKING_SIDE``; each side at least 1."""
    if max(width, height) <= WORKING_SIDE:
        return width, height
    scale = WORKING_SIDE / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _check_size(width: int, height: int, source: str, limits: LimitsConfig) -> None:
    """Refuse from the dimensions alone, before pixels are decoded or allocated."""
    if width * height > limits.max_pixels:
        raise ImageTooLargeError(
            source, f"{width}x{height} = {width * height} pixels exceeds limits.max_pixels={limits.max_pixels}"
        )
    if min(width, height) < max(limits.min_side, 1):
        raise ImageTooSmallError(source, f"{width}x{height}: smaller side is below limits.min_side={limits.min_side}")
    # Downscaled to working size, a strip would be a line or less across: nothing any stage can describe.
    if min(_working_size(width, height)) < limits.min_side:
        ratio = max(width, height) / min(width, height)
        raise ImageTooSmallError(
            source,
            f"{width}x{height}: too elongated (aspect ratio {ratio:.0f}:1); scaled to {WORKING_SIDE} px on the long side, "
            f"its short side would be below limits.min_side={limits.min_side}",
        )


def _check_decoded(width: int, height: int, source: str, limits: LimitsConfig) -> None:
    """Refuse what would cost too much to decode and convert: the pixels that would be made, not the header's."""
    if width * height > limits.max_decoded_pixels:
        raise ImageTooLargeError(
            source,
            f"{width}x{height} = {width * height} pixels to decode at full resolution exceeds "
            f"limits.max_decoded_pixels={limits.max_decoded_pixels} (only JPEG is decoded at reduced scale)",
        )


def _decode(im: Image.Image, source: str, limits: LimitsConfig) -> tuple[Image.Image, Image.Image | None, tuple[int, int]]:
    """Check the header size, then decode strictly (first frame) at working size, orient, and
    convert to RGB; also its alpha (None if opaque) and the image's own oriented size."""
    _check_size(im.width, im.height, source, limits)
    width, height = im.size
    if im.format == "JPEG" and max(width, height) > WORKING_SIDE:
        scale = _DRAFT_SIDE / max(width, height)  # decodes at 1/2, 1/4 or 1/8 scale, not below this
        im.draft(im.mode, (math.ceil(width * scale), math.ceil(height * scale)))  # sets the decoder up, reads nothing
    _check_decoded(im.width, im.height, source, limits)
    try:
        im.load()
        turn = _UPRIGHT.get(im.getexif().get(ExifTags.Base.Orientation, 1))
        rgb, alpha = _to_rgb(im)
        if turn is not None:  # on the working-size pixels: a full-size copy would cost more than the decoding
            rgb, alpha = rgb.transpose(turn), None if alpha is None else alpha.transpose(turn)
        turned = turn in _QUARTER_TURNS
        return rgb, alpha, ((height, width) if turned else (width, height))
    except _BOMBS as exc:
        raise ImageTooLargeError(source, str(exc)) from None
    except _DECODE_ERRORS as exc:
        raise CorruptImageError(source, f"corrupt or truncated image data: {exc}") from None


def _to_rgb(im: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """One colour policy for every mode: 8-bit RGB at most ``WORKING_SIDE`` on the long side,
    transparency composited over white; and the alpha channel where some pixel is not fully opaque.

    Downscaling comes first, in the picture's own mode, so the conversions work on small pixels.
    """
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        im = Image.fromarray(_rescale(np.asarray(im)))
    transparent = im.mode in _ALPHA_MODES or "transparency" in im.info
    if transparent and im.mode not in ("RGBA", "LA"):
        im = im.convert("RGBA")  # a palette or colour key means nothing once resampled
    elif im.mode in ("1", "P"):
        im = im.convert("L" if im.mode == "1" else "RGB")  # resampled as grey levels and colours, not as indices
    im = _bounded(im)
    if transparent:
        rgba = im.convert("RGBA")
        alpha = rgba.getchannel("A")
        lowest, _ = cast("tuple[int, int]", alpha.getextrema())  # one band: (min, max)
        background = Image.new("RGBA", im.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB"), alpha if lowest < 255 else None
    return im.convert("RGB"), None


def _rescale(a: np.ndarray) -> np.ndarray:
    """Map 16/32-bit integer or float pixels to uint8 as their type and range suggest."""
    f = a.astype(np.float64)
    f[~np.isfinite(f)] = 0.0
    lo, hi = (float(f.min()), float(f.max())) if f.size else (0.0, 0.0)
    if a.dtype.kind == "u" and a.dtype.itemsize == 2 or (lo >= 0 and 255 < hi <= 65535):
        f = f / 257  # full 16-bit range: 65535 -> 255, 32768 -> 128
    elif a.dtype.kind == "f" and lo >= 0 and hi <= 1:
        f = f * 255
    elif lo < 0 or hi > 255:
        f = (f - lo) * (255 / (hi - lo))  # arbitrary range (e.g. signed, depth): stretch
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def _from_array(a: np.ndarray, source: str, limits: LimitsConfig) -> Image.Image:
    """HxW / HxWx1 / HxWx3 / HxWx4 arrays of uint8, uint16, bool, float in [0, 1] (or ints in 0..255)."""
    if a.dtype.kind not in "biuf":
        raise ImageError(source, f"array dtype {a.dtype} is not a numeric pixel type")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageError(source, f"array shape {a.shape} is not HxW, HxWx1, HxWx3 or HxWx4")
    _check_size(a.shape[1], a.shape[0], source, limits)
    _check_decoded(a.shape[1], a.shape[0], source, limits)
    if a.dtype.kind == "b":
        a = a.astype(np.uint8) * 255
    elif a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise ImageError(source, "float array contains NaN or infinity")
        if a.min() < 0 or a.max() > 1:
            raise ImageError(source, f"float array values must lie in [0, 1], got [{a.min()}, {a.max()}]")
        a = np.rint(a.astype(np.float64) * 255)
    elif a.dtype.kind == "u" and a.dtype.itemsize == 2:
        a = np.rint(a / 257)
    elif a.dtype != np.uint8 and (a.min() < 0 or a.max() > 255):
        raise ImageError(source, f"{a.dtype} array values must lie in 0..255 (or use uint16, or float in [0, 1])")
    return Image.fromarray(np.ascontiguousarray(a.astype(np.uint8)))


def _bounded(im: Image.Image) -> Image.Image:
    """``im``, or a copy with its long side ``WORKING_SIDE`` if it is larger."""
    size = _working_size(*im.size)
    return im if size == im.size else im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _from_pixels(rgb: Image.Image, alpha: Image.Image | None, size: tuple[int, int], source: str) -> LoadedImage:
    """PIL/array input has no file: store a canonical PNG of the working pixels (a fresh image, so
    no metadata leaks in)."""
    return LoadedImage(Image.frombytes("RGB", rgb.size, rgb.tobytes()), source, size=size, alpha=alpha)
