"""Instances and their images: enrol, add images, list/search, get, update, delete, thumbnails."""

from __future__ import annotations

import io
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, Response, UploadFile
from PIL import Image, ImageOps
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from instrec.catalog import MAX_ID_LENGTH, MAX_LABEL_LENGTH, ImageRecord
from instrec.config import LimitsConfig
from instrec.errors import UnknownImageError
from instrec.images import load_image
from instrec.service.auth import require_admin, require_read
from instrec.service.errors import ApiError, error_responses
from instrec.service.routes_collections import InCollection
from instrec.service.state import ServiceState, service_state
from instrec.service.uploads import (
    FORM_ID_PATTERN,
    IMAGE,
    LABEL_PATTERN,
    MAX_IMAGES_PER_ENROLMENT,
    MAX_METADATA_BYTES,
    check_metadata,
    parse_instance_id,
    parse_label,
    multipart_body,
    parse_metadata,
    read_uploads,
)
from instrec.service.views import image_view, images_or_empty, instance_view

router = APIRouter(tags=["instances"], responses=error_responses(401, 403, 422, 429, 503))
# An upload may be refused for what its bytes hold, which no schema can say.
UPLOAD_ERRORS = error_responses(400, 413, 415)
State = Annotated[ServiceState, Depends(service_state)]
InstanceId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, description="The instance id.")]
ImageId = Annotated[int, Path(ge=1, le=2**62, description="The image id.")]

MAX_PAGE = 100
THUMBNAIL_MAX_AGE = 7 * 24 * 3600


_LABEL: dict[str, JsonValue] = {"type": "string", "minLength": 1, "maxLength": MAX_LABEL_LENGTH, "pattern": LABEL_PATTERN}
_IMAGES = {"type": "array", "items": IMAGE, "minItems": 1, "maxItems": MAX_IMAGES_PER_ENROLMENT}
_METADATA: dict[str, JsonValue] = {
    "type": "object",
    "description": f'A JSON object of at most {MAX_METADATA_BYTES} bytes, e.g. {{"sku": "123"}}.',
}
_CREATE_BODY = multipart_body(
    {
        "label": {**_LABEL, "description": "Human-readable name."},
        "images": {**_IMAGES, "description": f"1-{MAX_IMAGES_PER_ENROLMENT} photos of the instance."},
        "metadata": _METADATA,
        "id": {
            "type": "string",
            "maxLength": MAX_ID_LENGTH,
            "pattern": FORM_ID_PATTERN,
            "description": "Optional id (blank: one is generated): no slashes or control characters, not '.' or '..'.",
        },
    },
    ["label", "images"],
    "The new instance: its label, photos and optionally metadata and id.",
)
_ADD_BODY = multipart_body({"images": _IMAGES}, ["images"], f"1-{MAX_IMAGES_PER_ENROLMENT} more photos of the instance.")


class InstanceUpdate(BaseModel):
    """``PATCH`` body: the fields given replace the stored ones (``metadata`` as a whole)."""

    # At least one of the two, not null: the schema says so (the route answers 422 otherwise).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["label"], "properties": {"label": _LABEL}},
                {"required": ["metadata"], "properties": {"metadata": _METADATA}},
            ]
        },
    )
    label: str | None = Field(None, max_length=MAX_LABEL_LENGTH, json_schema_extra={"minLength": 1, "pattern": LABEL_PATTERN})
    metadata: dict[str, Any] | None = None


def _image_record(recognizer: Any, image_id: int) -> ImageRecord:
    """The record of one image (404 if unknown)."""
    return recognizer.gallery.image(image_id)


def _enrolment_view(request: Request, result: Any, images: list[ImageRecord]) -> dict[str, Any]:
    return {
        **instance_view(request, result.instance, images),
        "added_images": [i.id for i in result.added],
        "duplicate_images": [i.id for i in result.duplicates],
    }


