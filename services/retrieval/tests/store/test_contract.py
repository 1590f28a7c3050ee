"""The VectorStore contract, run against every backend (Weaviate only when WEAVIATE_URL is set)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from ragfleet.common.errors import BadRequest
from ragfleet.retrieval.store.base import (
    CONTENT_HASH_KEY,
    Chunk,
    CollectionNotFound,
    Hit,
    SearchQuery,
    VectorStore,
)

StoreFactory = Callable[..., VectorStore]
DIM = 32  # the contract suite's default dimension (see conftest.make_store)
TENANT = "acme"


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def corpus(n: int = 60, seed: int = 0) -> list[Chunk]:
    """Documents of 3 chunks each, with metadata of every filterable kind."""
    rng = np.random.default_rng(seed)
    vectors = unit(rng, n)
    langs = ["en", "fr", "de"]
    return [
        Chunk(
            id=f"doc-{i // 3}:{i % 3}",
            document_id=f"doc-{i // 3}",
            text=f"chunk {i} about {'zebras' if i % 5 == 0 else 'kubernetes'} number{i}",
            vector=vectors[i],
            position=i % 3,
            metadata={
                "lang": langs[i % 3],
                "year": 2000 + i,
                "published": f"2024-{1 + i % 12:02d}-15",
                "draft": i % 2 == 0,
                CONTENT_HASH_KEY: f"hash-{i // 3}",
            },
        )
        for i in range(n)
    ]


async def search(store: VectorStore, collection: str = "docs", **kwargs: object) -> list[Hit]:
    return await store.search(TENANT, collection, SearchQuery(**kwargs))  # type: ignore[arg-type]


async def test_upsert_then_vector_search_finds_the_nearest(make_store: StoreFactory) -> None:
    store = make_store()
    chunks = corpus()
    assert await store.upsert(TENANT, "docs", chunks) == len(chunks)
    hits = await search(store, vector=chunks[7].vector, top_k=5)
    assert len(hits) == 5
    assert hits[0].id == chunks[7].id
    assert hits[0].document_id == chunks[7].document_id
    assert hits[0].text == chunks[7].text
    assert hits[0].metadata["lang"] == chunks[7].metadata["lang"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-3)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


async def test_upsert_replaces_chunks_with_the_same_id(make_store: StoreFactory) -> None:
    store = make_store()
    chunks = corpus()
    await store.upsert(TENANT, "docs", chunks)
    replaced = Chunk(
        id=chunks[0].id, document_id=chunks[0].document_id, text="replaced text", vector=chunks[1].vector
    )
    await store.upsert(TENANT, "docs", [replaced])
    hits = await search(store, vector=chunks[1].vector, top_k=2)
    assert {h.id for h in hits} == {chunks[0].id, chunks[1].id}
    assert next(h for h in hits if h.id == chunks[0].id).text == "replaced text"
    (info,) = await store.list_collections(TENANT)
    assert (info.name, info.chunks, info.documents) == ("docs", len(chunks), len(chunks) // 3)


async def test_delete_documents_and_chunks(make_store: StoreFactory) -> None:
    store = make_store()
    chunks = corpus()
    await store.upsert(TENANT, "docs", chunks)
    assert await store.delete_documents(TENANT, "docs", ["doc-2", "doc-3", "no-such-doc"]) == 6
    assert await store.delete_documents(TENANT, "docs", ["doc-2"]) == 0
    assert await store.get_document(TENANT, "docs", "doc-2") is None
    hits = await search(store, vector=chunks[7].vector, top_k=60)
    assert not {h.document_id for h in hits} & {"doc-2", "doc-3"}
    assert len(hits) == len(chunks) - 6
    assert await store.delete_chunks(TENANT, "docs", ["doc-4:0", "doc-4:0", "nope"]) == 1
    info = await store.get_document(TENANT, "docs", "doc-4")
    assert info is not None and info.chunks == 2
    assert await store.delete_documents(TENANT, "unknown-collection", ["doc-1"]) == 0


async def test_get_document_reports_chunks_and_content_hash(make_store: StoreFactory) -> None:
    store = make_store()
    await store.upsert(TENANT, "docs", corpus())
    info = await store.get_document(TENANT, "docs", "doc-5")
    assert info is not None
    assert (info.document_id, info.chunks, info.content_hash) == ("doc-5", 3, "hash-5")
    assert info.metadata["year"] == 2015  # the first chunk's metadata
    assert await store.get_document(TENANT, "docs", "doc-999") is None


async def test_collections_are_created_by_upsert_and_listed(make_store: StoreFactory) -> None:
    store = make_store()
    assert not await store.collection_exists(TENANT, "docs")
    with pytest.raises(CollectionNotFound):
        await search(store, vector=corpus()[0].vector)
    await store.upsert(TENANT, "docs", corpus(9))
    await store.upsert(TENANT, "alpha", corpus(3, seed=1))
    assert await store.collection_exists(TENANT, "docs")
    assert [c.name for c in await store.list_collections(TENANT)] == ["alpha", "docs"]


async def test_delete_collection_removes_it_and_only_it(make_store: StoreFactory) -> None:
    store = make_store()
    await store.upsert(TENANT, "docs", corpus(9))
    await store.upsert(TENANT, "alpha", corpus(3, seed=1))
    await store.upsert("other-tenant", "docs", corpus(4, seed=2))
    assert await store.delete_collection(TENANT, "docs") == 9
    assert not await store.collection_exists(TENANT, "docs")
    with pytest.raises(CollectionNotFound):
        await search(store, vector=corpus()[0].vector)
    assert [c.name for c in await store.list_collections(TENANT)] == ["alpha"]
    assert [c.chunks for c in await store.list_collections("other-tenant")] == [4]
    assert await store.delete_collection(TENANT, "docs") is None
    # Written to again: a new, empty collection, none of the old chunks back.
    await store.upsert(TENANT, "docs", corpus(2, seed=3))
    assert [c.chunks for c in await store.list_collections(TENANT) if c.name == "docs"] == [2]


async def test_tenants_are_isolated(make_store: StoreFactory) -> None:
    store = make_store()
    chunks = corpus()
    await store.upsert("tenant-a", "docs", chunks[:30])
    await store.upsert("tenant-b", "docs", chunks[30:])
    hits_a = await store.search("tenant-a", "docs", SearchQuery(vector=chunks[40].vector, top_k=60))
    assert len(hits_a) == 30 and all(h.id in {c.id for c in chunks[:30]} for h in hits_a)
    bm25_b = await store.search("tenant-b", "docs", SearchQuery(text="number3", mode="bm25"))
    assert bm25_b == []  # "number3" is only in tenant a's chunk 3
    assert await store.delete_documents("tenant-b", "docs", ["doc-0"]) == 0
    assert await store.get_document("tenant-b", "docs", "doc-0") is None
    assert [c.chunks for c in await store.list_collections("tenant-a")] == [30]
    assert await store.list_collections("tenant-c") == []


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"lang": {"eq": "fr"}}, lambda c: c.metadata["lang"] == "fr"),
        ({"lang": "de"}, lambda c: c.metadata["lang"] == "de"),
        ({"lang": {"in": ["en", "de"]}}, lambda c: c.metadata["lang"] in ("en", "de")),
        ({"year": {"gte": 2010, "lt": 2020}}, lambda c: 2010 <= c.metadata["year"] < 2020),
        ({"year": {"gt": 2050}}, lambda c: c.metadata["year"] > 2050),
        (
            {"published": {"gte": "2024-03-01", "lte": "2024-05-31T23:59:59Z"}},
            lambda c: "2024-03" <= c.metadata["published"][:7] <= "2024-05",
        ),
        (
            {"draft": {"eq": True}, "lang": {"eq": "en"}},
            lambda c: c.metadata["draft"] and c.metadata["lang"] == "en",
        ),
        ({"missing_field": {"eq": 1}}, lambda c: False),
    ],
)
async def test_filters_select_exactly_the_matching_chunks(
    make_store: StoreFactory, filters: dict[str, object], expected: object
) -> None:
    store = make_store()
    chunks = corpus()
    await store.upsert(TENANT, "docs", chunks)
    matching = {c.id for c in chunks if expected(c)}  # type: ignore[operator]
    for mode in ("vector", "hybrid"):
        hits = await search(
            store, vector=chunks[0].vector, text="kubernetes", mode=mode, top_k=100, filters=filters
        )
        assert {h.id for h in hits} == matching, mode
    # top_k is honoured when more chunks match than it asks for.
    hits = await search(store, vector=chunks[0].vector, top_k=3, filters=filters)
    assert len(hits) == min(3, len(matching))
    assert {h.id for h in hits} <= matching


async def test_filtered_vector_search_returns_the_true_nearest_matches(make_store: StoreFactory) -> None:
    store = make_store()
    chunks = corpus(300)
    await store.upsert(TENANT, "docs", chunks)
    query = unit(np.random.default_rng(9), 1)[0]
    fr = [c for c in chunks if c.metadata["lang"] == "fr"]
    scores = np.stack([np.asarray(c.vector) for c in fr]) @ query
    expected = [fr[i].id for i in np.argsort(-scores)[:10]]
    hits = await search(store, vector=query, top_k=10, filters={"lang": {"eq": "fr"}})
    assert [h.id for h in hits] == expected


@pytest.mark.parametrize(
    "filters",
    [
        {"lang": {"like": "en"}},
        {"year": {}},
        {"year": {"gte": "not a date"}},
        {"year": {"gte": 1, "lte": "2024-01-01"}},
        {"lang": {"in": []}},
        {"lang": {"eq": {"nested": 1}}},
    ],
)
async def test_bad_filters_are_rejected_with_a_clear_error(make_store: StoreFactory, filters: object) -> None:
    store = make_store()
    await store.upsert(TENANT, "docs", corpus(3))
    with pytest.raises(BadRequest, match="invalid filters"):
        await search(store, vector=corpus(3)[0].vector, filters=filters)


async def test_bm25_ranks_chunks_containing_the_terms(make_store: StoreFactory) -> None:
    store = make_store()
    await store.upsert(TENANT, "docs", corpus())
    hits = await search(store, text="Zebras!", mode="bm25", top_k=100)
    assert len(hits) == 12 and all("zebras" in h.text for h in hits)
    hits = await search(store, text="zebras number15", mode="bm25", top_k=3)
    assert hits[0].id == "doc-5:0"  # the only chunk with both terms
    assert hits[0].score > hits[1].score > 0
    assert await search(store, text="the of and", mode="bm25") == []  # stopwords only


@pytest.mark.parametrize("fusion", ["rrf", "relative_score"])
async def test_hybrid_alpha_moves_between_bm25_and_vector(make_store: StoreFactory, fusion: str) -> None:
    store = make_store()
    chunks = corpus()
    await store.upsert(TENANT, "docs", chunks)
    target = chunks[7]  # a "kubernetes" chunk: its vector matches, its text does not say zebras
    common = {"vector": target.vector, "text": "zebras", "mode": "hybrid", "top_k": 5, "fusion": fusion}
    vector_only = await search(store, **common, alpha=1.0)
    assert vector_only[0].id == target.id
    bm25_only = await search(store, **common, alpha=0.0)
    assert all("zebras" in h.text for h in bm25_only)
    balanced = await search(store, **common, alpha=0.5)
    assert len(balanced) == 5
    assert [h.score for h in balanced] == sorted((h.score for h in balanced), reverse=True)
    # A chunk found by both sides outranks chunks found by one side only.
    both = chunks[0]  # "zebras" and the query vector's nearest
    mixed = await search(store, **{**common, "vector": both.vector}, alpha=0.5)
    assert mixed[0].id == both.id


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "vector"}, "needs a query vector"),
        ({"mode": "bm25", "text": "  "}, "non-empty query text"),
        ({"mode": "hybrid", "text": "x"}, "needs a query vector"),
        ({"vector": [0.1] * DIM, "top_k": 0}, "top_k"),
        ({"vector": [0.1] * DIM, "alpha": 1.5}, "alpha"),
        ({"vector": [0.1] * DIM, "mode": "fuzzy"}, "mode"),
    ],
)
def test_bad_queries_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        SearchQuery(**kwargs)  # type: ignore[arg-type]


async def test_bad_input_is_rejected(make_store: StoreFactory) -> None:
    store = make_store()
    with pytest.raises(BadRequest, match="expects 32"):
        await store.upsert(TENANT, "docs", [Chunk(id="a", document_id="d", text="t", vector=[1.0, 0.0])])
    with pytest.raises(BadRequest, match="tenant"):
        await store.upsert("Bad Tenant!", "docs", corpus(1))
    with pytest.raises(BadRequest, match="collection"):
        await store.upsert(TENANT, "../escape", corpus(1))
    await store.upsert(TENANT, "docs", corpus(3))
    with pytest.raises(BadRequest, match="dimensions"):
        await search(store, vector=[0.5] * 7)


async def test_document_candidates_are_the_searches_and_their_documents_centroids(
    make_store: StoreFactory,
) -> None:
    """One call for document ranking's inputs answers what the separate calls answer."""
    store = make_store()
    chunks = corpus()
    await store.upsert(TENANT, "docs", chunks)
    queries = [
        SearchQuery(vector=chunks[4].vector, mode="vector", top_k=7, filters={"lang": {"in": ["en", "fr"]}}),
        SearchQuery(text="zebras", mode="bm25", top_k=5),
    ]
    candidates = await store.document_candidates(TENANT, "docs", queries, centroids=True)
    assert [candidates.hits(i) for i in range(len(queries))] == [
        await store.search(TENANT, "docs", query) for query in queries
    ]
    # One candidate per distinct chunk, and the documents are those of the chunks.
    assert len(set(candidates.chunk_ids)) == len(candidates.chunk_ids)
    assert len(set(candidates.documents)) == len(candidates.documents)
    assert [candidates.documents[i] for i in candidates.chunk_documents] == list(candidates.document_ids)
    expected = await store.document_vectors(TENANT, "docs", candidates.documents)
    assert candidates.centroids is not None and len(candidates.centroids) == len(candidates.documents)
    for document, vector in zip(candidates.documents, candidates.centroids, strict=True):
        np.testing.assert_allclose(vector, expected[document], atol=1e-6)
    assert (await store.document_candidates(TENANT, "docs", queries[:1], centroids=False)).centroids is None
    # The interface's own answer (from the searches, as for a backend without an override) agrees.
    generic = await VectorStore.document_candidates(store, TENANT, "docs", queries, centroids=True)
    assert [generic.hits(i) for i in range(len(queries))] == [candidates.hits(i) for i in range(len(queries))]
    assert generic.centroids is not None
    for document, vector in zip(generic.documents, generic.centroids, strict=True):
        np.testing.assert_allclose(vector, expected[document], atol=1e-6)
    with pytest.raises(CollectionNotFound):
        await store.document_candidates(TENANT, "nope", queries, centroids=True)


