"""Tests for the image-input stage. Every fixture is generated here into tmp_path."""

from __future__ import annotations

import gc
import hashlib
import io
import struct
import time
import tracemalloc
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from instrec.config import LimitsConfig
from instrec.errors import (
    CorruptImageError,
    ImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    NotAnImageError,
)
from instrec.images import IMAGE_EXTENSIONS, LoadedImage, iter_image_files, load_image, load_images
from instrec.images.loading import WORKING_SIDE

WHITE = (255, 255, 255)


def encode(im: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


def noise(w: int = 64, h: int = 48, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def huge_png(width: int, height: int) -> bytes:
    """A valid 1-bit all-black PNG of any size, built row by row: a few KB on disk, no big buffer."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" + bytes((width + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any pixel data is decoded."""

    def forbidden(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", forbidden)


# ---------------------------------------------------------------- basic inputs and metadata


def test_path_input_keeps_original_bytes_and_hash(tmp_path):
    data = encode(noise())
    path = write(tmp_path, "a.png", data)
    for src in (str(path), path):
        img = load_image(src)
        assert isinstance(img, LoadedImage)
        assert img.pixels.mode == "RGB" and (img.width, img.height) == (64, 48)
        assert img.source == str(path)
        assert img.encoded == data and img.sha256 == hashlib.sha256(data).hexdigest()
        assert np.array_equal(np.asarray(img.pixels), np.asarray(noise()))
    assert load_image(path, name="query-7").source == "query-7"


def test_bytes_input():
    data = encode(noise(), "JPEG", quality=95)
    img = load_image(data)
    assert img.source == "<bytes>" and img.encoded == data
    assert img.sha256 == hashlib.sha256(data).hexdigest()
    assert load_image(bytearray(data), name="upload.jpg").source == "upload.jpg"


def test_pil_and_array_input_store_canonical_png():
    im = noise()
    from_pil, from_arr = load_image(im), load_image(np.asarray(im))
    assert (from_pil.source, from_arr.source) == ("<PIL image>", "<array>")
    assert from_pil.sha256 == from_arr.sha256 == hashlib.sha256(from_pil.encoded).hexdigest()
    with Image.open(io.BytesIO(from_pil.encoded)) as back:
        assert back.format == "PNG" and back.mode == "RGB"
        assert np.array_equal(np.asarray(back), np.asarray(im))
    # Metadata on the input does not change the stored bytes.
    im.info["icc_profile"] = b"junk"
    assert load_image(im).sha256 == from_pil.sha256


def test_lazy_pil_input_is_loaded(tmp_path):
    path = write(tmp_path, "a.png", encode(noise()))
    with Image.open(path) as lazy:
        img = load_image(lazy)
    img.pixels.load()  # must not touch the closed file
    assert np.array_equal(np.asarray(img.pixels), np.asarray(noise()))


def test_unsupported_type_is_a_type_error():
    with pytest.raises(TypeError):
        load_image(12345)  # type: ignore[arg-type]


# ---------------------------------------------------------------- typed errors


@pytest.mark.parametrize("as_bytes", [False, True])
def test_empty_input_is_corrupt(tmp_path, as_bytes):
    src = b"" if as_bytes else write(tmp_path, "empty.jpg", b"")
    with pytest.raises(CorruptImageError, match="empty") as err:
        load_image(src, name="the-upload" if as_bytes else None)
    assert err.value.source == ("the-upload" if as_bytes else str(src))


@pytest.mark.parametrize(
    "data",
    [
        b"just some text\nnot a picture\n" * 10,
        np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",  # EPS would spawn Ghostscript
    ],
    ids=["text", "random", "pdf", "eps"],
)
def test_not_an_image(tmp_path, data):
    path = write(tmp_path, "thing.jpg", data)
    with pytest.raises(NotAnImageError) as err:
        load_image(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image_is_corrupt(tmp_path, fmt):
    data = encode(noise(200, 150), fmt)
    path = write(tmp_path, f"cut.{fmt.lower()}", data[: int(len(data) * 0.6)])
    with pytest.raises(CorruptImageError) as err:
        load_image(path)
    assert str(path) in str(err.value)
    with pytest.raises(CorruptImageError):
        load_image(path.read_bytes())
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # global PIL state untouched


def test_too_many_bytes_refused_before_reading(tmp_path):
    path = tmp_path / "sparse.png"
    with open(path, "wb") as f:
        f.truncate(1 << 30)  # 1 GiB sparse file: costs no disk
    tracemalloc.start()
    try:
        with pytest.raises(ImageTooLargeError, match="max_bytes") as err:
            load_image(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # not even limits.max_bytes (50 MB) were read
    assert str(path) in str(err.value)
    with pytest.raises(ImageTooLargeError):
        load_image(encode(noise()), LimitsConfig(max_bytes=100))


def test_pixel_bomb_refused_from_header(tmp_path, no_decoding):
    data = huge_png(20_000, 20_000)
    assert len(data) < 200_000
    path = write(tmp_path, "bomb.png", data)
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError) as err:
        load_image(path)
    assert time.perf_counter() - start < 1.0
    assert str(path) in str(err.value)
    # Our own limit, well below PIL's: refused from the header, nothing decoded.
    with pytest.raises(ImageTooLargeError, match="max_pixels"):
        load_image(huge_png(2000, 1000), LimitsConfig(max_pixels=1_000_000))


def test_pixel_limit_applies_to_arrays_and_pil():
    limits = LimitsConfig(max_pixels=1000)
    with pytest.raises(ImageTooLargeError):
        load_image(np.zeros((40, 40), np.uint8), limits)
    with pytest.raises(ImageTooLargeError):
        load_image(Image.new("RGB", (40, 40)), limits)


@pytest.mark.parametrize("side", [10_000, 15_000, 20_000])  # above PIL's warning threshold, and its error one
def test_a_bomb_is_refused_with_our_limit_in_the_message_and_no_pil_warning(side, no_decoding):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageTooLargeError, match=r"limits\.max_pixels=64000000") as err:
            load_image(huge_png(side, side))
    assert str(Image.MAX_IMAGE_PIXELS) not in str(err.value) and str(2 * Image.MAX_IMAGE_PIXELS) not in str(err.value)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert Image.MAX_IMAGE_PIXELS is not None  # global PIL state untouched


def test_raising_max_pixels_above_pils_threshold_leaves_our_limits_in_charge(no_decoding):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageTooLargeError, match="max_decoded_pixels"):
            load_image(huge_png(20_000, 20_000), LimitsConfig(max_pixels=10**10), name="x")
    assert not caught


def test_an_8000_px_png_is_refused_from_its_header_at_no_cost(no_decoding):
    data = huge_png(8000, 7999)
    tracemalloc.start()
    start = time.process_time()
    try:
        with pytest.raises(ImageTooLargeError, match="max_decoded_pixels"):
            load_image(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.process_time() - start < 0.5
    assert peak < 5_000_000  # no pixel buffer was made


def test_decoded_pixels_are_capped_but_a_jpeg_counts_at_its_reduced_scale():
    limits = LimitsConfig(max_decoded_pixels=1_000_000)
    with pytest.raises(ImageTooLargeError, match="max_decoded_pixels=1000000"):
        load_image(encode(noise(2048, 1536)), limits)
    loaded = load_image(encode(noise(2048, 1536), "JPEG"), limits)  # decoded at half size
    assert (loaded.width, loaded.height) == (2048, 1536)
    for src in (np.zeros((1536, 2048, 3), np.uint8), noise(2048, 1536)):
        with pytest.raises(ImageTooLargeError, match="max_decoded_pixels"):
            load_image(src, limits)


@pytest.mark.parametrize("size", [(65_000, 16), (16, 65_000), (2000, 16)])
def test_a_picture_too_elongated_for_the_working_size_is_refused(size, no_decoding):
    with pytest.raises(ImageTooSmallError, match="too elongated"):
        load_image(huge_png(*size))


def test_an_elongated_picture_keeps_min_side_pixels_across():
    loaded = load_image(encode(noise(4096, 64)))
    assert loaded.pixels.size == (WORKING_SIDE, 16)


def test_too_small(tmp_path):
    path = write(tmp_path, "thin.png", encode(Image.new("RGB", (200, 10))))
    with pytest.raises(ImageTooSmallError, match="min_side") as err:
        load_image(path)
    assert str(path) in str(err.value)
    assert load_image(path, LimitsConfig(min_side=10)).height == 10
    with pytest.raises(ImageTooSmallError):
        load_image(np.zeros((0, 0, 3), np.uint8))


def test_missing_path(tmp_path):
    path = tmp_path / "nope.jpg"
    with pytest.raises(ImageError, match="no such file") as err:
        load_image(path)
    assert err.value.source == str(path)


def test_directory_path(tmp_path):
    folder = tmp_path / "photos.jpg"
    folder.mkdir()
    with pytest.raises(ImageError, match="folder") as err:
        load_image(folder)
    assert err.value.source == str(folder)


# ---------------------------------------------------------------- colour conversions


def pixel(img: LoadedImage, xy=(0, 0)) -> tuple[int, int, int]:
    assert img.pixels.mode == "RGB"
    return img.pixels.getpixel(xy)


def palette_image(transparent: bool) -> Image.Image:
    im = Image.new("P", (20, 20), 1)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)  # index 0 red, 1 blue
    im.putpixel((0, 0), 0)
    if transparent:
        im.info["transparency"] = 0
    return im


@pytest.mark.parametrize(
    "im, expected",
    [
        (Image.new("L", (20, 20), 100), (100, 100, 100)),
        (Image.new("1", (20, 20), 1), WHITE),
        (palette_image(transparent=False), (255, 0, 0)),
        (palette_image(transparent=True), WHITE),  # transparent red -> background, not red
        (Image.new("RGBA", (20, 20), (255, 0, 0, 0)), WHITE),
        (Image.new("RGBA", (20, 20), (0, 0, 0, 128)), (127, 127, 127)),
        (Image.new("LA", (20, 20), (0, 0)), WHITE),
        (Image.new("LA", (20, 20), (50, 255)), (50, 50, 50)),
    ],
    ids=["L", "1", "P", "P-transparent", "RGBA-clear", "RGBA-half", "LA-clear", "LA-opaque"],
)
@pytest.mark.parametrize("via", ["file", "pil"])
def test_modes_to_rgb(tmp_path, im, expected, via):
    src = write(tmp_path, "m.png", encode(im)) if via == "file" else im
    assert pixel(load_image(src)) == pytest.approx(expected, abs=1)


def test_pa_mode():
    im = Image.new("PA", (20, 20), (0, 0))
    im.putpalette([255, 0, 0] * 256)
    im.putpixel((1, 1), (0, 255))
    img = load_image(im)
    assert pixel(img) == WHITE and pixel(img, (1, 1)) == (255, 0, 0)


def test_cmyk_jpeg(tmp_path):
    path = write(tmp_path, "c.jpg", encode(Image.new("RGB", (32, 32), (200, 30, 30)).convert("CMYK"), "JPEG"))
    with Image.open(path) as check:
        assert check.mode == "CMYK"
    assert pixel(load_image(path)) == pytest.approx((200, 30, 30), abs=6)


def test_16_bit_png(tmp_path):
    values = np.full((20, 20), 32768, np.uint16)
    values[0, :4] = [65535, 32768, 0, 257]
    path = write(tmp_path, "deep.png", encode(Image.fromarray(values)))
    with Image.open(path) as check:
        assert check.mode.startswith("I;16")
    got = np.asarray(load_image(path).pixels)
    assert got[0, :4, 0].tolist() == [255, 128, 0, 1]
    assert (got[0, :4, 0] == got[0, :4, 2]).all()
    assert got[10, 10].tolist() == [128, 128, 128]  # a uniformly mid-grey 16-bit image stays mid-grey


@pytest.mark.parametrize(
    "mode, values, expected",
    [
        ("I", [0, 100, 255], [0, 100, 255]),  # already 8-bit range: kept
        ("I", [0, 32768, 65535], [0, 128, 255]),  # 16-bit range: scaled like 16 bit
        ("I", [-1000, 0, 1000], [0, 128, 255]),  # anything else: stretched
        ("F", [0.0, 0.5, 1.0], [0, 128, 255]),  # unit float
        ("F", [0.0, 100.0, 255.0], [0, 100, 255]),
        ("F", [float("nan"), 0.0, 1.0], [0, 0, 255]),  # NaN does not poison the image
    ],
)
def test_int_and_float_modes(mode, values, expected):
    dtype = np.int32 if mode == "I" else np.float32
    arr = np.zeros((20, 20), dtype)
    arr[0, :3] = values
    im = Image.fromarray(arr)
    assert im.mode == mode
    assert np.asarray(load_image(im).pixels)[0, :3, 1].tolist() == expected


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animation_gives_first_frame(tmp_path, fmt):
    frames = [Image.new("RGB", (30, 20), c) for c in [(255, 0, 0), (0, 0, 255), (0, 255, 0)]]
    params = {"lossless": True} if fmt == "WEBP" else {}
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **params)
    path = write(tmp_path, f"anim.{fmt.lower()}", data)
    with Image.open(path) as check:
        assert check.n_frames == 3
    img = load_image(path)
    assert (img.width, img.height) == (30, 20)
    assert pixel(img, (15, 10)) == pytest.approx((255, 0, 0), abs=2)


def test_exif_orientation_applied(tmp_path):
    im = Image.new("RGB", (40, 20), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 5, 5))  # red marker at stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = write(tmp_path, "rot.jpg", encode(im, "JPEG", exif=exif.tobytes(), quality=95))
    img = load_image(path)
    assert (img.width, img.height) == (20, 40)
    assert pixel(img, (18, 1)) == pytest.approx((255, 0, 0), abs=30)  # marker now top-right
    assert pixel(img, (1, 1)) == pytest.approx((0, 0, 255), abs=30)