@router.post(
    "/instances",
    status_code=201,
    dependencies=[Depends(require_admin)],
    responses={**UPLOAD_ERRORS, **error_responses(409)},
    openapi_extra=_CREATE_BODY,
    summary="Enrol a new instance from 1-3 photos",
)
async def create_instance(
    request: Request,
    state: State,
    collection: InCollection,
    label: Annotated[str, Form(description="Human-readable name (1-1000 characters).")],
    images: Annotated[list[UploadFile], File(description="1-3 photos of the instance.")],
    metadata: Annotated[str | None, Form(description='Optional JSON object, e.g. {"sku": "123"}.')] = None,
    id: Annotated[str | None, Form(description="Optional id (default: generated); no slashes.")] = None,
) -> dict[str, Any]:
    clean_label = parse_label(label, required=True)
    meta = parse_metadata(metadata)
    instance_id = parse_instance_id(id)
    data = await read_uploads(images, most=MAX_IMAGES_PER_ENROLMENT, field="images")
    recognizer = collection.recognizer

    def enrol() -> tuple[Any, list[ImageRecord]]:
        result = recognizer.enroll(data, instance_id=instance_id, label=clean_label, metadata=meta or {}, new=True)
        return result, recognizer.gallery.images(result.instance.id)

    result, records = await state.write(collection, enrol, embeds=True)
    state.metrics.enrolled_images.inc(len(result.added))
    return _enrolment_view(request, result, records)


@router.post(
    "/instances/{instance_id}/images",
    dependencies=[Depends(require_admin)],
    responses={**UPLOAD_ERRORS, **error_responses(404)},
    openapi_extra=_ADD_BODY,
    summary="Add photos to an instance",
)
async def add_images(
    request: Request,
    state: State,
    collection: InCollection,
    instance_id: InstanceId,
    images: Annotated[list[UploadFile], File(description="1-3 more photos of the instance.")],
) -> dict[str, Any]:
    data = await read_uploads(images, most=MAX_IMAGES_PER_ENROLMENT, field="images")
    recognizer = collection.recognizer
    most = state.config.limits.max_images_per_instance

    def add() -> tuple[Any, list[ImageRecord]]:
        present = len(recognizer.gallery.images(instance_id))  # 404 before any work
        if present + len(data) > most:
            raise ApiError(
                422,
                "too_many_images",
                f"instance {instance_id!r} has {present} images; at most {most} are allowed (limits.max_images_per_instance)",
            )
        result = recognizer.enroll(data, instance_id=instance_id, existing=True)
        return result, recognizer.gallery.images(instance_id)

    result, records = await state.write(collection, add, embeds=True)
    state.metrics.enrolled_images.inc(len(result.added))
    return _enrolment_view(request, result, records)


@router.get("/instances", dependencies=[Depends(require_read)], summary="List or search instances")
async def list_instances(
    request: Request,
    state: State,
    collection: InCollection,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    search: Annotated[str | None, Query(max_length=200, description="Text in the label or id.")] = None,
) -> dict[str, Any]:
    recognizer = collection.recognizer
    search = search.strip() if search and search.strip() else None

    def page() -> tuple[int, list[tuple[Any, list[ImageRecord]]]]:
        total = recognizer.gallery.count(search)
        items = recognizer.gallery.list(offset=offset, limit=limit, search=search)
        return total, [(item, images_or_empty(recognizer, item.id)) for item in items]

    total, items = await state.blocking(page)
    return {
        "total": total,
        "offset": offset,
        "limit": limit,
        "search": search,
        "instances": [instance_view(request, item, images) for item, images in items],
    }


@router.get(
    "/instances/{instance_id}", dependencies=[Depends(require_read)], responses=error_responses(404), summary="One instance"
)
async def get_instance(request: Request, state: State, collection: InCollection, instance_id: InstanceId) -> dict[str, Any]:
    recognizer = collection.recognizer
    instance, images = await state.blocking(lambda: (recognizer.gallery.get(instance_id), recognizer.gallery.images(instance_id)))
    return instance_view(request, instance, images)


@router.patch(
    "/instances/{instance_id}",
    dependencies=[Depends(require_admin)],
    responses=error_responses(400, 404, 413),  # 400: a body that is not UTF-8
    summary="Update the label and/or metadata",
)
async def update_instance(
    request: Request, state: State, collection: InCollection, instance_id: InstanceId, body: InstanceUpdate
) -> dict[str, Any]:
    if body.label is None and body.metadata is None:
        raise ApiError(422, "validation_error", "nothing to update: give 'label' and/or 'metadata'")
    label = parse_label(body.label, required=False)
    metadata = check_metadata(body.metadata) if body.metadata is not None else None
    recognizer = collection.recognizer

    def update() -> tuple[Any, list[ImageRecord]]:
        instance = recognizer.gallery.update(instance_id, label=label, metadata=metadata)
        return instance, recognizer.gallery.images(instance_id)

    instance, images = await state.write(collection, update)
    return instance_view(request, instance, images)


