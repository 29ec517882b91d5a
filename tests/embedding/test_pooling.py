from __future__ import annotations

import pytest
import torch

from instrec.embedding.pooling import gem, l2_normalize


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
