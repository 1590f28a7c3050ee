"""The OpenAI-compatible provider's protocol handling: batching, order, retries, refusals, dimension.

The transport is httpx's MockTransport so each behaviour can be forced; the provider against a
real server computing real embeddings is tested end to end in
services/ingestion/tests/test_openai_embeddings_integration.py.
"""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from ragfleet.common.embedding_providers import (
    EmbeddingProvider,
    EmbeddingProviderError,
    EmbeddingProviderSettings,
    OpenAIEmbeddings,
    create_provider,
)
from ragfleet.common.embeddings import Embedder


def _vector(text: str, dim: int) -> list[float]:
    rng = np.random.default_rng(abs(hash(text)) % 2**32)
    return (rng.standard_normal(dim) * 3).tolist()  # not normalised: the provider must do it


def server(dim: int = 8, failures: list[int] | None = None, seen: list[dict] | None = None):  # type: ignore[no-untyped-def]
    failures = list(failures or [])

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if seen is not None:
            seen.append({"body": body, "auth": request.headers.get("authorization")})
        if failures:
            status = failures.pop(0)
            return httpx.Response(status, headers={"Retry-After": "0"}, json={"error": "busy"})
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(t, dim)}
            for i, t in enumerate(body["input"])
        ]
        return httpx.Response(
            200, json={"object": "list", "data": list(reversed(data)), "model": body["model"]}
        )

    return httpx.MockTransport(handle)


def provider(transport: httpx.MockTransport, **kwargs) -> OpenAIEmbeddings:  # type: ignore[no-untyped-def]
    options = {"dim": 8, "batch_size": 2, "backoff_s": 0.0, **kwargs}
    return OpenAIEmbeddings("http://embed.test/v1", "m1", transport=transport, **options)


def test_batches_keep_order_and_vectors_are_normalised() -> None:
    seen: list[dict] = []
    p = provider(server(seen=seen), api_key="sk-test")
    texts = ["a", "bb", "ccc", "dddd", "e"]
    vectors = p.embed(texts)
    assert vectors.shape == (5, 8) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    expected = np.asarray(_vector("ccc", 8), dtype=np.float32)
    np.testing.assert_allclose(vectors[2], expected / np.linalg.norm(expected), atol=1e-5)
    assert [len(call["body"]["input"]) for call in seen] == [2, 2, 1]
    assert seen[0]["body"]["model"] == "m1" and seen[0]["auth"] == "Bearer sk-test"
    assert isinstance(p, EmbeddingProvider)


def test_overload_and_server_errors_are_retried_then_reported() -> None:
    seen: list[dict] = []
    assert provider(server(failures=[429, 503], seen=seen), max_retries=2).embed(["x"]).shape == (1, 8)
    assert len(seen) == 3
    with pytest.raises(EmbeddingProviderError, match="failed 2 times; last: HTTP 502"):
        provider(server(failures=[502, 502, 502]), max_retries=1).embed(["x"])


def test_a_client_error_is_not_retried() -> None:
    seen: list[dict] = []
    with pytest.raises(EmbeddingProviderError, match=r"refused the request \(400\)"):
        provider(server(failures=[400], seen=seen), max_retries=3).embed(["x"])
    assert len(seen) == 1


def test_a_server_with_another_dimension_is_caught_on_its_first_answer() -> None:
    p = provider(server(dim=16), dim=8)
    with pytest.raises(
        EmbeddingProviderError, match="returned 16-dimensional vectors; configured dimension is 8"
    ):
        p.load()


def test_an_unreachable_server_is_an_error_that_names_the_cause() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(EmbeddingProviderError, match="ConnectError"):
        provider(httpx.MockTransport(refuse), max_retries=1).embed(["x"])
    assert EmbeddingProviderError.status_code == 503


def test_settings_choose_the_provider() -> None:
    assert isinstance(create_provider(EmbeddingProviderSettings()), Embedder)
    remote = create_provider(
        EmbeddingProviderSettings(
            embedding_provider="openai",
            embedding_url="http://tei:8080/v1",
            embedding_model="bge",
            embedding_dim=768,
        )
    )
    assert isinstance(remote, OpenAIEmbeddings) and remote.model_name == "bge" and remote.dim == 768
    with pytest.raises(ValueError, match="needs embedding_url and embedding_model"):
        create_provider(EmbeddingProviderSettings(embedding_provider="openai"))
