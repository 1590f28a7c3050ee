"""``POST /v1/search`` answered in front of FastAPI's routing, dependency solving and response
classes: the route every search takes (each gateway edge miss, each chat turn, each client that
sends its own vectors). On an uncached vector search those layers were about a quarter of
retrieval's CPU (py-spy, docs/benchmarks/session5-perf.md).

It does what the route does — validate the body as ``SearchRequest``, read the tenant header,
call ``SearchService.search``, answer its bytes with ``X-Cache`` (and ``X-Search-Degraded``) — and declines whatever it is not
sure of: no ``Content-Length``, a body over the limit, a non-JSON content type, a body or tenant
header that does not validate. Those take the ordinary route with the bytes already read, and it
answers them (the 422 with its field list, the 400) exactly as before. Domain and Redis errors of
the search itself get the same answers as the framework's handlers give (``ragfleet.common.errors``).
It sits inside the request context (ids, metrics, access line) and the service-token check.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from ragfleet.common.asgi import FastPath, RouteTemplate, header, read_model
from ragfleet.common.contracts import TENANT_HEADER
from ragfleet.common.errors import (
    REDIS_DOWN_ERRORS,
    RagfleetError,
    domain_error_response,
    redis_down_response,
)
from ragfleet.retrieval.search.schemas import SearchRequest
from ragfleet.retrieval.search.service import SearchService, answer_headers
from ragfleet.retrieval.store import validate_name

SEARCH_PATH = "/v1/search"
# A search body is a few KB (a 384-float vector as JSON is ~4 KB); anything larger is the route's.
MAX_FAST_BODY_BYTES = 256 * 1024
_ROUTE = RouteTemplate(SEARCH_PATH)
_TENANT = TENANT_HEADER.lower().encode()


class SearchFastPath(FastPath):
    path = SEARCH_PATH

    async def answer(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        request, replay = await read_model(scope, receive, SearchRequest, MAX_FAST_BODY_BYTES)
        if request is None:
            return replay
        try:
            tenant = validate_name("tenant", header(scope, _TENANT) or "default")
        except RagfleetError:
            return replay
        service: SearchService = scope["app"].state.search
        scope["route"] = _ROUTE  # what the router would have put there, for the request metrics
        try:
            content, tier = await service.search(tenant, request)
        except RagfleetError as exc:
            await domain_error_response(exc)(scope, replay, send)
            return None
        except REDIS_DOWN_ERRORS as exc:
            await redis_down_response(exc)(scope, replay, send)
            return None
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(content)).encode()),
                    *answer_headers(tier),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})
        return None
