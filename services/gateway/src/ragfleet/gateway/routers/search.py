"""``POST /v1/search``: retrieval's search, for the key's tenant and collections.

The hot route of the public API, so it has a fast path (``EdgeSearchMiddleware``): a request
whose exact bytes this replica has answered before for the same tenant is answered from the edge
tier before FastAPI routes, parses, validates or resolves anything — the key check and the rate limit still
run, in process (keys cached with a TTL, rate-limit tokens leased from Redis in batches). Every
other request (a first sight, a 4xx of any kind, a body over the limit) takes the ordinary
route, which re-reads the bytes already received.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ragfleet.common.asgi import FastPath, Replay, RouteTemplate, declared_length, read_body
from ragfleet.common.contracts import DEGRADED_HEADER, PublicSearchRequest
from ragfleet.common.errors import RagfleetError
from ragfleet.gateway.auth import (
    AUTH_ERROR_SCOPE_KEY,
    PRINCIPAL_SCOPE_KEY,
    Authenticated,
    client_address,
    get_authenticator,
    presented_key,
)
from ragfleet.gateway.body_limits import SizeLimitedRoute
from ragfleet.gateway.config import GatewaySettings
from ragfleet.gateway.dependencies import SearchAnswersDep, SettingsDep, StatsDep
from ragfleet.gateway.search_answers import EdgeAnswer, SearchAnswers
from ragfleet.gateway.stats import GatewayStats

_JSON = b"application/json"


def accepts_gzip(accept_encoding: str) -> bool:
    return "gzip" in accept_encoding.lower()


def encoded_answer(
    answer: EdgeAnswer, took_ms: float, accept_encoding: str, gzip_min_bytes: int
) -> tuple[bytes, bool]:
    """The answer's bytes, gzip when the client takes it and the answer is worth it."""
    if gzip_min_bytes and len(answer.body) >= gzip_min_bytes and accepts_gzip(accept_encoding):
        return answer.gzip(took_ms), True
    return answer.json(took_ms), False


SEARCH_PATH = "/v1/search"


_EDGE_ROUTE = RouteTemplate(SEARCH_PATH)


class EdgeSearchMiddleware(FastPath):
    """Answers repeats of an exact ``POST /v1/search`` body from the edge tier, in front of the
    framework's exception handling and routing (a quarter of an edge hit's CPU went there, py-spy,
    docs/benchmarks/session4-perf.md). It sits just inside the request-context middleware, so
    every answer still gets its request id, ``X-Response-Time``, metrics and access line."""

    path = SEARCH_PATH

    async def answer(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """None when answered; else the ``receive`` the ordinary route must read from."""
        started = time.perf_counter()
        connection = HTTPConnection(scope)
        # This runs before FastAPI resolves dependencies: it reads the same app.state attributes
        # the SearchAnswersDep/SettingsDep/StatsDep aliases do, directly.
        state = connection.app.state
        answers: SearchAnswers = state.search_answers
        if answers.edge is None:
            return receive
        settings: GatewaySettings = state.settings
        declared = declared_length(scope)
        if declared is None or declared > settings.max_body_bytes:
            # An oversized (or undeclared) body is the ordinary route's to refuse at once, before
            # any of it is read: waiting here for a body that never comes would hold the connection.
            return receive
        body, more_body, pending = await read_body(receive, settings.max_body_bytes)
        replay = Replay(receive, body, more_body, pending)
        if more_body or pending is not None:
            return replay
        authenticator = get_authenticator(connection)
        try:
            principal = await authenticator.principal(presented_key(connection), client_address(connection))
        except RagfleetError as exc:
            # The ordinary route raises it, as JSON, the usual way (without spending the address's
            # anonymous budget a second time).
            scope[AUTH_ERROR_SCOPE_KEY] = exc
            return replay
        scope[PRINCIPAL_SCOPE_KEY] = principal  # authenticated once, whichever path answers
        answer = answers.recall(principal.tenant, body)
        if answer is None or not principal.may_use(answer.collection):
            return replay
        try:
            await authenticator.enforce_rate_limit(principal)
        except RagfleetError as exc:
            # Outside the framework's error handlers here: the ordinary route answers the 429.
            scope[AUTH_ERROR_SCOPE_KEY] = exc
            return replay
        # What the router would have put there; the request metrics read the template from it.
        scope["route"] = _EDGE_ROUTE
        stats: GatewayStats = state.stats
        stats.count_search_cache("hit-edge")
        content, gzipped = encoded_answer(
            answer,
            (time.perf_counter() - started) * 1000,
            connection.headers.get("accept-encoding", ""),
            settings.edge_gzip_min_bytes,
        )
        headers = [
            (b"content-type", _JSON),
            (b"content-length", str(len(content)).encode()),
            (b"x-cache", b"hit-edge"),
            (b"vary", b"Accept-Encoding"),
        ]
        if gzipped:
            headers.append((b"content-encoding", b"gzip"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})
        return None


router = APIRouter(prefix="/v1", tags=["search"], route_class=SizeLimitedRoute)


class SearchHit(BaseModel):
    id: str
    document_id: str
    text: str
    score: float
    metadata: dict[str, Any] = Field(default_factory=dict)


class SearchResponse(BaseModel):
    results: list[SearchHit]
    took_ms: float
    mode: str
    collection: str
    degraded: str | None = Field(
        None,
        description="present when the answer is less than was asked: embedder_busy (a hybrid search "
        "answered BM25-only — mode says bm25 — because its query could not be embedded in time; not cached)",
    )


@router.post(
    "/search",
    response_model=SearchResponse,
    summary="Search a collection (vector, BM25 or hybrid)",
    responses={
        200: {
            "headers": {
                "X-Cache": {
                    "description": "hit-edge (this gateway's memory), hit-l1, hit-l2 or hit-semantic (retrieval's), or miss"
                },
                "X-Search-Degraded": {
                    "description": "present when the answer is less than was asked: embedder_busy (a hybrid "
                    "search answered BM25-only, its query could not be embedded in time; not cached)"
                },
            }
        }
    },
)
async def search(
    body: PublicSearchRequest,
    request: Request,
    principal: Authenticated,
    answers: SearchAnswersDep,
    stats: StatsDep,
    settings: SettingsDep,
) -> Response:
    started = time.perf_counter()
    principal.require_collection(body.collection)
    raw_body = await request.body()  # already read (and size-checked) for ``body``
    answer, cache = await answers.answer(principal, body.model_dump(exclude_none=True), raw_body)
    stats.count_search_cache(cache)
    # Relayed as bytes: re-encoding retrieval's JSON would cost more than the rest of the hop.
    content, gzipped = encoded_answer(
        answer,
        (time.perf_counter() - started) * 1000,
        request.headers.get("accept-encoding", ""),
        settings.edge_gzip_min_bytes,
    )
    headers = {"vary": "Accept-Encoding"}
    if cache:
        headers["x-cache"] = cache
    if answer.degraded is not None:
        headers[DEGRADED_HEADER] = answer.degraded
    if gzipped:
        headers["content-encoding"] = "gzip"
    return Response(content, media_type="application/json", headers=headers)
