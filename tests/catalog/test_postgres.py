"""What only the PostgreSQL catalog has: a URL, a server that may be away, the originals in it."""

import numpy as np
import pytest

from instrec.catalog import Catalog, NewImage
from instrec.catalog.postgres import shown
from instrec.errors import CatalogUnavailableError


def test_urls_are_shown_without_their_password():
    assert shown("postgresql://ann:s3cret@db:5432/lib") == "postgresql://ann:***@db:5432/lib"
    assert shown("postgresql:///lib?host=/run/pg&password=s3cret") == "postgresql:///lib?host=/run/pg&password=***"
    assert shown("postgresql://ann@db/lib") == "postgresql://ann@db/lib"


def test_an_unreachable_server_is_an_error_naming_the_catalog(tmp_path):
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'instrec[postgres]'")
    url = f"postgresql://nobody:s3cret@/lib?host={tmp_path}"  # no server listens there
    with pytest.raises(CatalogUnavailableError, match="cannot reach the catalog at postgresql://nobody:\\*\\*\\*@") as caught:
        Catalog(url)
    assert "s3cret" not in str(caught.value)


def test_the_originals_are_in_the_catalog_for_every_home_to_read(postgres_url):
    writer, reader = Catalog(postgres_url), Catalog(postgres_url)
    sha = "ab" * 32
    writer.originals.put(sha, b"jpeg bytes")
    writer.originals.put(sha, b"jpeg bytes")  # content-addressed: stored once
    assert reader.originals.get(sha) == b"jpeg bytes"
    writer.add_images("x", [NewImage(sha, "x.jpg", 8, 8, np.ones((1, 4), np.float32))], "d1")
    writer.originals.delete(sha)  # an image still references it: kept
    assert reader.originals.get(sha) == b"jpeg bytes"
    writer.remove_instance("x")
    writer.originals.delete(sha)
    with pytest.raises(FileNotFoundError):
        reader.originals.get(sha)
    with pytest.raises(ValueError):
        reader.originals.get("../../etc/passwd")
    writer.close()
    reader.close()


def test_a_sqlite_catalog_leaves_the_originals_to_files(tmp_path):
    assert Catalog(tmp_path / "c.sqlite").originals is None
