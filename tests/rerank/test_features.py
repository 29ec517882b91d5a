from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image, ImageDraw

from instrec.rerank import LocalFeatures, extract_local_features, verify


def test_extraction_is_deterministic_and_capped(photos):
    first = extract_local_features(photos["astronaut"], max_keypoints=300)
    again = extract_local_features(photos["astronaut"], max_keypoints=300)
    assert len(first) == 300
    np.testing.assert_array_equal(first.descriptors, again.descriptors)
    np.testing.assert_array_equal(first.xy, again.xy)


def test_large_images_are_detected_in_a_bounded_working_frame(photos):
    big = photos["astronaut"].resize((2048, 2048))
    features = extract_local_features(big, max_side=640)
    assert features.scale == pytest.approx(2048 / 640)
    assert features.xy.max() <= 640


def test_tiny_or_flat_images_have_no_features():
    assert len(extract_local_features(Image.new("RGB", (8, 8)))) == 0
    assert len(extract_local_features(Image.new("RGB", (200, 200), (90, 90, 90)))) == 0


def test_pack_round_trip(gallery_features):
    features = gallery_features[1]
    restored = LocalFeatures.unpack(features.pack())
    np.testing.assert_array_equal(restored.descriptors, features.descriptors)
    assert np.abs(restored.xy - features.xy).max() <= 1 / 32 + 1e-6
    assert restored.scale == features.scale
    assert features.colour is not None and np.abs(restored.colour - features.colour).max() < 1e-3
    assert len(features.pack()) == 8 + 132 * len(features) + 144
    assert LocalFeatures.packed_complete(len(features.pack()))
    assert len(LocalFeatures.unpack(LocalFeatures.empty().pack())) == 0


def test_features_packed_before_colour_signatures_still_unpack(gallery_features):
    old = dataclasses.replace(gallery_features[2], colour=None).pack()
    assert len(old) == 8 + 132 * len(gallery_features[2])
    assert not LocalFeatures.packed_complete(len(old))
    restored = LocalFeatures.unpack(old)
    assert restored.colour is None
    np.testing.assert_array_equal(restored.descriptors, gallery_features[2].descriptors)


def test_features_packed_with_a_former_hue_map_unpack_without_it(gallery_features):
    """Libraries written while a hue check existed stored a 2308-byte hue map after the colour."""
    features = gallery_features[2]
    legacy = features.pack() + bytes(2308)
    assert LocalFeatures.packed_complete(len(legacy))
    restored = LocalFeatures.unpack(legacy)
    np.testing.assert_array_equal(restored.descriptors, features.descriptors)
    np.testing.assert_allclose(restored.colour, LocalFeatures.unpack(features.pack()).colour)
    with pytest.raises(ValueError, match="do not hold"):
        LocalFeatures.unpack(features.pack() + bytes(100))


def test_truncated_packed_features_are_refused(gallery_features):
    with pytest.raises(ValueError, match="do not hold"):
        LocalFeatures.unpack(gallery_features[1].pack()[:-5])


def test_rootsift_rows_are_unit_vectors(gallery_features):
    norms = np.linalg.norm(gallery_features[2].rootsift(), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-4)


def _cutout(photo: Image.Image) -> tuple[Image.Image, Image.Image]:
    """A disc cut out of ``photo``: its white composite and its alpha."""
    alpha = Image.new("L", photo.size, 0)
    ImageDraw.Draw(alpha).ellipse((60, 40, photo.width - 60, photo.height - 40), fill=255)
    white = Image.composite(photo, Image.new("RGB", photo.size, (255, 255, 255)), alpha)
    return white, alpha


def test_a_cutouts_edge_is_described_against_dark_backgrounds_too(photos):
    white, alpha = _cutout(photos["coffee"])
    plain = extract_local_features(white, max_keypoints=5000)
    both = extract_local_features(white, max_keypoints=5000, alpha=alpha)
    assert len(both) > len(plain)  # the edge over black adds keypoints...
    np.testing.assert_array_equal(both.descriptors[: len(plain)], plain.descriptors)  # ...after the white ones
    capped = extract_local_features(white, max_keypoints=len(plain) + 5, alpha=alpha)
    assert len(capped) == len(plain) + 5


def test_a_cutout_matches_better_on_a_dark_background_with_its_alpha(photos):
    white, alpha = _cutout(photos["coffee"])
    on_dark = Image.composite(white, Image.new("RGB", white.size, (10, 10, 10)), alpha)
    query = extract_local_features(on_dark, max_keypoints=1500)
    inliers = [verify(query, [extract_local_features(white, 1200, alpha=a)]).inliers[0] for a in (None, alpha)]
    assert inliers[1] > inliers[0]
