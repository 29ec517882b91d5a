from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from instrec.config import RerankConfig
from instrec.rerank import LocalFeatures, LocalVerifier, count_inliers, fuse, inlier_evidence, verify
from instrec.rerank.colour import QueryColours, colour_signature, hue_map
from instrec.rerank.verify import best_similarities

from .conftest import PHOTOS, warped
from .test_colour import BLUE, GREEN, RED, _placed, canvas


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


def test_too_few_points_have_no_inliers():
    points = np.zeros((3, 2), np.float32)
    assert count_inliers(points, points, "homography") == 0


def _mapped(points: np.ndarray, matrix: list[list[float]], offset: list[float]) -> np.ndarray:
    return (points @ np.asarray(matrix, np.float32).T + np.asarray(offset, np.float32)).astype(np.float32)


def test_inliers_piled_onto_a_few_candidate_spots_count_once_per_spot():
    """A repeated pattern: query points over 240 x 70 px all land in a 20 x 8 px corner of the candidate."""
    src = np.random.default_rng(0).uniform([0, 0], [240, 70], (40, 2)).astype(np.float32)
    dst = _mapped(src, [[0.08, 0.0], [0.0, 0.11]], [90, 60])
    assert count_inliers(src, dst, threshold=10.0) == 40
    piled = count_inliers(src, dst, threshold=10.0, min_spread=0.25)
    assert 1 <= piled <= 6  # the 10 px cells the 20 x 8 px patch touches


def test_inliers_spread_over_the_candidate_all_count():
    src = np.random.default_rng(1).uniform(0, 300, (40, 2)).astype(np.float32)
    dst = _mapped(src, [[0.7, -0.2], [0.2, 0.7]], [30, 10])  # a real view: rotated, shrunk, spread out
    assert count_inliers(src, dst, threshold=10.0, min_spread=0.25) == count_inliers(src, dst, threshold=10.0) == 40


def test_a_colour_disagreement_takes_away_the_inlier_evidence_in_proportion():
    config = RerankConfig(hue_agreement=0.3)
    plain = fuse({1: 0.5}, None, {1: 40}, config)[1]
    assert fuse({1: 0.5}, None, {1: 40}, config, agreement={1: 0.6})[1] == pytest.approx(plain)
    halved = fuse({1: 0.5}, None, {1: 40}, config, agreement={1: 0.15})[1]
    none = fuse({1: 0.5}, None, {1: 0}, config)[1]
    assert halved == pytest.approx((plain + none) / 2, abs=1e-3)
    assert fuse({1: 0.5}, None, {1: 40}, RerankConfig(hue_agreement=0), agreement={1: 0.0})[1] == pytest.approx(plain)


def test_a_hue_check_failure_confirmed_by_the_colour_histogram_also_shrinks_the_global_similarity():
    config = RerankConfig(hue_agreement=0.3, colour_confirms=0.7, weight_local=0.0)
    args = ({1: 0.8}, None, {1: 40}, config)
    lighting = fuse(*args, colour={1: 0.95}, agreement={1: 0.03})[1]  # same colours, hues shifted pixel by pixel
    variant = fuse(*args, colour={1: 0.35}, agreement={1: 0.03})[1]  # both checks see other colours
    off = fuse({1: 0.8}, None, {1: 40}, replace(config, colour_confirms=0.0), colour={1: 0.35}, agreement={1: 0.03})[1]
    hue_fails_alone = fuse({1: 0.8}, None, {1: 40}, config, agreement={1: 0.03})[1]  # no histogram to confirm
    # the global term keeps 0.8 until confirmed, then shrinks to 0.8 * max(0.1, 0.5) = 0.4 (weights 1, 1, 0.25)
    evidence = inlier_evidence(40, config) * 0.1
    assert lighting == pytest.approx((0.8 + evidence + 0.25 * 0.95) / 2.25)
    assert variant == pytest.approx((0.4 + evidence + 0.25 * 0.35) / 2.25)
    assert off == pytest.approx((0.8 + evidence + 0.25 * 0.35) / 2.25)
    assert hue_fails_alone == pytest.approx((0.8 + evidence) / 2.0)
    passed = fuse(*args, colour={1: 0.35}, agreement={1: 0.6})[1]  # the hue check passed: nothing shrinks
    assert passed == pytest.approx((0.8 + inlier_evidence(40, config) + 0.25 * 0.35) / 2.25)


def test_inlier_evidence_is_zero_at_zero_and_increasing():
    config = RerankConfig()
    values = [inlier_evidence(n, config) for n in (0, 5, 10, 20, 60)]
    assert values[0] == 0.0
    assert values == sorted(values) and values[-1] > 0.99


