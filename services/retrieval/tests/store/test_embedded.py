"""What only the embedded backend promises: persistence across restarts and crashes, concurrency."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

import numpy as np
import orjson
import pytest

from ragfleet.retrieval.store.base import Chunk, SearchQuery
from ragfleet.retrieval.store.embedded import EmbeddedVectorStore
from ragfleet.retrieval.store.fusion import fuse
from ragfleet.retrieval.store.index_settings import IndexSettings

DIM = 16


def chunks(n: int, seed: int = 0, prefix: str = "c") -> list[Chunk]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return [
        Chunk(
            id=f"{prefix}{i}",
            document_id=f"d{i // 2}",
            text=f"text {i} word{i}",
            vector=vectors[i],
            metadata={"i": i},
        )
        for i in range(n)
    ]


async def snapshot_of(store: EmbeddedVectorStore, query: np.ndarray) -> tuple[object, ...]:
    return (
        await store.list_collections("t"),
        [h.id for h in await store.search("t", "c", SearchQuery(vector=query, top_k=50))],
        await store.get_document("t", "c", "d3"),
    )


async def test_a_restart_keeps_every_write(tmp_path: Path) -> None:
    data = chunks(200)
    store = EmbeddedVectorStore(tmp_path, dim=DIM)
    await store.upsert("t", "c", data)
    await store.delete_documents("t", "c", ["d1", "d2"])
    await store.upsert("t", "c", [Chunk(id="c7", document_id="d3", text="new", vector=data[0].vector)])
    before = await snapshot_of(store, np.asarray(data[0].vector))
    await store.close()

    reopened = EmbeddedVectorStore(tmp_path, dim=DIM)
    assert await snapshot_of(reopened, np.asarray(data[0].vector)) == before
    # Labels freed by deletes are reused correctly after a restart.
    await reopened.upsert("t", "c", chunks(4, seed=5, prefix="n"))
    assert (await reopened.list_collections("t"))[0].chunks == 200 - 4 + 4
    await reopened.close()


WORDS = [
    "redis",
    "cache",
    "replica",
    "tenant",
    "index",
    "vector",
    "query",
    "latency",
    "helm",
    "ingress",
    "worker",
    "batch",
]


def worded_chunks(n: int, seed: int = 0, prefix: str = "w") -> list[Chunk]:
    """Chunks whose texts share a small vocabulary, so BM25 scores depend on every posting."""
    rng = np.random.default_rng(seed)
    return [
        Chunk(
            id=f"{prefix}{i}",
            document_id=f"{prefix}d{i // 3}",
            text=" ".join(rng.choice(WORDS, size=int(rng.integers(3, 15)))),
            vector=rng.standard_normal(DIM).astype(np.float32),
        )
        for i in range(n)
    ]


BM25_QUERIES = ["redis cache", "replica", "tenant index vector", "latency of the helm ingress", "batch"]


async def bm25_results(store: EmbeddedVectorStore) -> list[list[tuple[str, float]]]:
    """Every query's BM25 ranking (all of it: under 100 chunks) and a hybrid one, with scores
    (compared exactly)."""
    out = []
    for text in BM25_QUERIES:
        for query in (
            SearchQuery(text=text, mode="bm25", top_k=100),
            SearchQuery(text=text, vector=np.ones(DIM), mode="hybrid", top_k=20, fusion="relative_score"),
        ):
            out.append([(h.id, h.score) for h in await store.search("t", "c", query)])
    return out


async def test_a_restart_serves_bm25_from_the_snapshot_without_tokenizing_again(tmp_path: Path) -> None:
    store = EmbeddedVectorStore(tmp_path, dim=DIM)
    await store.upsert("t", "c", worded_chunks(80))
    await store.delete_documents("t", "c", ["wd4", "wd9"])
    before = await bm25_results(store)
    await store.close()

    reopened = EmbeddedVectorStore(tmp_path, dim=DIM)
    assert await bm25_results(reopened) == before
    assert reopened._require("t", "c").bm25_source == "snapshot"

    # Writes over loaded postings (replace, delete, add), then a second replica that loads the
    # snapshot and replays those writes from the log: both rank exactly like an index built
    # from scratch with the same chunks.
    replaced = worded_chunks(10, seed=1)  # ids w0..w9: new texts for loaded chunks
    await reopened.upsert("t", "c", [*replaced, *worded_chunks(20, seed=2, prefix="x")])
    await reopened.delete_chunks("t", "c", ["w20", "w21", "x3"])
    after_writes = await bm25_results(reopened)
    replica = EmbeddedVectorStore(tmp_path, dim=DIM)
    assert await bm25_results(replica) == after_writes
    assert replica._require("t", "c").bm25_source == "snapshot"

    live_ids = {h.id for h in await reopened.search("t", "c", SearchQuery(vector=np.ones(DIM), top_k=1000))}
    latest = {c.id: c for c in [*worded_chunks(80), *replaced, *worded_chunks(20, seed=2, prefix="x")]}
    fresh = EmbeddedVectorStore(tmp_path / "fresh", dim=DIM)
    await fresh.upsert("t", "c", [c for cid, c in latest.items() if cid in live_ids])
    # (As sets: labels differ, so equal scores may come in another order.)
    assert [set(r) for r in await bm25_results(fresh)] == [set(r) for r in after_writes]
    for opened in (reopened, replica, fresh):
        await opened.close()

    # The merged postings are what the next snapshot saves.
    again = EmbeddedVectorStore(tmp_path, dim=DIM)
    assert await bm25_results(again) == after_writes
    await again.close()


async def test_snapshots_from_another_tokenizer_rebuild_bm25_from_the_texts(tmp_path: Path) -> None:
    store = EmbeddedVectorStore(tmp_path, dim=DIM)
    await store.upsert("t", "c", worded_chunks(60))
    before = await bm25_results(store)
    await store.close()
    (meta_path,) = (tmp_path / "t" / "c").glob("snapshot-*/meta.json")
    meta = orjson.loads(meta_path.read_bytes())
    meta["bm25_tokenizer"] = 0  # as if written by an older tokenizer
    meta_path.write_bytes(orjson.dumps(meta))

    reopened = EmbeddedVectorStore(tmp_path, dim=DIM)
    assert await bm25_results(reopened) == before
    assert reopened._require("t", "c").bm25_source == "rebuilt"
    await reopened.close()


CRASHING_WRITER = """
import asyncio, os, sys
import numpy as np
from ragfleet.retrieval.store.base import Chunk
from ragfleet.retrieval.store.embedded import EmbeddedVectorStore

