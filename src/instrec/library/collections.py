"""Collections: several independent galleries in one home.

A collection is a complete library (catalog, originals, indexes, calibration, profile) in
``<home>/collections/<name>/``; the home itself is the collection named ``default``, so a home made
before collections existed is simply one with no others. Nothing is shared between collections but
the settings they are opened with, so an instance, its vectors and its threshold live in exactly one.

On a PostgreSQL catalog (``catalog.url``) a collection's catalog is a schema of that database
(:func:`collection_schema`; the default collection keeps the default schema, as before collections),
so every replica on the database sees the same collections; the folder in the home then holds only
this home's copies of the indexes. A schema rather than a collection column in every table: the
catalog's SQL, triggers and journal stay as they are, each collection has its own journal and
writer lock (writers of two collections never wait for each other), and deleting one is one
``DROP SCHEMA``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from instrec.catalog.postgres import MAX_SCHEMA_NAME
from instrec.config import COLLECTION_PATTERN, DEFAULT_COLLECTION
from instrec.errors import ConfigError, UnknownCollectionError
from instrec.library.library import CATALOG_FILE

COLLECTIONS_DIR = "collections"
SCHEMA_PREFIX = "collection_"  # a collection's schema on a PostgreSQL catalog: the prefix and its name


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


def collection_schema(name: str) -> str | None:
    """The PostgreSQL schema of collection ``name``'s catalog (None: the default schema)."""
    if check_collection_name(name) == DEFAULT_COLLECTION:
        return None
    schema = SCHEMA_PREFIX + name
    if len(schema) > MAX_SCHEMA_NAME:  # PostgreSQL would cut it short, and two names could meet
        raise ConfigError(
            f"{name!r} cannot name a collection on a PostgreSQL catalog: at most {MAX_SCHEMA_NAME - len(SCHEMA_PREFIX)} "
            "characters there (its schema's name is limited)"
        )
    return schema


def collection_exists(home: str | Path, name: str, catalog_url: str | None = None) -> bool:
    """Whether collection ``name`` holds a library (the default one: whether the home, or the
    PostgreSQL catalog at ``catalog_url``, does)."""
    if catalog_url is None:
        return (collection_home(home, name) / CATALOG_FILE).is_file()
    from instrec.catalog.postgres import catalog_schemas

    schema = collection_schema(name) or "public"
    return schema in catalog_schemas(catalog_url, schema)


def list_collections(home: str | Path, catalog_url: str | None = None) -> list[str]:
    """The collections of ``home`` (or of the PostgreSQL catalog at ``catalog_url``) that hold a
    library, ``default`` first when there is one."""
    if catalog_url is not None:
        from instrec.catalog.postgres import catalog_schemas

        names = [s.removeprefix(SCHEMA_PREFIX) for s in catalog_schemas(catalog_url, SCHEMA_PREFIX)]
        default = collection_exists(home, DEFAULT_COLLECTION, catalog_url)
        return [DEFAULT_COLLECTION] * default + [n for n in names if re.fullmatch(COLLECTION_PATTERN, n)]
    folder = Path(home) / COLLECTIONS_DIR
    names = sorted(p.name for p in folder.iterdir() if re.fullmatch(COLLECTION_PATTERN, p.name)) if folder.is_dir() else []
    return [name for name in [DEFAULT_COLLECTION, *names] if collection_exists(home, name)]


def delete_collection(home: str | Path, name: str, catalog_url: str | None = None) -> None:
    """Remove collection ``name`` with everything it holds (on a PostgreSQL catalog: its schema, and
    this home's folder of it). The default collection (the home itself) is refused: deleting a home is
    a job for the file system, not for a library call.

    Nothing may have the collection open: close its Recognizer first."""
    if check_collection_name(name) == DEFAULT_COLLECTION:
        raise ConfigError("the default collection is the home itself and cannot be deleted")
    if not collection_exists(home, name, catalog_url):
        raise UnknownCollectionError(name)
    if catalog_url is not None:
        from instrec.catalog.postgres import drop_schema

        drop_schema(catalog_url, str(collection_schema(name)))
    shutil.rmtree(collection_home(home, name), ignore_errors=catalog_url is not None)  # a replica's home may have none
