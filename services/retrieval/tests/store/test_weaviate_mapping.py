"""The Weaviate backend's pure mapping code, testable without a server (the contract suite
covers its behaviour when WEAVIATE_URL is set)."""

from __future__ import annotations

import pytest

from ragfleet.common.errors import BadRequest
from ragfleet.retrieval.store.base import parse_filters
from ragfleet.retrieval.store.weaviate import (
    WeaviateVectorStore,
    _escape,
    _typed_properties,
    _unescape,
    chunk_uuid,
)


def test_chunk_ids_map_to_deterministic_uuid5_per_tenant_and_collection() -> None:
    assert chunk_uuid("t", "docs", "doc-1:0") == chunk_uuid("t", "docs", "doc-1:0")
    assert chunk_uuid("t", "docs", "doc-1:0") != chunk_uuid("u", "docs", "doc-1:0")
    assert chunk_uuid("t", "docs", "doc-1:0") != chunk_uuid("t", "other", "doc-1:0")


@pytest.mark.parametrize("name", ["docs", "my-docs_1", "a__b", "a-_-b", "0x"])
def test_collection_names_map_to_valid_distinct_class_names(name: str) -> None:
    store = WeaviateVectorStore("http://127.0.0.1:1", dim=4)
    class_name = store.class_name(name)
    assert class_name.startswith("Ragfleet_") and class_name.replace("_", "").isalnum()
    assert _unescape(_escape(name)) == name
    with pytest.raises(BadRequest):
        store.class_name("Bad Name")


def test_metadata_becomes_typed_filterable_properties() -> None:
    props = _typed_properties(
        {"lang": "en", "year": 2024, "draft": True, "published": "2024-03-01", "x y": 1.5}
    )
    assert props == {
        "s_lang": "en",
        "n_year": 2024.0,
        "b_draft": True,
        "s_published": "2024-03-01",
        "d_published": "2024-03-01T00:00:00+00:00",
        "n_x_20_y": 1.5,
    }


def test_every_filter_kind_translates() -> None:
    filters = parse_filters(
        {
            "lang": {"in": ["en", "fr"]},
            "year": {"gte": 2000, "lt": 2010},
            "published": {"gte": "2024-01-01"},
            "draft": True,
        }
    )
    assert WeaviateVectorStore._filters(WeaviateVectorStore("http://127.0.0.1:1"), filters) is not None
