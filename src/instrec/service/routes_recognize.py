"""Recognition: one image (multipart or raw bytes) or a batch -> top-k instances or "unknown"."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile

from instrec.errors import ImageError
from instrec.service.auth import require_read
from instrec.service.errors import error_dict, error_responses
from instrec.service.schemas import BatchOut, RecognitionOut
from instrec.service.routes_collections import InCollection
from instrec.service.state import ServiceState, service_state
from instrec.service.uploads import (
    IMAGE,
    MAX_BATCH,
    MAX_K,
    display_name,
    multipart_body,
    parse_k,
    read_single_image,
    read_uploads,
)
from instrec.service.views import images_of_many, recognition_view

if TYPE_CHECKING:
    from instrec.catalog import ImageRecord
    from instrec.recognizer import Recognition, Recognizer

router = APIRouter(
    tags=["recognition"],
    dependencies=[Depends(require_read)],
    responses=error_responses(401, 403, 413, 422, 429, 503),
)
State = Annotated[ServiceState, Depends(service_state)]

_K = {"type": "integer", "minimum": 1, "maximum": MAX_K, "description": "How many instances to return."}
_SINGLE_BODY = {
    "requestBody": {
        "required": True,
        "description": "Either multipart/form-data with an `image` file (and optional `k`), or the raw image "
        "bytes with Content-Type image/* or application/octet-stream.",
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["image"], "properties": {"image": IMAGE, "k": _K}},
                "encoding": {"image": {"contentType": "image/*"}},
            },
            "image/*": {"schema": IMAGE},
            "application/octet-stream": {"schema": IMAGE},
        },
    }
}


Answer = tuple["Recognition", "list[Recognition] | None"]  # the photo's answer, and a faces library's every face


def _answer(recognizer: "Recognizer", image: bytes, k: int | None) -> Answer:
    """A faces library answers with the largest face and lists every face; others with the photo."""
    if not recognizer.config.embeds_faces:
        return recognizer.recognize(image, k), None
    faces = recognizer.recognize_faces(image, k)
    return faces[0], faces


def _answer_or_error(recognizer: "Recognizer", image: bytes, k: int | None) -> "Answer | ImageError":
    try:
        return _answer(recognizer, image, k)
    except ImageError as error:
        return error


def _matched(answers: "list[Answer]") -> list[str]:
    """The instances named by the answers and by every face in them (their images are looked up)."""
    return [m.instance_id for result, faces in answers for r in (faces or [result]) for m in r.matches]


@router.post(
    "/recognize",
    openapi_extra=_SINGLE_BODY,
    responses=error_responses(400, 415),
    response_model=RecognitionOut,
    response_model_exclude_unset=True,
    summary="Recognise one photo",
)
async def recognize(
    request: Request,
    state: State,
    collection: InCollection,
    k: Annotated[int | None, Query(ge=1, le=MAX_K, description="How many instances to return.")] = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    data, filename, form_k = await read_single_image(request)
    recognizer = collection.recognizer
    k = k or form_k
    queued = time.perf_counter()

    def run() -> tuple[float, Answer, dict[str, list[ImageRecord]]]:
        """Engine and catalog lookups in one trip to a worker thread: each trip costs a thread hop."""
        running = time.perf_counter()
        answer = _answer(recognizer, data, k)
        return running, answer, images_of_many(recognizer, _matched([answer]))

    running, (result, faces), images = await state.inference(run)
    state.metrics.observe_recognitions([result])
    timing = {"queue": (running - queued) * 1e3, "request": (time.perf_counter() - started) * 1e3}
    body = recognition_view(request, result, images, timing, faces)
    if filename:
        body["filename"] = filename
    return body


_BATCH_BODY = multipart_body(
    {"images": {"type": "array", "items": IMAGE, "minItems": 1, "maxItems": MAX_BATCH}, "k": _K},
    ["images"],
    f"1-{MAX_BATCH} photos, each answered on its own (a bad one gets its error in its place), and optionally k.",
)


@router.post(
    "/recognize/batch",
    openapi_extra=_BATCH_BODY,
    response_model=BatchOut,
    summary="Recognise several photos (each answered on its own)",
)
async def recognize_batch(
    request: Request,
    state: State,
    collection: InCollection,
    images: Annotated[list[UploadFile], File(description=f"1-{MAX_BATCH} photos.")],
    k: Annotated[int | None, Form(ge=1, le=MAX_K)] = None,
    k_query: Annotated[int | None, Query(alias="k", ge=1, le=MAX_K)] = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    data = await read_uploads(images, most=MAX_BATCH, field="images")
    names = [display_name(upload, i) for i, upload in enumerate(images)]
    k = k or k_query or parse_k(None)
    recognizer = collection.recognizer

    def run() -> tuple[list["Answer | Exception"], dict[str, list[ImageRecord]]]:
        outcomes: list[Answer | Exception] | None = None
        if not recognizer.config.embeds_faces:  # a faces library searches each photo for faces on its own
            try:
                outcomes = [(result, None) for result in recognizer.recognize_many(data, k)]
            except ImageError:  # one bad image fails the batch call: answer each image on its own
                pass
        if outcomes is None:
            outcomes = [_answer_or_error(recognizer, item, k) for item in data]
        good = [o for o in outcomes if not isinstance(o, Exception)]
        return outcomes, images_of_many(recognizer, _matched(good))  # one trip to a worker thread

    outcomes, catalog_images = await state.inference(run)
    state.metrics.observe_recognitions([o[0] for o in outcomes if not isinstance(o, Exception)])
    results = []
    for name, outcome in zip(names, outcomes):
        if isinstance(outcome, Exception):
            results.append({"filename": name, **error_dict(outcome)})
        else:
            results.append({"filename": name, **recognition_view(request, outcome[0], catalog_images, None, outcome[1])})
    return {"results": results, "timing_ms": {"request": round((time.perf_counter() - started) * 1e3, 3)}}