@router.delete(
    "/instances/{instance_id}",
    status_code=204,
    dependencies=[Depends(require_admin)],
    responses=error_responses(404),
    summary="Delete an instance with its images",
)
async def delete_instance(state: State, collection: InCollection, instance_id: InstanceId) -> Response:
    recognizer = collection.recognizer
    await state.write(collection, recognizer.remove, instance_id)
    return Response(status_code=204)


@router.delete(
    "/instances",
    status_code=204,
    dependencies=[Depends(require_admin)],
    responses=error_responses(404),
    summary="Delete an instance named in the query: for an id no URL path can carry",
)
async def delete_instance_by_query(
    state: State,
    collection: InCollection,
    id: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_ID_LENGTH,
            description="The instance id, as stored: also one refused today (such as '.' or '..') but kept from before.",
        ),
    ],
) -> Response:
    recognizer = collection.recognizer
    await state.write(collection, recognizer.remove, id)
    return Response(status_code=204)


@router.get(
    "/images/{image_id}",
    dependencies=[Depends(require_read)],
    tags=["images"],
    responses=error_responses(404),
    summary="One image",
)
async def get_image(request: Request, state: State, collection: InCollection, image_id: ImageId) -> dict[str, Any]:
    recognizer = collection.recognizer
    return image_view(request, await state.blocking(_image_record, recognizer, image_id))


@router.delete(
    "/images/{image_id}",
    status_code=204,
    dependencies=[Depends(require_admin)],
    tags=["images"],
    responses=error_responses(404),
    summary="Delete one image of an instance",
)
async def delete_image(state: State, collection: InCollection, image_id: ImageId) -> Response:
    recognizer = collection.recognizer
    await state.write(collection, recognizer.remove_image, image_id)
    return Response(status_code=204)


@router.get(
    "/images/{image_id}/thumbnail",
    dependencies=[Depends(require_read)],
    tags=["images"],
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, **error_responses(404, 413)},
    summary="A JPEG thumbnail of a reference image",
)
async def thumbnail(
    request: Request,
    state: State,
    collection: InCollection,
    image_id: ImageId,
    size: Annotated[int, Query(ge=16, le=1024, description="Longest side in pixels.")] = 256,
    v: Annotated[str | None, Query(max_length=64, description="Content version from thumbnail_url.")] = None,
) -> Response:
    recognizer = collection.recognizer
    record = await state.blocking(_image_record, recognizer, image_id)
    etag = f'"{record.sha256[:32]}-{size}"'
    pinned = v is not None and record.sha256.startswith(v) and len(v) >= 8
    headers = {
        "ETag": etag,
        "Cache-Control": f"private, max-age={THUMBNAIL_MAX_AGE}, immutable" if pinned else "private, no-cache",
    }
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    key = (record.sha256, size)
    data = state.thumbnails.get(key)
    if data is None:
        data = await state.blocking(_render_thumbnail, recognizer, state, image_id, size)
        state.thumbnails.put(key, data)
    return Response(data, media_type="image/jpeg", headers=headers)


def _render_thumbnail(recognizer: Any, state: ServiceState, image_id: int, size: int) -> bytes:
    try:
        original = recognizer.gallery.image_bytes(image_id)
    except OSError:  # removed between the lookup and the read
        raise UnknownImageError(image_id) from None
    picture = _decode_for_thumbnail(original, size, state.config.limits)
    picture.thumbnail((size, size))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue()


def _decode_for_thumbnail(data: bytes, size: int, limits: LimitsConfig) -> Image.Image:
    """JPEGs are decoded at a reduced scale (PIL draft: 2-8x faster for phone photos); every other
    format goes through the engine's loader. Both check the pixel count before decoding."""
    if data[:3] == b"\xff\xd8\xff":
        try:
            with Image.open(io.BytesIO(data), formats=("JPEG",)) as im:
                if im.width * im.height <= limits.max_pixels:
                    im.draft("RGB", (size, size))
                    im.load()
                    return ImageOps.exif_transpose(im).convert("RGB")
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            pass  # let the engine's loader produce the proper typed error
    return load_image(data, limits).pixels  # same size/bomb checks as enrolment
