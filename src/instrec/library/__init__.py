"""One home directory: the catalog (the truth), the original images and the indexes kept in step with it."""

from instrec.library.collections import (
    check_collection_name,
    collection_exists,
    collection_schema,
    collection_home,
    delete_collection,
    list_collections,
)
from instrec.library.features import complete_local_features
from instrec.library.library import Library
from instrec.library.tables import OwnerTable, ReadWriteLock, SearchHits

__all__ = [
    "check_collection_name",
    "collection_exists",
    "collection_schema",
    "collection_home",
    "delete_collection",
    "list_collections",
    "Library",
    "complete_local_features",
    "OwnerTable",
    "ReadWriteLock",
    "SearchHits",
]
