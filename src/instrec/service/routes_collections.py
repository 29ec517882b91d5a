"""Collections: list, create and delete them, and the dependency that gives a route its collection.

The routes on a library are mounted twice (:func:`instrec.service.app.create_app`): under ``/v1`` for
the default collection and under :data:`PREFIX` for the others, where :func:`collection_name` declares
the path parameter. :data:`InCollection` resolves either to the open collection, for the time of the
request, so that deleting it waits for the requests using it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, AsyncIterator

from fastapi import APIRouter, Depends, Path, Request, Response

from instrec.config import COLLECTION_PATTERN, DEFAULT_COLLECTION
from instrec.service.auth import allowed_collections, require, require_admin
from instrec.service.collections import Collection
from instrec.service.errors import ApiError, error_responses
from instrec.service.metrics import COLLECTION_KEY
from instrec.service.state import ServiceState, service_state

PREFIX = "/v1/collections/{collection}"
router = APIRouter(prefix="/v1", tags=["collections"], responses=error_responses(401, 403, 429, 503))
State = Annotated[ServiceState, Depends(service_state)]

CollectionName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=COLLECTION_PATTERN,
        description="The collection: lower-case letters, digits, '-', '_' and '.' (not first); 'default' is the home's own.",
        examples=["shoes"],
    ),
]


async def collection_name(collection: CollectionName) -> None:
    """Declares ``{collection}`` on the routes mounted under :data:`PREFIX` (the name is read by
    :func:`open_collection`, which every route of a library has, prefixed or not)."""


async def open_collection(request: Request, state: State) -> AsyncIterator[Collection]:
    """The request's collection: its path's ``{collection}``, or the default one (404 if none such)."""
    name = request.path_params.get("collection", DEFAULT_COLLECTION)
    # Checked here too: FastAPI still calls this when collection_name's parameter failed validation.
    if not re.fullmatch(COLLECTION_PATTERN, name):
        raise ApiError(422, "validation_error", f"collection: no collection can be named {name!r}")
    async with state.collections.use(name) as collection:
        request.scope[COLLECTION_KEY] = name  # the metrics' label: a name that exists, never a client's guess
        yield collection


InCollection = Annotated[Collection, Depends(open_collection)]


@router.get("/collections", summary="The collections this key may use", dependencies=[Depends(require("read", scoped=False))])
async def list_collections(request: Request, state: State) -> dict[str, Any]:
    names = await state.blocking(state.collections.names)
    allowed = allowed_collections(request)
    return {"collections": [{"name": name} for name in names if allowed is None or name in allowed]}


@router.put(
    "/collections/{collection}",
    dependencies=[Depends(require_admin)],
    status_code=201,
    responses={200: {"description": "The collection existed already"}, **error_responses(409, 422)},
    summary="Create a collection (nothing happens to one that exists)",
)
async def create_collection(state: State, collection: CollectionName, response: Response) -> dict[str, Any]:
    if not await state.collections.create(collection):
        response.status_code = 200
    return {"name": collection}


@router.delete(
    "/collections/{collection}",
    dependencies=[Depends(require_admin)],
    status_code=204,
    responses=error_responses(404, 409, 422),
    summary="Delete a collection with everything enrolled in it",
)
async def delete_collection(state: State, collection: CollectionName) -> Response:
    await state.collections.delete(collection)
    return Response(status_code=204)
