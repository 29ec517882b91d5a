"""Shared fixtures for the service tests: a real Recognizer in a tmp home, real photos.

The embedder (model load + cached ONNX session) is the session-wide one from ``tests/conftest.py``,
shared by every module's Recognizer; each test module gets its own library home and its own app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from instrec.config import Config
from tests.photos import altered_views, sample_photo

from .helpers import PHOTOS, TestClient, jpeg


@pytest.fixture(scope="session")
def photos() -> dict[str, bytes]:
    """JPEG bytes of real photos (scikit-image samples)."""
    return {name: jpeg(sample_photo(name)) for name in PHOTOS}


@pytest.fixture(scope="session")
def views() -> dict[str, dict[str, bytes]]:
    """Altered views (crop, rotated, occluded, relit) of each photo, as JPEG: realistic queries."""
    return {name: {kind: jpeg(img) for kind, img in altered_views(sample_photo(name), seed=3).items()} for name in PHOTOS}


def make_config(home: Path, **overrides: Any) -> Config:
    # No background re-calibration unless a test asks: a threshold moving mid-test makes it flaky.
    settings = {"service.auth": "false", "decision.auto_calibrate": "false", **overrides}
    return Config.load(home=home, overrides=settings)


@pytest.fixture(scope="module")
def make_recognizer(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Callable[..., Any]]:
    """``make_recognizer(**overrides)`` -> a Recognizer on a fresh home (closed after the module)."""
    from instrec.recognizer import Recognizer

    made: list[Any] = []

    def make(**overrides: Any) -> Any:
        recognizer = Recognizer(make_config(tmp_path_factory.mktemp("home"), **overrides), embedder=embedder)
        made.append(recognizer)
        return recognizer

    yield make
    for recognizer in made:
        recognizer.close()


@pytest.fixture(scope="module")
def make_client(make_recognizer: Callable[..., Any]) -> Iterator[Callable[..., TestClient]]:
    """``make_client(**config_overrides)`` -> a started TestClient over its own library."""
    from instrec.service.app import create_app

    clients: list[TestClient] = []

    def make(recognizer: Any = None, **overrides: Any) -> TestClient:
        recognizer = recognizer or make_recognizer(**overrides)
        config = recognizer.config.with_overrides(overrides)
        client = TestClient(create_app(config, recognizer))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """An auth-free client over a module-private library."""
    return make_client()
