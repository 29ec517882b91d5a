"""Shared, session-scoped fixtures: building a backbone or an ONNX session costs about a second.

No ``from __future__ import annotations`` here: TorchScript must read TinyCNN's annotations.
"""

import warnings
from pathlib import Path
from typing import Iterator, List

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from torch import nn

from instrec.config import DescriptorConfig, RuntimeConfig
from instrec.embedding import Embedder


class TinyCNN(nn.Module):
    """A stand-in for a user's TorchScript model (random weights; stride 4; 16 channels)."""

    mean: List[float]
    std: List[float]

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.mean = [0.5, 0.5, 0.5]
        self.std = [0.25, 0.25, 0.25]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def save_torchscript(module: nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():  # torch.jit.* are deprecated; users' files will still exist
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(module), str(path))
    return path


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test may write to the real ~/.cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg")))
        yield


@pytest.fixture(scope="session")
def images() -> dict[str, Image.Image]:
    arrays = {
        "astronaut": data.astronaut(),
        "coffee": data.coffee(),
        "chelsea": data.chelsea(),
        "rocket": data.rocket(),
        "camera": data.camera(),
    }
    return {name: Image.fromarray(np.asarray(a)) for name, a in arrays.items()}


@pytest.fixture(scope="session")
def torchscript_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_torchscript(TinyCNN(), tmp_path_factory.mktemp("ts") / "tiny.pt")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="session")
def lite0_torch() -> Embedder:
    return Embedder(DescriptorConfig(), RuntimeConfig(engine="torch"))


@pytest.fixture(scope="session")
def lite0_onnx(cache_dir: Path) -> Embedder:
    return Embedder(DescriptorConfig(), RuntimeConfig(engine="onnx"), cache_dir=cache_dir)
