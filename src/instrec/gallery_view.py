"""What is enrolled, read through :attr:`instrec.recognizer.Recognizer.gallery`.

The catalog's reads (instances, their images, the stored originals) and its one metadata write,
which touches no vector and so needs no index sync. Enrolling and removing stay on the recogniser:
they embed, store blobs and keep the index in step.
"""

from __future__ import annotations

import builtins  # annotations below GalleryView.list: there, plain `list` names that method
from typing import Any, Callable

from instrec.catalog import ImageRecord, Instance
from instrec.library import Library


class GalleryView:
    """The gallery of one library. ``library`` is asked for on each call, so holding a view opens
    nothing: the library (and its model) is built on the first read, as by the recogniser."""

    def __init__(self, library: Callable[[], Library]):
        self._library = library

    def get(self, instance_id: str) -> Instance:
        """The instance; :class:`~instrec.errors.UnknownInstanceError` if there is none."""
        return self._library().catalog.get_instance(instance_id)

    def images(self, instance_id: str) -> list[ImageRecord]:
        """The instance's images; :class:`~instrec.errors.UnknownInstanceError` if there is none."""
        return self._library().catalog.images_of(instance_id)

    def image(self, image_id: int) -> ImageRecord:
        """One image; :class:`~instrec.errors.UnknownImageError` if there is none."""
        return self._library().catalog.get_image(image_id)

    def image_bytes(self, image_id: int) -> bytes:
        """The image's stored original, as enrolled."""
        library = self._library()
        return library.blobs.get(library.catalog.get_image(image_id).sha256)

    def list(self, *, offset: int = 0, limit: int = 100, search: str | None = None) -> builtins.list[Instance]:
        """A page of instances; ``search`` matches ids and labels."""
        return self._library().catalog.list_instances(offset=offset, limit=limit, search=search)

    def count(self, search: str | None = None) -> int:
        """How many instances there are (that ``search`` matches)."""
        return self._library().catalog.count_instances(search)

    def update(self, instance_id: str, *, label: str | None = None, metadata: dict[str, Any] | None = None) -> Instance:
        """Set the instance's label and/or replace its metadata."""
        return self._library().catalog.update_instance(instance_id, label=label, metadata=metadata)