def test_inliers_up_to_the_floor_are_no_evidence():
    config = RerankConfig(inlier_floor=3)
    assert [inlier_evidence(n, config) for n in (0, 1, 3)] == [0.0, 0.0, 0.0]
    assert 0.0 < inlier_evidence(4, config) < inlier_evidence(5, config)


def test_a_chance_four_point_homography_does_not_outweigh_a_clearly_better_global_match():
    # Any 4 tentative matches fit a homography exactly; that must not beat a global margin of 0.1.
    fused = fuse({1: 0.6, 2: 0.5}, None, {1: 0, 2: 4}, RerankConfig())
    assert fused[1] > fused[2]
    floorless = fuse({1: 0.6, 2: 0.5}, None, {1: 0, 2: 4}, RerankConfig(inlier_floor=0))
    assert floorless[2] > floorless[1]  # what the floor is there for


def test_fusion_uses_only_the_inputs_given():
    config = RerankConfig()
    fused = fuse({1: 0.9, 2: 0.2}, None, {1: 0, 2: 60}, config)
    assert 0.0 <= fused[1] <= 1.0 and 0.0 <= fused[2] <= 1.0
    assert fused == fuse({1: 0.9, 2: 0.2}, None, {1: 0, 2: 60}, config)
    only_global = fuse({1: 0.9}, None, None, config)
    assert only_global[1] == 0.9


def test_colour_breaks_a_tie_and_a_missing_colour_is_neutral():
    config = RerankConfig()
    evidence = ({1: 0.6, 2: 0.6, 3: 0.6}, None, {1: 20, 2: 20, 3: 20})
    fused = fuse(*evidence, config, colour={1: 0.9, 2: 0.3})
    assert fused[1] > fused[3] > fused[2]
    assert fused[3] == pytest.approx(fuse(*evidence, config)[3])  # no signature: scored as without colour
    assert fuse(*evidence, RerankConfig(weight_colour=0), colour={1: 0.9, 2: 0.3}) == fuse(*evidence, config)
    assert all(0.0 <= v <= 1.0 for v in fused.values())


def test_the_inlier_points_are_the_query_keypoints_ransac_kept(photos, verifier, gallery_features):
    query = verifier.extract(warped(photos["chelsea"], seed=11))
    result = verify(query, list(gallery_features.values()))
    true = PHOTOS.index("chelsea")
    points = result.inlier_points[true]
    assert len(points) == result.inliers[true]  # min_spread off: every kept point counts
    assert (np.abs(query.xy[:, None] - points[None]).sum(axis=2).min(axis=0) == 0).all()


def _few_inlier_candidate(query_colours: str) -> tuple[float, float]:
    """A red/blue catalogue print matched by 6 exact keypoints on its red half, placed at half size
    in a photo where that half is ``query_colours``: the fused score with the near-inlier hue check
    (rerank.hue_near_inliers 5) and without it (9: only confident fits are checked)."""
    catalogue = canvas(RED, BLUE, size=(200, 120))
    rng = np.random.default_rng(0)
    points = rng.uniform([5, 5], [95, 115], (6, 2)).astype(np.float32)
    descriptors = rng.integers(0, 255, (6, 128)).astype(np.uint8)
    candidate = LocalFeatures(points, descriptors, colour=colour_signature(catalogue), hue=hue_map(catalogue),
                              hue_scale=200 / 48)
    seen = canvas(GREEN if query_colours == "green" else RED, BLUE, size=(200, 120))
    photo = _placed(seen, (100, 50), 0.5)
    query = LocalFeatures((points * 0.5 + [100, 50]).astype(np.float32), descriptors)
    colours = QueryColours(photo, [(0, 1, 0, 1)])
    scores = []
    for near in (5, 9):
        verifier = LocalVerifier(RerankConfig(hue_near_inliers=near))
        fused, inliers = verifier.score(query, {1: candidate}, {1: 0.7}, {1: 0.0}, {1: 1}, {1: 0.4}, colours)
        assert inliers[1] == 6
        scores.append(fused[1])
    return scores[0], scores[1]


def test_a_fit_with_few_inliers_is_hue_checked_among_its_inliers():
    """Six inliers (under a confident fit's 9) on a print whose colour differs there: from
    rerank.hue_near_inliers on, the hue check discounts it; where the colours agree, nothing changes."""
    checked, unchecked = _few_inlier_candidate("green")
    assert checked < unchecked - 0.05
    same_checked, same_unchecked = _few_inlier_candidate("red")
    assert same_checked == pytest.approx(same_unchecked)
