"""What the catalog hands out: instance and image records, and the checks on ids and labels."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from instrec.errors import InstrecError

MAX_ID_LENGTH = 200
MAX_LABEL_LENGTH = 1000
# A character an id may hold: not a path separator or a control character (C0, DEL, C1); and one that
# is not a dot, which an id needs at least one of unless it is three dots or more ("." and ".." are
# relative path segments). Also the OpenAPI pattern: no surrogate range in it, which JSON Schema
# validators' regex engines refuse to compile (half a surrogate pair is caught apart).
_ID_CHAR = r"[^/\\\x00-\x1f\x7f-\x9f]"
_ID_ANCHOR = r"[^./\\\x00-\x1f\x7f-\x9f]"
ID_PATTERN = rf"(?:{_ID_CHAR}*{_ID_ANCHOR}{_ID_CHAR}*|\.{{3,}})"
_ID = re.compile(ID_PATTERN)


@dataclass(frozen=True)
class Instance:
    id: str
    label: str
    metadata: dict[str, Any]
    created_at: float
    updated_at: float
    image_count: int = 0
    pk: int = field(default=0, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "metadata": self.metadata,
            "image_count": self.image_count,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class ImageRecord:
    id: int
    instance_id: str
    sha256: str
    source: str
    width: int
    height: int
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "instance_id": self.instance_id,
            "sha256": self.sha256,
            "source": self.source,
            "width": self.width,
            "height": self.height,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class NewImage:
    """An image ready to be written: its record fields plus the vectors computed from it."""

    sha256: str
    source: str
    width: int
    height: int
    vectors: np.ndarray  # (n_views, dim) float32
    views: Sequence[str] = ("original",)
    local_features: bytes | None = None  # packed keypoints for geometric verification (rerank stage)


def validate_instance_id(instance_id: str) -> str:
    """A new instance's id: one URL path segment (``/v1/instances/{id}``) must carry it unchanged.

    Clients and servers resolve ``.`` and ``..`` as relative paths and decode ``%2F`` into a
    separator before routing; control characters are dropped or refused on the way. Ids stored before this
    rule can still be removed (``Catalog.remove_instance`` does not check them).
    """
    if not isinstance(instance_id, str) or not instance_id.strip():
        raise InstrecError("an instance id must be a non-empty string")
    if len(instance_id) > MAX_ID_LENGTH:
        raise InstrecError(f"an instance id must be at most {MAX_ID_LENGTH} characters")
    if instance_id in (".", ".."):
        raise InstrecError(f"instance id {instance_id!r} is not allowed: a URL path cannot hold it")
    if not _ID.fullmatch(instance_id) or not _encodable(instance_id):
        raise InstrecError(f"instance id {instance_id!r} must not contain slashes or control characters")
    return instance_id


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # half a surrogate pair: no URL, no JSON can carry it
        return False
    return True


def validate_label(label: str) -> str:
    if not isinstance(label, str) or len(label) > MAX_LABEL_LENGTH:
        raise InstrecError(f"a label must be a string of at most {MAX_LABEL_LENGTH} characters")
    if any(ord(ch) < 32 and ch not in "\t" for ch in label):
        raise InstrecError("a label must not contain control characters")
    return label
