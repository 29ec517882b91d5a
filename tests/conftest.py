"""Shared fixtures: one embedding model per test session, real photos from scikit-image (``tests.photos``),
a throwaway PostgreSQL server (``tests.postgres``) for the catalog tests run over both backends."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Callable

import pytest

from instrec.config import Config
from tests import postgres
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


@pytest.fixture(scope="session")
def postgres_server():
    """One PostgreSQL server per session, started on first use. Without PostgreSQL or psycopg its tests
    skip, unless ``TESTS_NEED_POSTGRES`` is set (by .ci/run once it installed PostgreSQL): then they fail."""
    missing = pytest.fail if os.environ.get("TESTS_NEED_POSTGRES") else pytest.skip
    if importlib.util.find_spec("psycopg") is None:
        missing("psycopg is not installed: pip install 'instrec[postgres]'")
    bin_dir = postgres.binaries()
    if bin_dir is None:
        missing(f"no PostgreSQL server to test against: {postgres.SEARCHED} (Debian: apt-get install postgresql)")
    server = postgres.ThrowawayServer(bin_dir).start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A new, empty database on the session's server."""
    return postgres_server.new_database()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def new_catalog(request) -> Callable[[], dict[str, str]]:
    """For a module's services, each backend in turn: ``new_catalog()`` gives the settings of a new
    catalog: none (the home's SQLite file), then ``catalog.url`` of a new PostgreSQL database."""
    if request.param == "sqlite":
        return dict
    server = request.getfixturevalue("postgres_server")
    return lambda: {"catalog.url": server.new_database()}


@pytest.fixture(params=["sqlite", "postgres"])
def catalog_url(request) -> str | None:
    """Each backend in turn: None (the home's SQLite file), then a new PostgreSQL database."""
    return request.getfixturevalue("postgres_url") if request.param == "postgres" else None
