"""Embedding stage: image -> L2-normalised global descriptor (backbone feature map -> GeM -> L2).

``Backbone`` and ``DescriptorNet`` are torch modules: they load with their first use, so that
recognising with a cached ONNX graph never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from instrec.embedding.embedder import Embedder
from instrec.embedding.preprocess import resized_size
from instrec.embedding.registry import create_backbone, list_backbones, register_backbone
from instrec.embedding.spec import RANDOM_INIT, BackboneSpec

if TYPE_CHECKING:
    from instrec.embedding.backbone import Backbone
    from instrec.embedding.descriptor_net import DescriptorNet

_TORCH_MODULES = {"Backbone": "instrec.embedding.backbone", "DescriptorNet": "instrec.embedding.descriptor_net"}

__all__ = [
    "RANDOM_INIT",
    "Backbone",
    "BackboneSpec",
    "DescriptorNet",
    "Embedder",
    "create_backbone",
    "list_backbones",
    "register_backbone",
    "resized_size",
]


def __getattr__(name: str) -> Any:
    if name in _TORCH_MODULES:
        return getattr(importlib.import_module(_TORCH_MODULES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
