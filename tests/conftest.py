"""Shared fixtures: one embedding model per test session, real photos from scikit-image (``tests.photos``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from instrec.config import Config
from tests.photos import write_gallery

DATA_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def no_instrec_environment(monkeypatch):
    """Tests see the defaults, whatever ``INSTREC_*`` variables the developer's shell holds."""
    for name in [n for n in os.environ if n.upper().startswith("INSTREC_")]:
        monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def embedder():
    """The default embedded model (EfficientNet-Lite0, ONNX Runtime), built once per session."""
    from instrec.embedding.embedder import Embedder

    config = Config()
    return Embedder(config.descriptor, config.runtime)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config().with_overrides({"home": str(tmp_path / "library")})


@pytest.fixture
def recognizer(config: Config, embedder):
    from instrec.recognizer import Recognizer

    with Recognizer(config, embedder=embedder) as rec:
        yield rec


@pytest.fixture(scope="session")
def gallery_dir(tmp_path_factory) -> Path:
    """``<dir>/<name>/<name>.jpg`` for a dozen real photos (one shot per instance)."""
    return write_gallery(tmp_path_factory.mktemp("gallery"))


def shared_data(name: str) -> Path:
    path = DATA_ROOT / name
    if not path.is_dir():
        pytest.skip(f"evaluation data {path} is absent (see ../shared/data/README.md)")
    return path