async def test_recall_at_10_against_exact_search(make_store: StoreFactory) -> None:
    """Default settings must reach recall@10 >= 0.95 (clustered vectors, like real embeddings)."""
    rng = np.random.default_rng(3)
    dim, n = 64, 3000
    centroids = rng.standard_normal((50, dim))
    data = centroids[rng.integers(0, 50, n)] + 0.7 * rng.standard_normal((n, dim))
    data = (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)
    store = make_store(dim)
    chunks = [Chunk(id=str(i), document_id=str(i), text="", vector=data[i]) for i in range(n)]
    for start in range(0, n, 1000):
        await store.upsert(TENANT, "recall", chunks[start : start + 1000])
    queries = data[rng.integers(0, n, 50)] + 0.3 * rng.standard_normal((50, dim)).astype(np.float32)
    found = 0
    for query in queries:
        truth = set(np.argsort(-(data @ (query / np.linalg.norm(query))))[:10].tolist())
        hits = await search(store, "recall", vector=query, top_k=10)
        found += len(truth & {int(h.id) for h in hits})
    assert found / (10 * len(queries)) >= 0.95


PASSAGES = {
    "cats": "Cats are small domesticated felines that like to sleep in the sun.",
    "rates": "The central bank raised interest rates to fight inflation.",
    "k8s": "Kubernetes schedules containers onto nodes and restarts them when they fail.",
    "bread": "Knead the dough, let it rise for an hour, then bake the bread at 220 degrees.",
}


async def test_real_embeddings_find_the_paraphrased_passage(make_store: StoreFactory) -> None:
    from ragfleet.common.embeddings import Embedder

    embedder = Embedder()
    vectors = embedder.embed(list(PASSAGES.values()))
    store = make_store(embedder.dim)
    await store.upsert(
        TENANT,
        "real",
        [
            Chunk(id=key, document_id=key, text=text, vector=vectors[i])
            for i, (key, text) in enumerate(PASSAGES.items())
        ],
    )
    for question, expected in [
        ("How do I bake a loaf at home?", "bread"),
        ("Why did the monetary authority increase borrowing costs?", "rates"),
        ("container orchestration restarting crashed pods", "k8s"),
    ]:
        query = embedder.embed([question])[0]
        hits = await search(store, "real", vector=query, top_k=1)
        assert hits[0].id == expected, question
        hybrid = await search(store, "real", vector=query, text=question, mode="hybrid", top_k=1)
        assert hybrid[0].id == expected, question
