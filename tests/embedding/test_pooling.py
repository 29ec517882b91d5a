from __future__ import annotations

import numpy as np
import pytest
import torch

from instrec.embedding.pooling import gem, l2_normalize, region_boxes, region_vectors


def test_gem_with_p_1_is_average_pooling() -> None:
    features = torch.rand(2, 5, 3, 4)
    assert torch.allclose(gem(features, 1.0), features.mean(dim=(2, 3)), atol=1e-6)


def test_gem_approaches_max_pooling_for_large_p() -> None:
    features = torch.rand(2, 5, 3, 4) + 0.5
    assert torch.allclose(gem(features, 50.0), features.amax(dim=(2, 3)), rtol=0.05)


def test_gem_clamps_zeros_and_negatives() -> None:
    features = torch.tensor([[[[0.0, -1.0]]]])
    assert torch.isfinite(gem(features, 3.0)).all() and gem(features, 3.0).item() > 0


def test_l2_normalize_gives_unit_rows() -> None:
    vectors = l2_normalize(torch.randn(4, 7) * 10)
    assert torch.allclose(vectors.norm(dim=1), torch.ones(4))


@pytest.mark.parametrize("p", [0.0, -1.0])
def test_non_positive_p_is_a_config_error(p: float) -> None:
    from instrec.embedding import DescriptorNet, create_backbone
    from instrec.errors import ConfigError

    with pytest.raises(ConfigError, match="gem_p"):
        DescriptorNet(create_backbone("efficientnet_lite0"), p)


@pytest.mark.parametrize("height,width", [(5, 7), (10, 14), (1, 9), (12, 12)])
def test_region_boxes_start_with_the_whole_map_and_stay_inside_it(height: int, width: int) -> None:
    boxes = region_boxes(height, width, 3)
    assert boxes[0] == (0, height, 0, width)
    assert len(set(boxes)) == len(boxes)
    assert all(0 <= t < b <= height and 0 <= l < r <= width for t, b, l, r in boxes)
    assert len(region_boxes(height, width, 0)) == 1
    if min(height, width) > 3:  # finer levels add regions that together cover the whole map
        assert len(region_boxes(height, width, 3)) > len(region_boxes(height, width, 1))
        covered = np.zeros((height, width), bool)
        for t, b, l, r in boxes[1:]:
            covered[t:b, l:r] = True
        assert covered.all()


def test_region_vectors_are_gem_of_each_region() -> None:
    features = torch.rand(1, 6, 5, 7)
    power_map = features.clamp(min=1e-6).pow(3.0)[0].numpy()
    boxes = region_boxes(5, 7, 2)
    vectors = region_vectors(power_map, boxes, 3.0)
    for (t, b, l, r), vector in zip(boxes, vectors):
        expected = l2_normalize(gem(features[:, :, t:b, l:r], 3.0))[0].numpy()
        assert np.allclose(vector, expected, atol=1e-5)
