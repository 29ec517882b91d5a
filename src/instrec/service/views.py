"""How engine objects look in JSON responses (adds thumbnail URLs; never a filesystem path)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Sequence

from fastapi import Request

from instrec.catalog import ImageRecord, Instance
from instrec.errors import UnknownInstanceError

if TYPE_CHECKING:
    from instrec.recognizer import Match, Recognition, Recognizer

THUMBNAIL_SIZE = 256


def thumbnail_url(request: Request, image: ImageRecord, size: int = THUMBNAIL_SIZE) -> str:
    """Relative URL, in the request's collection; ``v`` pins the content, so the image may be cached for long."""
    root = request.scope.get("root_path", "").rstrip("/")
    collection = request.path_params.get("collection")
    base = f"{root}/v1" if collection is None else f"{root}/v1/collections/{collection}"
    return f"{base}/images/{image.id}/thumbnail?size={size}&v={image.sha256[:16]}"


def image_view(request: Request, image: ImageRecord) -> dict[str, Any]:
    return {
        "id": image.id,
        "instance_id": image.instance_id,
        "width": image.width,
        "height": image.height,
        "sha256": image.sha256,
        "created_at": image.created_at,
        "thumbnail_url": thumbnail_url(request, image),
    }


def instance_view(request: Request, instance: Instance, images: Sequence[ImageRecord]) -> dict[str, Any]:
    return {**instance.to_dict(), "images": [image_view(request, i) for i in images]}


def images_or_empty(recognizer: "Recognizer", instance_id: str) -> list[ImageRecord]:
    """Images of an instance, or [] if it was deleted meanwhile (concurrent requests)."""
    try:
        return recognizer.gallery.images(instance_id)
    except UnknownInstanceError:
        return []


def images_of_many(recognizer: "Recognizer", instance_ids: Iterable[str]) -> dict[str, list[ImageRecord]]:
    return {i: images_or_empty(recognizer, i) for i in dict.fromkeys(instance_ids)}


def match_view(request: Request, match: "Match", images: Sequence[ImageRecord]) -> dict[str, Any]:
    best = next((i for i in images if i.id == match.image_id), None)
    return {
        **match.to_dict(),
        "thumbnail_url": thumbnail_url(request, best) if best else None,
        "images": [{"id": i.id, "thumbnail_url": thumbnail_url(request, i)} for i in images],
    }


def recognition_view(
    request: Request,
    recognition: "Recognition",
    images: dict[str, list[ImageRecord]],
    extra_timing: dict[str, float] | None = None,
    faces: "Sequence[Recognition] | None" = None,
) -> dict[str, Any]:
    body = recognition.to_dict()
    body["matches"] = [match_view(request, m, images.get(m.instance_id, [])) for m in recognition.matches]
    body["best"] = body["matches"][0] if body["matches"] and not recognition.unknown else None
    if faces is not None:  # a faces library: every face found, largest first, each with its box and matches
        body["faces"] = [recognition_view(request, face, images) for face in faces if not face.no_face]
    if extra_timing:
        body["timing_ms"].update({k: round(v, 3) for k, v in extra_timing.items()})
    return body
