"""``create_service_app``: what every ragfleet FastAPI app is made of, assembled in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.datastructures import State

from ragfleet.common.config import ServiceSettings
from ragfleet.common.errors import install_error_handlers
from ragfleet.common.health import ReadinessCheck, health_router
from ragfleet.common.logging import configure_logging
from ragfleet.common.metrics import metrics_endpoint
from ragfleet.common.middleware import RequestContextMiddleware, ResponseObserver
from ragfleet.common.service_auth import ServiceTokenMiddleware
from ragfleet.common.telemetry import setup_tracing, shutdown_tracing

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str = "",
    lifespan: Lifespan | None = None,
    readiness: Callable[[State], dict[str, ReadinessCheck]] = lambda _state: {},
    observer: ResponseObserver | None = None,
    public: bool = False,
    **fastapi_kwargs: Any,
) -> FastAPI:
    """A FastAPI app with logging, tracing, the error model, request context, metrics and health.

    ``lifespan`` opens the service's clients (store them on ``app.state``); ``readiness`` maps
    names to checks of what this process itself needs to serve (never another service or Redis:
    see ``ragfleet.common.health``), read from that state. ``/metrics`` is served here only when
    ``metrics_port`` is 0; otherwise ``serve`` gives it a listener of its own and this port
    answers 404. ``docs_enabled`` switches ``/docs``, ``/redoc`` and ``/openapi.json``.
    Unless ``public`` (the gateway), every route but the probes needs the service token when one
    is set (ragfleet.common.service_auth).
    """
    if not settings.docs_enabled:
        fastapi_kwargs.update(docs_url=None, redoc_url=None, openapi_url=None)
    configure_logging(settings.service_name, settings.log_level)
    setup_tracing(settings.service_name, settings.otlp_endpoint)

    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        try:
            if lifespan is None:
                yield
            else:
                async with lifespan(app):
                    yield
        finally:
            shutdown_tracing()

    app = FastAPI(
        title=title,
        description=description,
        version="0.1.0",
        lifespan=_lifespan,
        # RequestContextMiddleware already opens the server span and counts the request; FastAPI's
        # own telemetry would add a second span and metric set per request on the hot path.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        **fastapi_kwargs,
    )
    install_error_handlers(app)
    document_error_model(app)
    token = settings.service_token.get_secret_value()
    if token and not public:
        # Added first, so it runs inside the request context: refusals get a request id and a metric.
        app.add_middleware(ServiceTokenMiddleware, token=token)
    app.add_middleware(
        RequestContextMiddleware,
        service=settings.service_name,
        replica=settings.replica_name,
        access_log_enabled=settings.access_log,
        observer=observer,
    )
    app.include_router(health_router(settings.service_name, lambda: readiness(app.state)))
    if not settings.metrics_port:
        app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    return app


# What every 4xx/5xx body looks like (ragfleet.common.errors.error_body).
ERROR_RESPONSE_SCHEMA: dict[str, Any] = {
    "title": "ErrorResponse",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "request_id"],
            "properties": {
                "code": {"type": "string", "description": "stable, machine-readable"},
                "message": {"type": "string", "description": "what was wrong, for people"},
                "request_id": {"type": "string", "description": "quote it when reporting a problem"},
                "details": {"description": "e.g. one {field, message, type} per invalid field"},
            },
        }
    },
}
_FASTAPI_422 = "#/components/schemas/HTTPValidationError"


def document_error_model(app: FastAPI) -> None:
    """Make the OpenAPI document say what a 422 really returns: our error model, not FastAPI's."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            text = (
                orjson.dumps(generate()).decode().replace(_FASTAPI_422, "#/components/schemas/ErrorResponse")
            )
            schema: dict[str, Any] = orjson.loads(text)
            schemas = schema.get("components", {}).get("schemas", {})
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            if schema.get("paths"):
                schemas["ErrorResponse"] = ERROR_RESPONSE_SCHEMA
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise it
