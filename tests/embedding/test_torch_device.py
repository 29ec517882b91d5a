"""runtime.device for torch: the GPU where this torch has CUDA, the CPU otherwise, a clear error for cuda without it."""

import pytest
import torch

from instrec.config import DescriptorConfig, RuntimeConfig
from instrec.embedding import Embedder
from instrec.embedding.torch_device import torch_device
from instrec.errors import ConfigError


def test_the_device_setting_picks_cuda_only_where_torch_has_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert torch_device("auto").type == "cuda" and torch_device("cuda").type == "cuda"
    assert torch_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert torch_device("auto").type == "cpu"
    with pytest.raises(ConfigError, match="runtime.device=cpu"):
        torch_device("cuda")


def test_the_torch_engine_asked_for_cuda_without_it_refuses_before_building(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="runtime.device=cuda"):
        Embedder(DescriptorConfig(), RuntimeConfig(engine="torch", device="cuda"), cache_dir=tmp_path)
