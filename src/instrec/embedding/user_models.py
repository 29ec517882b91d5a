"""Backbones from weights files a user supplies; nothing is ever downloaded.

``torchscript``: any network saved with ``torch.jit.save`` whose ``forward`` returns a feature map
(N, C, h, w) or a vector (N, C). Optional ``mean`` / ``std`` attributes on the scripted module give
its input normalisation (default: ImageNet's).

``timm:<model>``: a timm CNN built without pretrained weights, then loaded from a local state dict
(``torch.save(model.state_dict(), path)``). Needs ``pip install timm``, which is not a dependency.
"""

from __future__ import annotations

import importlib
from typing import Callable, Sequence

import torch

from instrec.embedding.backbone import Backbone, load_state_dict
from instrec.embedding.registry import register_built_in
from instrec.embedding.spec import IMAGENET_MEAN, IMAGENET_STD, RANDOM_INIT, BackboneSpec, file_digest
from instrec.errors import BackboneError

RGB = tuple[float, float, float]
_PROBE_SIDE = 224  # one dummy forward at load time tells the output width and stride


class TorchScriptBackbone(Backbone):
    """A user's own network: portable without its Python code, and exportable to ONNX."""

    def __init__(self, name: str, weights: str | None):
        if weights is None or weights == RANDOM_INIT:
            raise BackboneError(f"{name} needs weights=<path of a torch.jit.save'd model>")
        digest = file_digest(weights)
        try:
            net = torch.jit.load(weights, map_location="cpu").eval()
        except (RuntimeError, ValueError) as exc:
            raise BackboneError(f"{weights} is not a TorchScript model: {exc}") from exc
        mean = _rgb(name, getattr(net, "mean", IMAGENET_MEAN))
        std = _rgb(name, getattr(net, "std", IMAGENET_STD))
        super().__init__(_probe_spec(name, net, mean, std), digest, weights)
        self.net = net

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TimmBackbone(Backbone):
    """A timm CNN's ``forward_features`` map (transformers' token outputs are refused at load)."""

    def __init__(self, name: str, weights: str | None):
        model_name = name.partition(":")[2]
        if not weights:
            raise BackboneError(f"{name} needs weights=<local state dict>; weights are never downloaded")
        try:
            timm = importlib.import_module("timm")
        except ImportError:
            raise BackboneError(f"{name} needs timm: pip install timm") from None
        try:
            net = timm.create_model(model_name, pretrained=False, num_classes=0, global_pool="")
        except RuntimeError as exc:  # timm's "Unknown model"
            raise BackboneError(f"{name}: {exc}") from exc
        cfg = net.pretrained_cfg
        if weights != RANDOM_INIT:
            head = cfg.get("classifier") or ()
            heads = (head,) if isinstance(head, str) else tuple(head)
            load_state_dict(net, weights, ignore=tuple(h + "." for h in heads))
        mean, std = _rgb(name, cfg["mean"]), _rgb(name, cfg["std"])
        spec = _probe_spec(name, net.eval().forward_features, mean, std)
        random = weights == RANDOM_INIT
        super().__init__(spec, RANDOM_INIT if random else file_digest(weights), None if random else weights)
        self.net = net

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)


def _probe_spec(name: str, features: Callable[[torch.Tensor], torch.Tensor], mean: RGB, std: RGB) -> BackboneSpec:
    """Run one dummy image to learn the feature width, and whether the output is a map or a vector."""
    try:
        with torch.inference_mode():
            out = features(torch.zeros(1, 3, _PROBE_SIDE, _PROBE_SIDE))
    except RuntimeError as exc:
        raise BackboneError(f"{name}: the model fails on a {_PROBE_SIDE}px image: {exc}") from exc
    if not isinstance(out, torch.Tensor) or out.ndim not in (2, 4):
        raise BackboneError(f"{name}: the model must return (N, C, h, w) or (N, C); got {_shape(out)}")
    stride = round(_PROBE_SIDE / out.shape[-1]) if out.ndim == 4 else None
    return BackboneSpec(name, int(out.shape[1]), mean, std, stride)


def _rgb(name: str, values: Sequence[float]) -> RGB:
    if len(values) != 3:
        raise BackboneError(f"{name}: input mean and std need 3 values (RGB), got {values}")
    return float(values[0]), float(values[1]), float(values[2])


def _shape(out: object) -> str:
    return str(tuple(out.shape)) if isinstance(out, torch.Tensor) else type(out).__name__


@register_built_in("torchscript")
def _create_torchscript(name: str, weights: str | None) -> Backbone:
    return TorchScriptBackbone(name, weights)


@register_built_in("timm:")
def _create_timm(name: str, weights: str | None) -> Backbone:
    return TimmBackbone(name, weights)
