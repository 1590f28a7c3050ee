"""The two forms a query vector may take: a JSON list, or base64 of little-endian float32 bytes."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from ragfleet.common.contracts import SearchRequest
from ragfleet.common.errors import BadRequest
from ragfleet.retrieval.search.service import decode_vector
from ragfleet.retrieval.store import Chunk, SearchQuery
from ragfleet.retrieval.store.embedded import EmbeddedVectorStore


def b64(vector: np.ndarray) -> str:
    return base64.b64encode(vector.astype("<f4").tobytes()).decode()


def test_base64_and_list_decode_to_the_same_vector() -> None:
    vector = np.random.default_rng(1).standard_normal(384).astype(np.float32)
    from_list = decode_vector(SearchRequest(vector=vector.tolist()).vector or [])
    from_b64 = decode_vector(SearchRequest(vector=b64(vector)).vector or "")
    assert from_b64.dtype == np.float32
    np.testing.assert_array_equal(from_list, from_b64)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("not base64!", "base64"),
        (base64.b64encode(b"\x00\x00\x80").decode(), "whole number of float32"),
        (b64(np.array([1.0, np.nan])), "NaN"),
    ],
)
def test_bad_base64_vectors_are_a_clear_400(value: str, says: str) -> None:
    with pytest.raises(BadRequest, match=says):
        decode_vector(value)


async def test_a_decoded_base64_vector_searches_like_the_list(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((50, 384)).astype(np.float32)
    store = EmbeddedVectorStore(tmp_path, threads=1)
    try:
        chunks = [
            Chunk(id=f"c{i}", document_id=f"d{i}", text=f"t{i}", position=0, metadata={}, vector=v.tolist())
            for i, v in enumerate(vectors)
        ]
        await store.upsert("t", "c", chunks)
        query = vectors[7]
        by_list = await store.search("t", "c", SearchQuery(vector=query.tolist(), mode="vector", top_k=3))
        by_b64 = await store.search(
            "t", "c", SearchQuery(vector=decode_vector(b64(query)), mode="vector", top_k=3)
        )
        assert [h.id for h in by_b64] == [h.id for h in by_list]
        assert by_b64[0].id == "c7"
    finally:
        await store.close()
