"""What the rest of the engine needs to know about a feature extractor, whatever its family."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from instrec.embedding.spec import BackboneSpec
from instrec.errors import BackboneError


class Backbone(nn.Module):
    """A network mapping a normalised image batch (N, 3, H, W) to features, at any H and W.

    ``weights_digest`` identifies the weights, so vectors of different weights are never mixed;
    ``weights_file`` is the file it was computed from, if any.
    """

    def __init__(self, spec: BackboneSpec, weights_digest: str, weights_file: str | Path | None = None):
        super().__init__()
        self.spec = spec
        self.weights_digest = weights_digest
        self.weights_file = None if weights_file is None else Path(weights_file)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) feature map, or (N, C) when ``spec.stride`` is None."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


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
