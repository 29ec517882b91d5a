from __future__ import annotations

import pytest
import torch
from efficientnet_lite_pytorch.utils import Conv2dDynamicSamePadding

from instrec.embedding.same_padding import SameConv2d


@pytest.mark.parametrize("kernel, stride", [(1, 1), (3, 1), (5, 1), (3, 2), (5, 2)])
@pytest.mark.parametrize("height, width", [(16, 16), (18, 8), (2, 2), (30, 32)])
def test_same_as_upstream_at_sizes_divisible_by_the_stride(kernel: int, stride: int, height: int, width: int) -> None:
    torch.manual_seed(0)
    upstream = Conv2dDynamicSamePadding(4, 4, kernel, stride=stride, groups=2, bias=True)
    x = torch.randn(2, 4, height, width)
    assert torch.allclose(SameConv2d(upstream)(x), upstream(x), atol=1e-6)


def test_stride_1_is_same_at_odd_sizes_too() -> None:
    upstream = Conv2dDynamicSamePadding(4, 4, 5, stride=1)
    x = torch.randn(1, 4, 17, 9)
    assert torch.allclose(SameConv2d(upstream)(x), upstream(x), atol=1e-6)


def test_unsupported_convolutions_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        SameConv2d(Conv2dDynamicSamePadding(4, 4, 2, stride=2))  # even kernel: asymmetric padding