# ---------------------------------------------------------------- numpy input


@pytest.mark.parametrize(
    "arr, expected",
    [
        (np.full((20, 30), 7, np.uint8), (7, 7, 7)),
        (np.full((20, 30, 1), 7, np.uint8), (7, 7, 7)),
        (np.full((20, 30, 3), (1, 2, 3), np.uint8), (1, 2, 3)),
        (np.full((20, 30, 4), (9, 8, 7, 255), np.uint8), (9, 8, 7)),
        (np.full((20, 30, 4), (9, 8, 7, 0), np.uint8), WHITE),
        (np.full((20, 30, 3), (65535, 32768, 0), np.uint16), (255, 128, 0)),
        (np.full((20, 30), 0.5, np.float32), (128, 128, 128)),
        (np.full((20, 30, 3), (1.0, 0.0, 0.2), np.float64), (255, 0, 51)),
        (np.ones((20, 30), bool), WHITE),
        (np.full((20, 30, 3), (200, 100, 0), np.int64), (200, 100, 0)),
    ],
    ids=["HW", "HW1", "HW3", "HW4-opaque", "HW4-clear", "uint16", "float32", "float64", "bool", "int64"],
)
def test_array_input(arr, expected):
    img = load_image(arr)
    assert (img.width, img.height) == (30, 20)
    assert pixel(img) == expected


