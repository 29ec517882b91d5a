"""Collections: several independent galleries in one home.

A collection is a complete library (catalog, originals, indexes, calibration, profile) in
``<home>/collections/<name>/``; the home itself is the collection named ``default``, so a home made
before collections existed is simply one with no others. Nothing is shared between collections but
the settings they are opened with, so an instance, its vectors and its threshold live in exactly one.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from instrec.config import COLLECTION_PATTERN, DEFAULT_COLLECTION
from instrec.errors import ConfigError, UnknownCollectionError
from instrec.library.library import CATALOG_FILE

COLLECTIONS_DIR = "collections"


def check_collection_name(name: str) -> str:
    """``name`` if it can name a collection (``config.COLLECTION_PATTERN``), else :class:`ConfigError`."""
    if not re.fullmatch(COLLECTION_PATTERN, name):
        raise ConfigError(
            f"{name!r} cannot name a collection: use 1-64 lower-case letters, digits, '-', '_' or '.', not starting with '.'"
        )
    return name


def collection_home(home: str | Path, name: str = DEFAULT_COLLECTION) -> Path:
    """The folder of collection ``name`` of ``home`` (the home itself for the default collection)."""
    home = Path(home)
    return home if check_collection_name(name) == DEFAULT_COLLECTION else home / COLLECTIONS_DIR / name


def collection_exists(home: str | Path, name: str) -> bool:
    """Whether collection ``name`` holds a library (the default one: whether the home does)."""
    return (collection_home(home, name) / CATALOG_FILE).is_file()


def list_collections(home: str | Path) -> list[str]:
    """The collections of ``home`` that hold a library, ``default`` first when the home holds one."""
    folder = Path(home) / COLLECTIONS_DIR
    names = sorted(p.name for p in folder.iterdir() if re.fullmatch(COLLECTION_PATTERN, p.name)) if folder.is_dir() else []
    return [name for name in [DEFAULT_COLLECTION, *names] if collection_exists(home, name)]


def delete_collection(home: str | Path, name: str) -> None:
    """Remove collection ``name`` with everything it holds. The default collection (the home itself)
    is refused: deleting a home is a job for the file system, not for a library call.

    Nothing may have the collection open: close its Recognizer first."""
    if check_collection_name(name) == DEFAULT_COLLECTION:
        raise ConfigError("the default collection is the home itself and cannot be deleted")
    if not collection_exists(home, name):
        raise UnknownCollectionError(name)
    shutil.rmtree(collection_home(home, name))
