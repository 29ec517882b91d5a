"""Operations: stats, calibration, liveness/readiness, Prometheus metrics."""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse

import instrec
from instrec.errors import InstrecError
from instrec.service.auth import require_admin, require_read
from instrec.service.errors import ApiError, error_response, error_responses
from instrec.service.metrics import CONTENT_TYPE
from instrec.service.routes_collections import InCollection
from instrec.service.state import ServiceState, service_state

router = APIRouter(tags=["admin"])  # the service's own routes
library_router = APIRouter(tags=["admin"])  # a collection's, mounted per collection (app.create_app)
State = Annotated[ServiceState, Depends(service_state)]


def _service_info(state: ServiceState) -> dict[str, Any]:
    service = state.config.service
    return {
        "version": instrec.__version__,
        "auth": state.keys.enabled,
        "workers": service.workers,
        "inference_slots": state.inference_slots,
        "max_upload_bytes": service.max_upload_bytes,
        "uptime_s": round(time.time() - state.started_at, 1),
    }


@library_router.get(
    "/stats",
    dependencies=[Depends(require_read)],
    responses=error_responses(401, 403, 429, 503),
    summary="Library and service statistics",
)
async def stats(state: State, collection: InCollection) -> dict[str, Any]:
    recognizer = collection.recognizer
    body = await state.blocking(recognizer.stats)
    body.pop("home", None)  # no server paths in responses
    return {**body, "service": _service_info(state)}


@router.get(
    "/v1/stats/history",
    dependencies=[Depends(require_admin)],
    responses=error_responses(401, 403, 429, 503),
    summary="Per-minute traffic, latency, unknown rate and best-match scores of the last hours",
)
async def stats_history(state: State) -> dict[str, Any]:
    return state.metrics.history.to_dict()


@library_router.post(
    "/calibrate",
    dependencies=[Depends(require_admin)],
    responses=error_responses(401, 403, 409, 422, 429, 503),
    summary="Re-estimate the 'unknown' threshold from the gallery",
)
async def calibrate(
    state: State,
    collection: InCollection,
    target_far: Annotated[float | None, Query(gt=0, lt=1, description="False-accept rate to aim for.")] = None,
) -> dict[str, Any]:
    recognizer = collection.recognizer

    def run() -> Any:
        try:
            return recognizer.calibrate(target_far)
        except InstrecError as error:
            raise ApiError(409, "calibration_impossible", str(error)) from None

    result = await state.write(collection, run, embeds=True)
    return {**dataclasses.asdict(result), "summary": result.describe()}


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz(state: State) -> dict[str, Any]:
    return {"status": "ok", "ready": state.ready, "auth": state.keys.enabled, "version": instrec.__version__}


@router.get(
    "/readyz",
    summary="Readiness: model loaded and catalog reachable",
    responses=error_responses(503),
)
async def readyz(state: State) -> Response:
    if not state.ready or state.recognizer is None:
        return error_response(503, "not_ready", "the service is starting or stopping")
    recognizer = state.recognizer
    try:
        instances = await state.blocking(recognizer.gallery.count)
    except Exception as error:  # noqa: BLE001 - readiness reports any failure as not ready
        return error_response(503, "not_ready", f"catalog unreachable: {type(error).__name__}")
    return JSONResponse({"status": "ready", "instances": instances})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
async def metrics(state: State) -> Response:
    sizes = await state.library_sizes()
    return Response(await state.blocking(state.metrics.render, sizes), media_type=CONTENT_TYPE)