def test_array_orientation_is_rows_by_columns():
    arr = np.zeros((20, 30, 3), np.uint8)
    arr[0, 29] = (255, 0, 0)
    assert pixel(load_image(arr), (29, 0)) == (255, 0, 0)


@pytest.mark.parametrize(
    "arr, message",
    [
        (np.zeros((20, 30, 2), np.uint8), "shape"),
        (np.zeros((20,), np.uint8), "shape"),
        (np.zeros((2, 20, 30, 3), np.uint8), "shape"),
        (np.full((20, 30), np.nan, np.float32), "NaN"),
        (np.full((20, 30), 2.0, np.float32), r"\[0, 1\]"),
        (np.full((20, 30), -3, np.int16), "0..255"),
        (np.full((20, 30), "a", dtype="<U1"), "dtype"),
        (np.full((20, 30), None, dtype=object), "dtype"),
        (np.zeros((20, 30), np.complex64), "dtype"),
    ],
)
def test_bad_arrays(arr, message):
    with pytest.raises(ImageError, match=message) as err:
        load_image(arr, name="frame-3")
    assert err.value.source == "frame-3"


# ---------------------------------------------------------------- resources and folders


def test_no_file_handle_left_open(tmp_path):
    good = write(tmp_path, "good.jpg", encode(noise(), "JPEG"))
    cut = write(tmp_path, "cut.png", encode(noise())[:500])
    text = write(tmp_path, "t.png", b"hello world")
    tiny = write(tmp_path, "tiny.png", encode(Image.new("RGB", (4, 4))))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_image(good)
        for path in (cut, text, tiny):
            with pytest.raises(ImageError):
                load_image(path)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_resource_warning_check_can_fail(tmp_path):
    """Guard for the test above: a leaked handle really is reported by that mechanism."""
    path = write(tmp_path, "x.bin", b"x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        open(path, "rb")  # noqa: SIM115 - leaked on purpose
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_iter_image_files(tmp_path):
    for name in ["b.jpg", "a.PNG", "c.webp", "d.tiff", "e.pgm", ".hidden.png", "notes.txt", "noext", "f.pdf"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    (tmp_path / "sub.png" / "inner.jpg").write_bytes(b"x")
    names = [p.name for p in iter_image_files(tmp_path)]
    assert names == ["a.PNG", "b.jpg", "c.webp", "d.tiff", "e.pgm"]
    assert all(isinstance(p, Path) for p in iter_image_files(str(tmp_path)))
    assert iter_image_files(tmp_path / "sub.png")[0].name == "inner.jpg"
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "skipped.jpg").write_bytes(b"x")
    assert [p.name for p in iter_image_files(tmp_path, recursive=True)] == names + ["inner.jpg"]


def test_iter_image_files_missing_folder(tmp_path):
    with pytest.raises(ImageError, match="not a folder"):
        iter_image_files(tmp_path / "missing")


def test_image_extensions():
    expected = "jpg jpeg png bmp gif tif tiff webp pgm ppm pbm pnm".split()
    assert IMAGE_EXTENSIONS == frozenset("." + e for e in expected)


def test_load_images_raises_on_a_bad_one_or_sets_it_aside():
    good = Image.new("RGB", (64, 48), WHITE)
    with pytest.raises(NotAnImageError):
        load_images([good, b"not an image"])
    loaded, errors = load_images([good, b"not an image", good], skip_bad=True)
    assert [image.pixels.size for image in loaded] == [(64, 48), (64, 48)]
    assert len(errors) == 1 and isinstance(errors[0], NotAnImageError)


def _phone_jpeg(size=(4032, 3024), orientation: int | None = None) -> bytes:
    """A 12 MP JPEG like a phone's: a gradient with a marker in the top-left corner."""
    x = np.linspace(0, 255, size[0], dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, size[1], dtype=np.float32)[:, None, None]
    pixels = np.broadcast_to(np.concatenate([x + 0 * y, y + 0 * x, 128 + 0 * x * y], axis=2), (size[1], size[0], 3))
    pixels = np.ascontiguousarray(pixels.astype(np.uint8))
    pixels[:300, :300] = (255, 0, 0)
    image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    exif = image.getexif()
    if orientation:
        exif[0x0112] = orientation
    image.save(buffer, "JPEG", quality=90, exif=exif)
    return buffer.getvalue()


def test_a_12_megapixel_jpeg_is_decoded_at_working_size_and_keeps_its_bytes_and_size():
    data = _phone_jpeg()
    loaded = load_image(data)
    width, height = loaded.pixels.size
    assert max(width, height) <= WORKING_SIDE and width / height == pytest.approx(4 / 3, rel=0.01)
    assert (loaded.width, loaded.height) == (4032, 3024)  # what the file holds
    assert loaded.encoded == data and loaded.sha256 == hashlib.sha256(data).hexdigest()
    red = np.asarray(loaded.pixels)[:20, :20].mean(axis=(0, 1))
    assert red[0] > 200 and red[1] < 60  # the top-left marker is where it was


def test_a_large_jpeg_is_never_decoded_at_full_size(monkeypatch):
    """Draft mode: the decoder itself produces a quarter-size image, no 36 MB buffer is ever made."""
    from PIL import JpegImagePlugin

    decoded = []
    load = JpegImagePlugin.JpegImageFile.load
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", lambda self: decoded.append(self.size) or load(self))
    load_image(_phone_jpeg())
    assert decoded and max(max(size) for size in decoded) <= 1008  # 4032 / 4


def test_a_large_rotated_jpeg_is_oriented_and_reports_its_oriented_size():
    loaded = load_image(_phone_jpeg(orientation=6))  # rotate 90 degrees clockwise to display
    assert (loaded.width, loaded.height) == (3024, 4032)
    assert loaded.pixels.height > loaded.pixels.width


def test_large_arrays_and_pil_images_are_reduced_to_working_size():
    from instrec.images.loading import WORKING_SIDE

    big = np.zeros((3000, 2000, 3), np.uint8)
    for loaded in (load_image(big), load_image(Image.fromarray(big))):
        assert max(loaded.pixels.size) == WORKING_SIDE and (loaded.width, loaded.height) == (2000, 3000)


def test_transparency_is_kept_as_alpha_beside_the_white_composite(tmp_path):
    cutout = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
    cutout.paste((200, 40, 40, 255), (10, 5, 30, 25))
    for src in (write(tmp_path, "cut.png", encode(cutout)), cutout):
        img = load_image(src)
        assert img.alpha is not None and img.alpha.size == img.pixels.size
        assert img.alpha.getpixel((0, 0)) == 0 and img.alpha.getpixel((20, 15)) == 255
        assert pixel(img) == WHITE and pixel(img, (20, 15)) == (200, 40, 40)


def test_opaque_pictures_carry_no_alpha(tmp_path):
    assert load_image(Image.new("RGBA", (20, 20), (10, 20, 30, 255))).alpha is None
    assert load_image(write(tmp_path, "o.jpg", encode(Image.new("RGB", (20, 20)), "JPEG"))).alpha is None


def test_the_alpha_of_a_large_cutout_is_bounded_with_its_pixels():
    big = Image.new("RGBA", (3000, 1500), (0, 0, 0, 0))
    big.paste((0, 90, 200, 255), (500, 300, 2500, 1200))
    img = load_image(big)
    assert img.alpha is not None and img.alpha.size == img.pixels.size and max(img.pixels.size) == WORKING_SIDE
