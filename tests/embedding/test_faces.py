"""The face embedder on real photos: scikit-image's astronaut (one face) and photos without a face."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from instrec.profiles import FaceTuning
from tests.photos import altered_views, sample_photo

pytest.importorskip("dlib", reason="the faces extra is not installed")

from instrec.embedding.faces import FaceEmbedder  # noqa: E402 - after the skip


@pytest.fixture(scope="module")
def faces() -> FaceEmbedder:
    return FaceEmbedder(FaceTuning())


def test_a_face_embeds_to_a_128_d_unit_vector_that_survives_query_like_changes(faces):
    astronaut = sample_photo("astronaut")
    vectors = faces.embed([astronaut, *altered_views(astronaut).values()])
    assert vectors.shape == (5, 128) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (vectors[1:] @ vectors[0]).min() > 0.95
    assert faces.embed([sample_photo("coffee")])[0] @ vectors[0] < 0.9


def test_a_tight_crop_embeds_like_the_face_in_its_photo(faces):
    astronaut = sample_photo("astronaut")
    box = faces.faces(astronaut)[0]
    tight = astronaut.crop((box.left + 16, box.top + 16, box.right - 16, box.bottom - 16))  # closer than the detector can find
    assert faces.faces(tight) == []
    vectors, problems = faces.embed_shots([astronaut, tight])
    assert problems == [None, None]  # shaped like a face crop: the whole photo is taken as the face
    assert vectors[1] @ vectors[0] > 0.9


def test_enrolment_refuses_a_photo_without_a_face_or_with_several(faces):
    astronaut = sample_photo("astronaut")
    two = Image.new("RGB", (1024, 512))
    two.paste(astronaut, (0, 0))
    two.paste(astronaut.resize((256, 256)), (600, 100))
    vectors, problems = faces.embed_shots([sample_photo("coffee"), two, astronaut])
    assert "no face found" in problems[0] and "2 faces found" in problems[1] and problems[2] is None
    assert not vectors[:2].any()
    # A query is answered from its largest face (or the whole photo): none is refused.
    queries = faces.embed([two, sample_photo("coffee")])
    assert queries[0] @ vectors[2] > 0.99
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)


def test_the_detector_and_its_constants_are_part_of_the_digest(faces):
    assert FaceEmbedder(FaceTuning()).digest == faces.digest
    assert FaceEmbedder(FaceTuning(padding=0.3)).digest != faces.digest
    digests = {FaceEmbedder(FaceTuning(detector=detector)).digest for detector in ("hog", "cnn", "hog+cnn")}
    assert len(digests) == 3 and faces.digest in digests


@pytest.fixture(scope="module")
def single() -> dict[str, FaceEmbedder]:
    return {detector: FaceEmbedder(FaceTuning(detector=detector)) for detector in ("hog", "cnn")}


def test_hog_then_cnn_keeps_hogs_faces_where_it_finds_some(faces, single):
    astronaut = sample_photo("astronaut")
    assert faces.tuning.detector == "hog+cnn"  # the profile's default
    assert faces.faces(astronaut) == single["hog"].faces(astronaut) != single["cnn"].faces(astronaut)


@pytest.mark.data
def test_hog_then_cnn_asks_the_cnn_where_hog_finds_no_face(faces, single):
    from instrec.images import iter_image_files
    from tests.conftest import shared_data

    photos = (Image.open(path).convert("RGB") for path in iter_image_files(shared_data("att-faces"), recursive=True))
    missed = next(photo for photo in photos if not single["hog"].faces(photo) and single["cnn"].faces(photo))
    assert faces.faces(missed) == single["cnn"].faces(missed)
    np.testing.assert_array_equal(faces.embed([missed]), single["cnn"].embed([missed]))


def _overlap(a, b) -> float:
    """Intersection over union of two boxes."""
    width = max(0, min(a.right, b.right) - max(a.left, b.left))
    height = max(0, min(a.bottom, b.bottom) - max(a.top, b.top))
    area = lambda box: (box.right - box.left) * (box.bottom - box.top)  # noqa: E731
    return width * height / (area(a) + area(b) - width * height)


@pytest.mark.data
def test_the_cnn_fallback_finds_a_face_in_a_photo_larger_than_its_frame_and_boxes_it_in_the_photos_pixels(faces, single):
    from instrec.embedding.faces import CNN_MAX_SIDE
    from instrec.images import iter_image_files
    from tests.conftest import shared_data

    photos = (Image.open(path).convert("RGB") for path in iter_image_files(shared_data("att-faces"), recursive=True))
    missed = next(photo for photo in photos if not single["hog"].faces(photo) and single["cnn"].faces(photo))
    times = -(-2 * CNN_MAX_SIDE // max(missed.size))  # enlarged past the frame: the fallback shrinks it back
    large = missed.resize((missed.width * times, missed.height * times), Image.Resampling.BICUBIC)
    assert not single["hog"].faces(large)
    (small_box,), (large_box,) = single["cnn"].faces(missed), faces.faces(large)
    scaled = type(small_box)(*(v * times for v in (small_box.left, small_box.top, small_box.right, small_box.bottom)))
    assert _overlap(large_box, scaled) > 0.6
