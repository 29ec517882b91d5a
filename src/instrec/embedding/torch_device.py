"""The torch device ``runtime.device`` names: a GPU where this torch build sees one, else the CPU."""

from __future__ import annotations

from typing import TYPE_CHECKING

from instrec.errors import ConfigError

if TYPE_CHECKING:
    import torch


def torch_device(device: str = "auto") -> "torch.device":
    """``auto``: CUDA when torch has it, the CPU otherwise; ``cuda`` without CUDA is a setting to fix."""
    import torch

    has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        raise ConfigError(
            "runtime.device=cuda, but this torch sees no CUDA device: install a CUDA build of torch, or set runtime.device=cpu"
        )
    return torch.device("cuda" if has_cuda and device != "cpu" else "cpu")