async def main():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((100, 16)).astype(np.float32)
    store = EmbeddedVectorStore(sys.argv[1], dim=16)
    data = [Chunk(id=f"c{i}", document_id=f"d{i}", text=f"t{i}", vector=vectors[i]) for i in range(100)]
    await store.upsert("t", "c", data[:60])
    await store.upsert("t", "c", data[60:])
    await store.delete_chunks("t", "c", ["c5"])
    os._exit(0)  # die without close(): no snapshot, only the write-ahead log

asyncio.run(main())
"""


@pytest.mark.integration  # a writer process is SIGKILLed
async def test_a_crash_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """A writer process dies without closing; the next one replays the log, even past a torn record."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", CRASHING_WRITER, str(tmp_path))
    assert await process.wait() == 0
    (wal,) = (tmp_path / "t" / "c").glob("wal-*.log")
    # As if the crash came in the middle of an append.
    wal.write_bytes(wal.read_bytes() + b"\x10\x00\x00\x00 torn write")

    restarted = EmbeddedVectorStore(tmp_path, dim=DIM)
    (info,) = await restarted.list_collections("t")
    assert info.chunks == 99
    probe = np.random.default_rng(1).standard_normal(DIM)
    hits = await restarted.search("t", "c", SearchQuery(vector=probe, top_k=100))
    assert len(hits) == 99 and "c5" not in {h.id for h in hits}
    await restarted.upsert("t", "c", chunks(1, seed=9, prefix="after"))  # the log is writable again
    await restarted.close()
    final = EmbeddedVectorStore(tmp_path, dim=DIM)
    assert (await final.list_collections("t"))[0].chunks == 100
    await final.close()


async def test_stores_sharing_a_directory_see_each_others_writes(tmp_path: Path) -> None:
    """Two replicas on one data directory: a write is visible to the other once it returns."""
    data = chunks(40)
    first = EmbeddedVectorStore(tmp_path, dim=DIM)
    second = EmbeddedVectorStore(tmp_path, dim=DIM)
    await first.upsert("t", "c", data[:20])
    probe = SearchQuery(vector=data[25].vector, top_k=100)
    assert len(await second.search("t", "c", probe)) == 20
    await second.upsert("t", "c", data[20:])
    await second.delete_documents("t", "c", ["d0"])
    assert {h.id for h in await first.search("t", "c", probe)} == {c.id for c in data[2:]}
    assert (await first.get_document("t", "c", "d12")) is not None
    # One replica closing snapshots the collection; the other follows the new generation.
    await first.close()
    await second.upsert("t", "c", chunks(2, seed=7, prefix="late"))
    assert len(await second.search("t", "c", probe)) == 40
    await second.close()
    reopened = EmbeddedVectorStore(tmp_path, dim=DIM)
    assert (await reopened.list_collections("t"))[0].chunks == 40
    await reopened.close()


