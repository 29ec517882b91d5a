"""Typed errors with messages a user can act on.

Every error a user can cause derives from :class:`InstrecError`, so callers (CLI, REST API) can map
them to exit codes / HTTP statuses without catching unrelated bugs.
"""

from __future__ import annotations


class InstrecError(Exception):
    """Base class of every error caused by user input or library state."""


class ConfigError(InstrecError, ValueError):
    """A configuration key or value is wrong (unknown key, bad type, out of range)."""


class ImageError(InstrecError, ValueError):
    """An image could not be used. ``source`` names the file (or '<bytes>', '<array>')."""

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # pickled as made: Ray workers send them back
        return type(self), (self.source, self.reason)


class NotAnImageError(ImageError):
    """The data is not an image in any format we can decode (HTTP 415)."""


class CorruptImageError(ImageError):
    """Looks like an image but is truncated or corrupt (HTTP 400)."""


class ImageTooLargeError(ImageError):
    """Too many bytes or pixels: refused before decoding, to defeat decompression bombs (HTTP 413)."""


class ImageTooSmallError(ImageError):
    """Too few pixels to describe anything (HTTP 400)."""


class TooManyImagesError(ImageError):
    """An instance would get more images than ``limits.max_images_per_instance``; ``source`` names it."""


class UnusableShotError(ImageError):
    """The image decodes but the pipeline cannot enrol it: the faces profile found no face in a photo
    that is no face crop, or several faces (HTTP 400)."""


class UnknownInstanceError(InstrecError, KeyError):
    """No instance with that id (HTTP 404)."""

    def __init__(self, instance_id: str):
        self.instance_id = instance_id
        super().__init__(instance_id)

    def __str__(self) -> str:
        return f"no instance with id {self.instance_id!r}"


class UnknownImageError(InstrecError, KeyError):
    """No image with that id (HTTP 404)."""

    def __init__(self, image_id: int):
        self.image_id = image_id
        super().__init__(image_id)

    def __str__(self) -> str:
        return f"no image with id {self.image_id!r}"


class UnknownCollectionError(InstrecError, KeyError):
    """No collection of that name in the home (HTTP 404)."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return f"no collection named {self.name!r}"


class DuplicateInstanceError(InstrecError):
    """An instance with that id exists already (HTTP 409)."""


class DescriptorMismatchError(InstrecError):
    """The library was built with another descriptor (model, size, pooling...) than the one asked for.

    Vectors of two descriptors are not comparable, so we refuse to mix them. The original images are
    kept in the library so that a re-embedding step can rebuild it with a new descriptor.
    """


class BackboneError(InstrecError):
    """A backbone name is unknown, or its weights file is missing or does not fit."""


class MissingExtraError(InstrecError, ImportError):
    """A feature needs an optional dependency that is not installed; the message names the extra."""

    def __init__(self, feature: str, extra: str, missing: list[str]):
        self.extra = extra
        self.missing = missing
        super().__init__(f"{feature} needs {', '.join(missing)} (not installed): pip install 'instrec[{extra}]'")


class NoLibraryError(InstrecError):
    """A command that reads a library was pointed at a home that holds none (a mistyped --home)."""


# Most specific first: the first class an error is an instance of decides. The same codes as the
# REST service's error bodies, so scripts reading either see one vocabulary.
_CODES: tuple[tuple[type[InstrecError], str], ...] = (
    (NotAnImageError, "not_an_image"),
    (ImageTooLargeError, "image_too_large"),
    (ImageTooSmallError, "image_too_small"),
    (CorruptImageError, "corrupt_image"),
    (TooManyImagesError, "too_many_images"),
    (ImageError, "bad_image"),
    (UnknownInstanceError, "unknown_instance"),
    (UnknownImageError, "unknown_image"),
    (UnknownCollectionError, "unknown_collection"),
    (DuplicateInstanceError, "duplicate_instance"),
    (DescriptorMismatchError, "descriptor_mismatch"),
    (ConfigError, "config_error"),
    (NoLibraryError, "no_library"),
    (MissingExtraError, "missing_extra"),
    (BackboneError, "backbone_error"),
)


def error_code(error: InstrecError) -> str:
    """A stable snake_case name for the kind of ``error``, for machine-readable error reports."""
    return next((code for kind, code in _CODES if isinstance(error, kind)), "invalid_request")
