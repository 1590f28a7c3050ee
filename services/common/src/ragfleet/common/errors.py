"""The error model: domain exceptions, and the one place that maps them to HTTP.

Every error response is JSON: ``{"error": {"code", "message", "request_id", ...}}``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ragfleet.common.context import current_request_id
from ragfleet.common.responses import OrjsonResponse

log = logging.getLogger("ragfleet.errors")


class RagfleetError(Exception):
    """A domain error with the HTTP status it maps to. Subclass it; raise it anywhere."""

    status_code = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details
        self.headers = headers or {}


class BadRequest(RagfleetError):
    status_code = 400
    code = "bad_request"


class Unauthorized(RagfleetError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str = "a valid API key is required", **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kwargs)


class Forbidden(RagfleetError):
    status_code = 403
    code = "forbidden"


class NotFound(RagfleetError):
    status_code = 404
    code = "not_found"


class Conflict(RagfleetError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(RagfleetError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(RagfleetError):
    status_code = 415
    code = "unsupported_media_type"


class Unprocessable(RagfleetError):
    status_code = 422
    code = "validation_error"


class RateLimited(RagfleetError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": str(max(1, round(retry_after_s)))})
        super().__init__(message, **kwargs)
        self.retry_after_s = retry_after_s


class UpstreamError(RagfleetError):
    status_code = 502
    code = "upstream_error"


class ServiceUnavailable(RagfleetError):
    status_code = 503
    code = "unavailable"


class UpstreamTimeout(RagfleetError):
    status_code = 504
    code = "upstream_timeout"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "request_id": current_request_id()}
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> OrjsonResponse:
    return OrjsonResponse(error_body(code, message, details), status_code=status, headers=headers)


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


def describe_validation_errors(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """A one-line message naming each offending field, plus the structured list."""
    details = [
        {
            "field": _field_path(err.get("loc", ())),
            "message": err.get("msg", "invalid"),
            "type": err.get("type"),
        }
        for err in errors
    ]
    message = "; ".join(f"{d['field']}: {d['message']}" for d in details) or "invalid request"
    return message, details


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def domain_error_response(exc: RagfleetError) -> OrjsonResponse:
    """The answer to a domain error (also for the fast paths that answer outside the framework)."""
    if exc.status_code >= 500:
        log.warning("request failed: %s", exc.message, extra={"error_code": exc.code})
    return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


def redis_down_response(exc: Exception) -> OrjsonResponse:
    """A feature whose Redis is gone answers 503 (readiness stays up: see ragfleet.common.health);
    the server's address stays in the log, not in the answer."""
    log.warning("redis unavailable: %s", exc, extra={"error_code": "redis_unavailable"})
    return error_response(
        503, "redis_unavailable", "a data store this request needs is unavailable; retry shortly"
    )


REDIS_DOWN_ERRORS = (RedisConnectionError, RedisTimeoutError)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RagfleetError)
    async def _domain(_: Request, exc: RagfleetError) -> OrjsonResponse:
        return domain_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> OrjsonResponse:
        message, details = describe_validation_errors(list(exc.errors()))
        return error_response(422, "validation_error", message, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> OrjsonResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        if exc.status_code == 404 and exc.detail == "Not Found":
            message = f"no route {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    async def _redis_down(_: Request, exc: Exception) -> OrjsonResponse:
        return redis_down_response(exc)

    for redis_error in REDIS_DOWN_ERRORS:
        app.add_exception_handler(redis_error, _redis_down)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> OrjsonResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "internal error; quote the request id when reporting it")
