"""The search fast path on its own (no process): what it answers itself and what it hands on."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson

from ragfleet.common.errors import NotFound
from ragfleet.retrieval.search.fast_path import SearchFastPath
from ragfleet.retrieval.search.schemas import SearchRequest


class Service:
    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, SearchRequest]] = []
        self.error = error

    async def search(self, tenant: str, request: SearchRequest) -> tuple[bytes, str]:
        self.calls.append((tenant, request))
        if self.error is not None:
            raise self.error
        return b'{"took_ms":1.0,"results":[]}', "hit-l1"


async def call(
    service: Service, body: bytes, *, length: bool = True, tenant: bytes = b"acme"
) -> dict[str, Any]:
    headers = [(b"content-type", b"application/json"), (b"x-ragfleet-tenant", tenant)]
    if length:
        headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/search",
        "headers": headers,
        "app": SimpleNamespace(state=SimpleNamespace(search=service)),
    }
    handed_on: list[bytes] = []
    sent: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()  # the ordinary route re-reads the bytes the fast path took
        handed_on.append(message["body"])

    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await SearchFastPath(inner)(scope, receive, send)
    return {"handed_on": handed_on, "sent": sent, "route": scope.get("route")}


async def test_a_valid_search_is_answered_without_the_framework() -> None:
    service = Service()
    result = await call(service, orjson.dumps({"collection": "docs", "query": "cats", "top_k": 3}))
    assert result["handed_on"] == []
    [(tenant, request)] = service.calls
    assert tenant == "acme" and request.query == "cats" and request.top_k == 3
    start, body = result["sent"]
    assert start["status"] == 200
    assert dict(start["headers"])[b"x-cache"] == b"hit-l1"
    assert body["body"] == b'{"took_ms":1.0,"results":[]}'
    assert result["route"].path == "/v1/search"  # the request metrics see the route's template


async def test_what_it_is_not_sure_of_goes_to_the_ordinary_route_with_its_bytes() -> None:
    for body, kwargs in [
        (b'{"collection": "docs", "query": "x", "top_k": 0}', {}),  # the route answers the 422
        (b"{not json", {}),
        (b'{"collection": "docs", "query": "x"}', {"tenant": b"Not A Tenant!"}),  # the route's 400
        (b'{"collection": "docs", "query": "x"}', {"length": False}),  # chunked: no Content-Length
    ]:
        service = Service()
        result = await call(service, body, **kwargs)
        assert result["handed_on"] == [body], body
        assert service.calls == [] and result["sent"] == []


async def test_a_domain_error_of_the_search_gets_the_error_model() -> None:
    service = Service(NotFound("collection 'nope' does not exist", code="collection_not_found"))
    result = await call(service, orjson.dumps({"collection": "nope", "query": "x"}))
    assert result["handed_on"] == []
    start, body = result["sent"]
    assert start["status"] == 404
    error = orjson.loads(body["body"])["error"]
    assert error["code"] == "collection_not_found" and "does not exist" in error["message"]
