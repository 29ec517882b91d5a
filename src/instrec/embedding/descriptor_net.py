"""The whole descriptor as one torch module: the single graph that eager inference, the ONNX
export and (later) training all use, so they cannot drift apart."""

from __future__ import annotations

import torch
from torch import nn

from instrec.embedding.backbone import Backbone
from instrec.embedding.pooling import gem, l2_normalize
from instrec.errors import ConfigError


class DescriptorNet(nn.Module):
    """Normalised image batch (N, 3, H, W) -> unit vectors (N, feature_dim).

    H and W must be multiples of the backbone's ``input_multiple`` (32 for EfficientNet-Lite).
    """

    def __init__(self, backbone: Backbone, gem_p: float):
        super().__init__()
        if gem_p <= 0:
            raise ConfigError(f"tuning.descriptor.gem_p must be > 0, got {gem_p}")
        self.backbone = backbone
        self.gem_p = gem_p

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        multiple = self.backbone.spec.input_multiple
        height, width = images.shape[-2:]
        if height % multiple or width % multiple:  # the check is Python-only: not in an ONNX graph
            raise ValueError(f"{self.backbone.spec.name} needs sides that are multiples of {multiple}, got {height}x{width}")
        features = self.backbone.forward_features(images)
        pooled = features if self.backbone.spec.stride is None else gem(features, self.gem_p)
        return l2_normalize(pooled)