async def test_snapshots_roll_over_and_old_generations_are_removed(tmp_path: Path) -> None:
    settings = IndexSettings(snapshot_log_bytes=4096)
    store = EmbeddedVectorStore(tmp_path, dim=DIM, settings=settings)
    for batch in range(10):
        await store.upsert("t", "c", chunks(20, seed=batch, prefix=f"b{batch}-"))
    files = sorted(p.name for p in (tmp_path / "t" / "c").iterdir())
    assert len([f for f in files if f.startswith("snapshot-")]) == 1
    assert len([f for f in files if f.startswith("wal-")]) == 1
    await store.close()
    reopened = EmbeddedVectorStore(tmp_path, dim=DIM, settings=settings)
    assert (await reopened.list_collections("t"))[0].chunks == 200
    await reopened.close()


@pytest.mark.parametrize(
    "filters",
    [{"i": {"lt": 400}}, None],  # filtered: in the pool; unfiltered: on the event loop when it can
)
async def test_searches_run_concurrently_with_writes(
    tmp_path: Path, filters: dict[str, object] | None
) -> None:
    store = EmbeddedVectorStore(tmp_path, dim=DIM)
    await store.upsert("t", "c", chunks(500))
    query = SearchQuery(vector=chunks(1, seed=3)[0].vector, top_k=10, filters=filters)

    async def writer() -> None:
        for batch in range(20):
            await store.upsert("t", "c", chunks(50, seed=100 + batch, prefix=f"w{batch}-"))
            await store.delete_chunks("t", "c", [f"w{batch}-{i}" for i in range(25)])

    results = await asyncio.gather(writer(), *(store.search("t", "c", query) for _ in range(200)))
    assert all(len(hits) == 10 for hits in results[1:])
    assert (await store.list_collections("t"))[0].chunks == 500 + 20 * 25
    await store.close()


async def test_a_search_answered_on_the_event_loop_never_blocks_it_behind_a_write(tmp_path: Path) -> None:
    """An unfiltered vector search skips the thread pool only when it needs no wait: while a
    write holds the collection's lock it goes to the pool, and the event loop runs on."""
    store = EmbeddedVectorStore(tmp_path, dim=DIM)
    data = chunks(20)
    await store.upsert("t", "c", data)
    query = SearchQuery(vector=data[5].vector, top_k=3)
    expected = await store.search("t", "c", query)
    assert expected[0].id == "c5"
    index = store._indexes[("t", "c")]
    holding, release = threading.Event(), threading.Event()

    def write() -> None:
        with index.lock.write():
            holding.set()
            release.wait()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        holding.wait()
        searches = [
            asyncio.create_task(store.search("t", "c", query)),
            asyncio.create_task(store.document_candidates("t", "c", [query], centroids=True)),
        ]
        await asyncio.sleep(0.05)  # the loop runs: neither search holds it while the write lasts
        assert not any(task.done() for task in searches)
    finally:
        release.set()
        writer.join()
    assert await searches[0] == expected
    candidates = await searches[1]
    assert candidates.hits(0) == expected and set(candidates.documents) == {
        hit.document_id for hit in expected
    }
    await store.close()


def test_fusion_weights_each_side_by_alpha() -> None:
    vector = [(1, 0.9), (2, 0.5), (3, 0.1)]
    bm25 = [(3, 12.0), (4, 6.0)]
    relative = dict(fuse(vector, bm25, alpha=0.25, fusion="relative_score"))
    assert relative == {1: 0.25, 2: 0.25 * 0.5, 3: 0.75, 4: 0.0}
    rrf = fuse(vector, bm25, alpha=0.5, fusion="rrf")
    assert rrf[0][0] == 3  # ranked by both sides
    assert rrf[0][1] == 0.5 / 63 + 0.5 / 61


