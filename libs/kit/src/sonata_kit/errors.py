"""One error model for every service, rendered as {"error": code, "detail": ...}."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("sonata.kit.errors")

Detail = str | list[Any] | dict[str, Any]


class ServiceError(Exception):
    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        detail: Detail,
        *,
        code: str | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail if isinstance(detail, str) else repr(detail))
        self.detail = detail
        self.code = code or self.default_code
        self.status_code = status or self.status
        self.headers = dict(headers or {})


class BadRequest(ServiceError):  # noqa: N818 - named after its HTTP status
    status = 400
    default_code = "bad_request"


class Unauthorized(ServiceError):  # noqa: N818 - named after its HTTP status
    status = 401
    default_code = "unauthorized"

    def __init__(
        self,
        detail: Detail,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            detail, code=code, headers={"WWW-Authenticate": "Bearer", **(headers or {})}
        )


class Forbidden(ServiceError):  # noqa: N818 - named after its HTTP status
    status = 403
    default_code = "forbidden"


class NotFound(ServiceError):  # noqa: N818 - named after its HTTP status
    status = 404
    default_code = "not_found"


class Conflict(ServiceError):  # noqa: N818 - named after its HTTP status
    status = 409
    default_code = "conflict"


class Unprocessable(ServiceError):  # noqa: N818 - named after its HTTP status
    status = 422
    default_code = "unprocessable"


class TooManyRequests(ServiceError):  # noqa: N818 - named after its HTTP status
    status = 429
    default_code = "too_many_requests"


class ServiceUnavailable(ServiceError):  # noqa: N818 - named after its HTTP status
    status = 503
    default_code = "service_unavailable"


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "too_many_requests",
    503: "service_unavailable",
}


def error_response(
    status: int, code: str, detail: Detail, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": code, "detail": jsonable_encoder(detail)},
        status_code=status,
        headers=dict(headers) if headers else None,
    )


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc.status_code, exc.code, exc.detail, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    return error_response(422, "validation_error", problems)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    detail = exc.detail if isinstance(exc.detail, str | list | dict) else str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route for {request.method} {request.url.path}"
    return error_response(exc.status_code, code, detail, exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "unexpected error; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
