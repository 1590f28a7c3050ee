"""``POST /v1/chat/completions`` and ``POST /v1/embeddings`` in front of FastAPI's routing, dependency
solving and exception middleware: every proxied request takes one of the two. Under the 200 req/s
benchmark those layers were about a quarter of the proxy's CPU per request (py-spy,
docs/benchmarks/llm-proxy.md), for work that is the same on every request.

The routes themselves (routes.py) still do the work: the fast path calls the very route functions
with the parts the lifespan built, so limits, caching, retries, breaker, fallbacks and accounting
are the route's, line for line. It only takes over what the framework did around them: parse the
JSON and validate it as the route's body model (as FastAPI does for a body parameter), and answer
domain and Redis errors the way the app's handlers do (``ragfleet.common.errors``). It declines
whatever it is not sure of — no ``Content-Length``, a body over the limit, a non-JSON content type,
a body that does not parse or validate — and the ordinary route answers those (the 422 with its
field list) with the bytes already read. It sits innermost: inside the load shedder, the request
context (ids, metrics, access line), the service-token check and the per-key concurrency limit.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ragfleet.common.asgi import FastPath, RouteTemplate, read_model
from ragfleet.common.errors import (
    REDIS_DOWN_ERRORS,
    RagfleetError,
    domain_error_response,
    redis_down_response,
)
from ragfleet.llm_proxy import routes
from ragfleet.llm_proxy.schemas import ChatCompletionRequest, EmbeddingRequest

# A chat body carries its retrieved context: tens of KB. Anything larger takes the ordinary route.
MAX_FAST_BODY_BYTES = 1024 * 1024


class _RouteFastPath(FastPath):
    """Parse and validate the body as ``body_model``, then call the route with ``app.state``'s parts."""

    body_model: type[BaseModel]

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self.route = RouteTemplate(self.path)  # what the router would put in the scope, for the metrics

    async def call_route(self, state: State, body: Any, request: Request) -> Response:
        raise NotImplementedError

    async def answer(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        body, replay = await read_model(scope, receive, self.body_model, MAX_FAST_BODY_BYTES)
        if body is None:
            return replay
        scope["route"] = self.route
        # The body is read: what ``receive`` gives from now on is the client's disconnect, which
        # the route watches for to cancel the upstream call.
        request = Request(scope, receive)
        try:
            response = await self.call_route(scope["app"].state, body, request)
        except RagfleetError as exc:
            response = domain_error_response(exc)
        except REDIS_DOWN_ERRORS as exc:
            response = redis_down_response(exc)
        await response(scope, receive, send)
        return None


class ChatCompletionsFastPath(_RouteFastPath):
    path = "/v1/chat/completions"
    body_model = ChatCompletionRequest

    async def call_route(self, state: State, body: Any, request: Request) -> Response:
        return await routes.chat_completions(
            body=body,
            request=request,
            settings=state.settings,
            registry=state.registry,
            dispatcher=state.dispatcher,
            breakers=state.breakers,
            limiter=state.limiter,
            cache=state.response_cache,
        )


class EmbeddingsFastPath(_RouteFastPath):
    path = "/v1/embeddings"
    body_model = EmbeddingRequest

    async def call_route(self, state: State, body: Any, request: Request) -> Response:
        return await routes.embeddings(
            body=body,
            request=request,
            settings=state.settings,
            registry=state.registry,
            dispatcher=state.dispatcher,
            limiter=state.limiter,
            builtin=state.builtin_embeddings,
        )
