"""What the rest of the engine needs to know about a feature extractor, whatever its family."""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from instrec.errors import BackboneError

RANDOM_INIT = "random-init"
"""Pass as ``weights`` to build untrained weights (tests, training from scratch); also its digest."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """Static facts about a backbone: output width and the input normalisation its weights expect."""

    name: str
    feature_dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    stride: int | None  # input pixels per feature-map cell; None: the backbone already pools to (N, C)
    input_multiple: int = 1  # input sides must be multiples of this (the Embedder rounds to it)


class Backbone(nn.Module):
    """A network mapping a normalised image batch (N, 3, H, W) to features, at any H and W.

    ``weights_digest`` identifies the weights, so vectors of different weights are never mixed.
    """

    def __init__(self, spec: BackboneSpec, weights_digest: str):
        super().__init__()
        self.spec = spec
        self.weights_digest = weights_digest

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) feature map, or (N, C) when ``spec.stride`` is None."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def file_digest(path: str | Path) -> str:
    """First 16 hex digits of the weights file's sha256: content, not name, identifies weights."""
    sha = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                sha.update(chunk)
    except OSError as exc:
        raise BackboneError(f"cannot read weights file {path}: {exc}") from exc
    return sha.hexdigest()[:16]


def load_state_dict(module: nn.Module, path: str | Path, ignore: tuple[str, ...] = ()) -> None:
    """Load a ``torch.save``d state dict into ``module``; a file that does not fit is a BackboneError.

    Keys starting with a prefix in ``ignore`` (e.g. a classifier head ``module`` lacks) are skipped.

    ``weights_only=True``: a weights file from a user must not be able to run code when unpickled.
    """
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except (OSError, RuntimeError, pickle.UnpicklingError) as exc:
        raise BackboneError(f"cannot read weights file {path}: {exc}") from exc
    if not isinstance(state, dict):
        raise BackboneError(f"weights file {path} holds a {type(state).__name__}, not a state dict")
    state = {k: v for k, v in state.items() if not k.startswith(ignore)}
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise BackboneError(f"weights file {path} does not fit {type(module).__name__}: {exc}") from exc
