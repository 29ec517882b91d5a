"""Every error, ours or FastAPI's, has the same JSON shape and the right status code."""

from __future__ import annotations

import pytest

from instrec.errors import (
    ConfigError,
    CorruptImageError,
    DescriptorMismatchError,
    DuplicateInstanceError,
    ImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    InstrecError,
    NotAnImageError,
    TooManyImagesError,
    UnknownImageError,
    UnknownInstanceError,
)
from instrec.service.app import create_app
from instrec.service.errors import ApiError, engine_error, error_dict

from .helpers import TestClient, assert_error


@pytest.mark.parametrize(
    "error, status, code",
    [
        (NotAnImageError("<bytes>", "x"), 415, "not_an_image"),
        (CorruptImageError("<bytes>", "x"), 400, "corrupt_image"),
        (ImageTooSmallError("<bytes>", "x"), 400, "image_too_small"),
        (ImageTooLargeError("<bytes>", "x"), 413, "image_too_large"),
        (ImageError("<bytes>", "x"), 400, "bad_image"),
        (TooManyImagesError("mug", "x"), 422, "too_many_images"),  # as the service's own per-request check
        (UnknownInstanceError("abc"), 404, "unknown_instance"),
        (UnknownImageError(7), 404, "unknown_image"),
        (DuplicateInstanceError("exists"), 409, "duplicate_instance"),
        (DescriptorMismatchError("other model"), 500, "descriptor_mismatch"),
        (ConfigError("bad"), 500, "config_error"),
        (InstrecError("a label must be short"), 422, "invalid_request"),
    ],
)
def test_engine_errors_map_to_statuses(error, status, code):
    got_status, got_code, message = engine_error(error)
    assert (got_status, got_code) == (status, code) and message
    assert error_dict(error) == {"error": {"code": code, "message": message, "status": status}}


def test_image_error_messages_do_not_name_server_side_sources():
    _, _, message = engine_error(CorruptImageError("<bytes>", "truncated"))
    assert message == "truncated"
    assert engine_error(CorruptImageError("photo.jpg", "truncated"))[2] == "photo.jpg: truncated"


def test_api_error_and_unknown_exceptions_as_dicts():
    assert error_dict(ApiError(418, "teapot", "short and stout"))["error"] == {
        "code": "teapot",
        "message": "short and stout",
        "status": 418,
    }
    assert error_dict(RuntimeError("secret detail"))["error"]["code"] == "internal_error"


def test_unknown_route_is_404(client):
    error = assert_error(client.get("/v1/nothing-here"), 404, "not_found")
    assert "/v1/nothing-here" in error["message"]


def test_wrong_method_is_405(client):
    response = client.put("/v1/recognize")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]


def test_validation_error_has_details(client):
    error = assert_error(client.get("/v1/instances", params={"limit": "many"}), 422, "validation_error")
    assert error["details"][0]["loc"] == ["query", "limit"]
    assert "limit" in error["message"]


def test_unexpected_exceptions_are_a_generic_500(recognizer_for_errors):
    app = create_app(recognizer_for_errors.config, recognizer_for_errors)

    @app.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/boom")
    error = assert_error(response, 500, "internal_error")
    assert "secret" not in error["message"]


def test_engine_error_raised_in_a_route_is_mapped(recognizer_for_errors):
    app = create_app(recognizer_for_errors.config, recognizer_for_errors)

    @app.get("/v1/mismatch")
    async def mismatch() -> None:
        raise DescriptorMismatchError("built with another model")

    @app.get("/v1/generic")
    async def generic() -> None:
        raise InstrecError("calibration needs more data")

    with TestClient(app) as client:
        assert_error(client.get("/v1/mismatch"), 500, "descriptor_mismatch")
        assert_error(client.get("/v1/generic"), 422, "invalid_request")


@pytest.fixture(scope="module")
def recognizer_for_errors(make_recognizer):
    return make_recognizer()
