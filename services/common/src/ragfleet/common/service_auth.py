"""Internal endpoints answer only ragfleet services: the shared service token, checked in one place.

Every internal client sends the token (``create_http_client``); every internal service (retrieval,
ingestion, llm-proxy) refuses a request without it, so the tenant header those services act on
(``X-Ragfleet-Tenant``) is believed only from a caller that proved it is a ragfleet service — a
pod that can merely reach them is not enough. Probes and scrapes stay open (kubelet and
Prometheus carry no token); ``/docs`` and ``/openapi.json`` have their own switch (``docs_enabled``).

An empty token turns the check off: development only, ``ServiceSettings`` refuses it elsewhere.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from ragfleet.common.contracts import SERVICE_TOKEN_HEADER
from ragfleet.common.errors import error_response

OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
_HEADER = SERVICE_TOKEN_HEADER.lower().encode("latin-1")
# WebSocket close code for a refused token, in the private range like the gateway's (4000 + status).
WS_UNAUTHORIZED = 4401


class ServiceTokenMiddleware:
    """Pure ASGI, inside the request-context middleware (so a refusal has a request id and is counted)."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        self.expected = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        presented = b""
        for name, value in scope["headers"]:
            if name == _HEADER:
                presented = value
                break
        # Constant time: how much of a guess matched must not show in how long the refusal took.
        if hmac.compare_digest(presented, self.expected):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send(
                {"type": "websocket.close", "code": WS_UNAUTHORIZED, "reason": "service token required"}
            )
            return
        message = (
            f"this is an internal endpoint: send a valid {SERVICE_TOKEN_HEADER}"
            if presented == b""
            else f"the {SERVICE_TOKEN_HEADER} is not valid"
        )
        response = error_response(401, "service_token_required", message)
        await response(scope, receive, send)