async def test_filtered_search_over_the_graph_returns_top_k_matches(tmp_path: Path) -> None:
    """With exact scans turned off, both graph strategies (over-fetch + post-filter for common
    matches, predicate inside the walk for rare ones) return k true nearest matches."""
    rng = np.random.default_rng(4)
    centroids = rng.standard_normal((20, DIM))
    vectors = centroids[rng.integers(0, 20, 3000)] + 0.5 * rng.standard_normal((3000, DIM))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    store = EmbeddedVectorStore(tmp_path, dim=DIM, settings=IndexSettings(exact_scan_limit=10))
    await store.upsert(
        "t",
        "c",
        [
            Chunk(id=str(i), document_id=str(i), text="", vector=vectors[i], metadata={"g": i % 20})
            for i in range(3000)
        ],
    )
    for groups in ([0, 1, 2, 3, 4, 5, 6], [7]):  # 35 % of chunks match, then 5 %
        allowed = np.array([i % 20 in groups for i in range(3000)])
        found = 0
        for q in rng.integers(0, 3000, 20):
            query = vectors[q]
            scores = np.where(allowed, vectors @ query, -np.inf)
            truth = set(np.argsort(-scores)[:10].tolist())
            hits = await store.search(
                "t", "c", SearchQuery(vector=query, top_k=10, filters={"g": {"in": groups}})
            )
            assert len(hits) == 10 and all(int(h.id) % 20 in groups for h in hits)
            found += len(truth & {int(h.id) for h in hits})
        assert found / 200 >= 0.95, groups
    await store.close()


async def test_a_collection_deleted_by_another_process_is_gone_here_too(tmp_path: Path) -> None:
    # Two stores on one data directory stand for two replicas (or uvicorn workers).
    first = EmbeddedVectorStore(tmp_path, dim=DIM)
    second = EmbeddedVectorStore(tmp_path, dim=DIM)
    try:
        await first.upsert("t", "c", chunks(10))
        query = np.ones(DIM, dtype=np.float32)
        assert len(await second.search("t", "c", SearchQuery(vector=query, top_k=5))) == 5
        assert await first.delete_collection("t", "c") == 10
        assert not (tmp_path / "t" / "c").exists()
        assert not await second.collection_exists("t", "c")
        assert await second.list_collections("t") == []
        await second.upsert("t", "c", chunks(3, seed=1, prefix="n"))
        hits = await first.search("t", "c", SearchQuery(vector=query, top_k=10))
        assert sorted(h.id for h in hits) == ["n0", "n1", "n2"]
    finally:
        await first.close()
        await second.close()


async def test_document_vectors_are_the_normalised_mean_of_the_chunks_and_follow_writes(
    tmp_path: Path,
) -> None:
    store = EmbeddedVectorStore(tmp_path, dim=DIM)
    data = chunks(6)  # documents d0..d2, two chunks each
    await store.upsert("t", "c", data)

    def expected(*vectors: np.ndarray) -> np.ndarray:
        mean = np.mean([v / np.linalg.norm(v) for v in vectors], axis=0)
        return mean / np.linalg.norm(mean)

    got = await store.document_vectors("t", "c", ["d0", "d1", "nope"])
    assert set(got) == {"d0", "d1"}  # an unknown document has none
    np.testing.assert_allclose(got["d1"], expected(data[2].vector, data[3].vector), atol=1e-6)
    # Replacing a chunk, adding one and deleting one: the next answer reflects each write.
    moved = Chunk(id="c2", document_id="d1", text="new", vector=-np.asarray(data[2].vector))
    await store.upsert("t", "c", [moved])
    got = await store.document_vectors("t", "c", ["d1"])
    np.testing.assert_allclose(got["d1"], expected(moved.vector, data[3].vector), atol=1e-6)
    await store.delete_chunks("t", "c", ["c3"])
    got = await store.document_vectors("t", "c", ["d1"])
    np.testing.assert_allclose(got["d1"], expected(moved.vector), atol=1e-6)
    await store.delete_documents("t", "c", ["d1"])
    assert await store.document_vectors("t", "c", ["d1"]) == {}
    # A new document takes the deleted one's number (its centroid's row): its own centroid, not d1's.
    fresh = Chunk(id="n0", document_id="new", text="n", vector=data[5].vector)
    await store.upsert("t", "c", [fresh])
    got = await store.document_vectors("t", "c", ["new", "d2"])
    np.testing.assert_allclose(got["new"], expected(fresh.vector), atol=1e-6)
    np.testing.assert_allclose(got["d2"], expected(data[4].vector, data[5].vector), atol=1e-6)
    candidates = await store.document_candidates(
        "t", "c", [SearchQuery(vector=data[5].vector, mode="vector", top_k=10)], centroids=True
    )
    assert candidates.centroids is not None
    for document, vector in zip(candidates.documents, candidates.centroids, strict=True):
        np.testing.assert_allclose(
            vector, (await store.document_vectors("t", "c", [document]))[document], atol=1e-6
        )
    await store.close()
