from __future__ import annotations


import numpy as np
import pytest

from instrec.profiles import RerankTuning
from instrec.rerank import LocalFeatures, fuse, inlier_mask, inlier_evidence, tentative_matches, verify
from instrec.rerank.verify import best_similarities

from .conftest import PHOTOS, warped


def test_the_true_source_gets_many_more_inliers(photos, verifier, gallery_features):
    query = verifier.extract(warped(photos["chelsea"], seed=11))
    result = verify(query, list(gallery_features.values()))
    true = PHOTOS.index("chelsea")
    assert result.inliers[true] >= 20
    assert result.inliers[true] > 3 * np.delete(result.inliers, true).max()


def test_same_group_candidates_do_not_cancel_each_other(photos, verifier, gallery_features):
    """Two shots of one instance would fail each other's ratio test unless grouped."""
    query = verifier.extract(warped(photos["rocket"], seed=5))
    twins = [gallery_features[4], gallery_features[4], gallery_features[1]]
    ungrouped = verify(query, twins, ratio=0.8)
    grouped = verify(query, twins, ratio=0.8, groups=["rocket", "rocket", "astronaut"])
    assert ungrouped.matches[0] < 5
    assert grouped.matches[0] > 20


@pytest.mark.parametrize("precision", ["float32", "bfloat16", "auto"])
def test_every_matching_precision_finds_the_true_source(photos, verifier, gallery_features, precision):
    query = verifier.extract(warped(photos["coffee"], seed=3))
    result = verify(query, list(gallery_features.values()), precision=precision)
    true = PHOTOS.index("coffee")
    assert result.inliers[true] >= 20
    assert result.inliers[true] > 3 * np.delete(result.inliers, true).max()


def test_bfloat16_similarities_are_within_its_precision_of_float32(verifier, photos, gallery_features):
    query = verifier.extract(warped(photos["rocket"], seed=7)).rootsift()
    gallery = [f.rootsift() for f in gallery_features.values()] + [np.zeros((0, 128), np.float32)]
    exact = best_similarities(query, gallery, "float32")
    approximate = best_similarities(query, gallery, "bfloat16")
    assert np.isneginf(exact[:, -1]).all() and np.isneginf(approximate[:, -1]).all()  # no keypoints
    assert np.abs(approximate[:, :-1] - exact[:, :-1]).max() < 0.02
    assert np.allclose(exact[:, 0], (query @ gallery[0].T).max(axis=1), atol=1e-6)
    with pytest.raises(ValueError, match="precision"):
        best_similarities(query, gallery, "float8")


def test_with_one_candidate_only_distinctive_matches_pass_the_ratio_test():
    """A gallery of one instance has no other candidate to compare with: Lowe's test within it holds."""
    rng = np.random.default_rng(0)
    descriptors = rng.integers(0, 255, (50, 128)).astype(np.uint8)
    candidate = LocalFeatures(rng.uniform(0, 300, (100, 2)).astype(np.float32), np.vstack([descriptors, descriptors]))
    query = LocalFeatures(rng.uniform(0, 300, (50, 2)).astype(np.float32), descriptors)
    ((matched, _),) = tentative_matches(query, [candidate])
    assert len(matched) == 0  # every descriptor is there twice: nothing is distinctive
    distinct = LocalFeatures(candidate.xy[:50], descriptors)
    ((matched, _),) = tentative_matches(query, [distinct])
    assert len(matched) == 50


def test_too_few_points_have_no_inliers():
    points = np.zeros((3, 2), np.float32)
    assert not inlier_mask(points, points, "homography").any()


def test_inlier_evidence_is_zero_at_zero_and_increasing():
    config = RerankTuning()
    values = [inlier_evidence(n, config) for n in (0, 5, 10, 20, 60)]
    assert values[0] == 0.0
    assert values == sorted(values) and values[-1] > 0.99


def test_inliers_up_to_the_floor_are_no_evidence():
    config = RerankTuning(inlier_floor=3)
    assert [inlier_evidence(n, config) for n in (0, 1, 3)] == [0.0, 0.0, 0.0]
    assert 0.0 < inlier_evidence(4, config) < inlier_evidence(5, config)


def test_a_chance_four_point_homography_does_not_outweigh_a_clearly_better_global_match():
    # Any 4 tentative matches fit a homography exactly; that must not beat a global margin of 0.1.
    fused = fuse({1: 0.6, 2: 0.5}, {1: 0, 2: 4}, RerankTuning())
    assert fused[1] > fused[2]
    floorless = fuse({1: 0.6, 2: 0.5}, {1: 0, 2: 4}, RerankTuning(inlier_floor=0))
    assert floorless[2] > floorless[1]  # what the floor is there for


def test_fusion_uses_only_the_inputs_given():
    config = RerankTuning()
    fused = fuse({1: 0.9, 2: 0.2}, {1: 0, 2: 60}, config)
    assert 0.0 <= fused[1] <= 1.0 and 0.0 <= fused[2] <= 1.0
    assert fused == fuse({1: 0.9, 2: 0.2}, {1: 0, 2: 60}, config)
    only_global = fuse({1: 0.9}, None, config)
    assert only_global[1] == 0.9


def test_colour_breaks_a_tie_and_a_missing_colour_is_neutral():
    config = RerankTuning()
    evidence = ({1: 0.6, 2: 0.6, 3: 0.6}, {1: 20, 2: 20, 3: 20})
    fused = fuse(*evidence, config, colour={1: 0.9, 2: 0.3})
    assert fused[1] > fused[3] > fused[2]
    assert fused[3] == pytest.approx(fuse(*evidence, config)[3])  # no signature: scored as without colour
    assert fuse(*evidence, RerankTuning(weight_colour=0), colour={1: 0.9, 2: 0.3}) == fuse(*evidence, config)
    assert all(0.0 <= v <= 1.0 for v in fused.values())
