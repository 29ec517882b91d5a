"""A match says where in the query photo it was found: the box around its verified keypoints."""

from __future__ import annotations

import io

from PIL import Image

from tests.photos import sample_photo

OFFSET = (900, 500)


def _pasted(photo: Image.Image, canvas: tuple[int, int]) -> Image.Image:
    out = Image.new("RGB", canvas, (128, 128, 128))
    out.paste(photo, OFFSET)
    return out


def _jpeg(image: Image.Image, **save: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=92, **save)
    return buf.getvalue()


def _assert_around(box: dict[str, int], size: tuple[int, int], tolerance: float = 0.15) -> None:
    """``box`` (a match's, as a dict) lies around the photo of ``size`` pasted at OFFSET."""
    (x, y), (w, h) = OFFSET, size
    expected = {"left": x, "top": y, "right": x + w, "bottom": y + h}
    for side, at in expected.items():
        slack = tolerance * (w if side in ("left", "right") else h)
        assert abs(box[side] - at) <= slack, (side, box, expected)


def test_the_box_of_a_match_is_where_the_enrolled_object_lies_in_the_photo_as_given(recognizer):
    photo = sample_photo("astronaut")
    recognizer.enroll([photo], instance_id="astronaut")
    # Larger than the pixels recognition works on: the box must be scaled back to these.
    query = _pasted(photo, (2000, 1400))
    best = recognizer.recognize(_jpeg(query)).best
    assert best is not None and best.instance_id == "astronaut" and best.box is not None
    _assert_around(best.to_dict()["box"], photo.size)


def test_the_box_is_in_the_photo_as_shown_after_its_exif_rotation(recognizer):
    photo = sample_photo("astronaut")
    recognizer.enroll([photo], instance_id="astronaut")
    upright = _pasted(photo, (2000, 1400))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: stored turned the other way
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    best = recognizer.recognize(_jpeg(stored, exif=exif)).best
    assert best is not None and best.box is not None
    _assert_around(best.to_dict()["box"], photo.size)


def test_a_match_without_verified_keypoints_has_no_box(recognizer):
    recognizer.enroll([sample_photo("astronaut")], instance_id="astronaut")
    flat = Image.new("RGB", (640, 480), (90, 140, 200))  # no keypoints: nothing to verify
    matches = recognizer.recognize(_jpeg(flat)).matches
    assert matches and matches[0].inliers == 0 and matches[0].box is None
    assert matches[0].to_dict()["box"] is None
