"""Stage 4: what is enrolled — instances, images, vectors — persisted in SQLite or PostgreSQL + a blob store."""

from instrec.catalog.blobs import BlobStore
from instrec.catalog.catalog import Catalog
from instrec.catalog.records import (
    MAX_ID_LENGTH,
    MAX_LABEL_LENGTH,
    ImageRecord,
    Instance,
    NewImage,
    validate_instance_id,
    validate_label,
)

__all__ = [
    "BlobStore",
    "Catalog",
    "ImageRecord",
    "Instance",
    "NewImage",
    "MAX_ID_LENGTH",
    "MAX_LABEL_LENGTH",
    "validate_instance_id",
    "validate_label",
]
