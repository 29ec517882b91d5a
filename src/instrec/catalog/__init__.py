"""Stage 4: what is enrolled — instances, images, vectors — persisted in SQLite + a blob store."""

from instrec.catalog.blobs import BlobStore
from instrec.catalog.catalog import Catalog, ImageRecord, Instance, NewImage

__all__ = ["BlobStore", "Catalog", "ImageRecord", "Instance", "NewImage"]
