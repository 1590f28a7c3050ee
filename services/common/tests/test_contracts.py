"""The contracts between services: one definition, and the gateway's search request a subset of retrieval's."""

from __future__ import annotations

import orjson
import pytest
from pydantic import TypeAdapter, ValidationError

from ragfleet.common.contracts import (
    CollectionName,
    DownstreamError,
    PublicSearchRequest,
    SearchRequest,
    downstream_error,
    prefix_json_field,
    strip_leading_json_field,
)
from ragfleet.common.errors import ServiceUnavailable, UpstreamError, UpstreamTimeout


def test_public_search_request_is_a_subset_of_retrievals() -> None:
    assert issubclass(PublicSearchRequest, SearchRequest)
    assert PublicSearchRequest.model_fields.keys() == SearchRequest.model_fields.keys()
    public = PublicSearchRequest.model_json_schema()["properties"]
    internal = SearchRequest.model_json_schema()["properties"]
    assert public == internal, "the gateway must not loosen or tighten a field on its own"


@pytest.mark.parametrize(
    "body",
    [
        {"query": "what is hnsw"},
        {"vector": [0.1] * 384, "top_k": 3},
        {"query": "redis", "mode": "hybrid", "alpha": 0.3, "fusion": "rrf", "collection": "faq-2"},
        {"query": "x", "mode": "bm25", "filters": {"lang": "en"}},
    ],
)
def test_every_public_request_is_one_retrieval_accepts(body: dict[str, object]) -> None:
    public = PublicSearchRequest.model_validate(body)
    assert SearchRequest.model_validate(public.model_dump()) == SearchRequest.model_validate(body)


@pytest.mark.parametrize(
    "body",
    [
        {"query": "a", "vector": [0.1] * 384},  # retrieval takes both; the public API exactly one
        {},
        {"query": "   "},
        {"query": "a", "collection": "Bad Name"},
        {"query": "a", "top_k": 101},
        {"query": "a", "surprise": 1},
    ],
)
def test_the_public_api_refuses(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PublicSearchRequest.model_validate(body)


def test_collection_names() -> None:
    names = TypeAdapter(CollectionName)
    assert names.validate_python("a-b_c9") == "a-b_c9"
    for bad in ("", "-a", "A", "a" * 64, "a/b", "a b"):
        with pytest.raises(ValidationError):
            names.validate_python(bad)


def error(code: str, message: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "request_id": "r"}})


def test_downstream_4xx_is_relayed_with_its_own_status_and_code() -> None:
    mapped = downstream_error("retrieval", 404, error("collection_not_found", "no such collection"))
    assert isinstance(mapped, DownstreamError)
    assert (mapped.status_code, mapped.code, mapped.message) == (
        404,
        "collection_not_found",
        "no such collection",
    )
    assert downstream_error("retrieval", 200, b"{}") is None


@pytest.mark.parametrize(
    ("status", "kind"),
    [(502, ServiceUnavailable), (503, ServiceUnavailable), (504, UpstreamTimeout), (500, UpstreamError)],
)
def test_downstream_5xx_becomes_ours(status: int, kind: type[Exception]) -> None:
    mapped = downstream_error("retrieval", status, b"<html>not json</html>")
    assert isinstance(mapped, kind)


def test_took_ms_splice_keeps_valid_json() -> None:
    body = orjson.dumps({"results": [{"id": "a,b"}], "mode": "vector"})
    spliced = prefix_json_field(body, "took_ms", b"1.500")
    assert orjson.loads(spliced) == {"took_ms": 1.5, "results": [{"id": "a,b"}], "mode": "vector"}
    again = prefix_json_field(strip_leading_json_field(spliced, "took_ms"), "took_ms", b"2.000")
    assert orjson.loads(again)["took_ms"] == 2.0
    assert strip_leading_json_field(again, "took_ms") == body
    assert orjson.loads(prefix_json_field(b"{}", "took_ms", b"1")) == {"took_ms": 1}


def test_a_downstream_retry_after_goes_on_with_the_error() -> None:
    busy = b'{"error":{"code":"embedder_busy","message":"the embedder is saturated","request_id":"r"}}'
    unavailable = downstream_error("retrieval", 503, busy, retry_after="2")
    assert unavailable is not None and unavailable.status_code == 503
    assert unavailable.headers == {"Retry-After": "2"}
    assert unavailable.code == "embedder_busy"  # the downstream's reason goes on too
    limited = downstream_error(
        "llm-proxy", 429, b'{"error":{"code":"rate_limited","message":"slow down"}}', retry_after="5"
    )
    assert limited is not None and limited.status_code == 429 and limited.headers == {"Retry-After": "5"}
    assert downstream_error("retrieval", 503, busy).headers == {}  # type: ignore[union-attr]
    assert downstream_error("retrieval", 200, b"{}", retry_after="1") is None
