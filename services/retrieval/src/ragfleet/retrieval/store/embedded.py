"""The embedded backend: one in-process HNSW index (hnswlib, cosine) + one BM25 index per
tenant + collection, persisted under a data directory with a write-ahead log and snapshots.
This module is the `VectorStore` over them (a collection's own index: `collection_index`).

Why hnswlib (not usearch): see docs/retrieval-index.md — similar speed and recall on this
machine, and hnswlib takes a filter predicate inside the graph walk, which filtered search needs.

Concurrency: searches run in a thread pool, many at a time (hnswlib queries are thread-safe
with each other); writes to one collection are serialised and exclude its searches for their
duration (a readers-writer lock), since hnswlib's add/resize/delete are not safe against
concurrent queries. An unfiltered vector search of an open collection is answered on the
caller's thread when it needs no wait (`_now`): its work is smaller than the trip to the pool.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from threadpoolctl import threadpool_limits

from ragfleet.retrieval.store.base import (
    DEFAULT_DIM,
    Chunk,
    CollectionInfo,
    CollectionNotFound,
    DocumentCandidates,
    DocumentInfo,
    Hit,
    SearchQuery,
    VectorStore,
    validate_name,
)
from ragfleet.retrieval.store.collection_index import CollectionIndex
from ragfleet.retrieval.store.index_settings import IndexSettings

T = TypeVar("T")

# An unfiltered HNSW query of at most this many neighbours is answered on the caller's thread
# (see `_now`): its work is bounded by ef_search and k, ~0.1-0.3 ms here.
INLINE_MAX_TOP_K = 200


def _cheap(queries: Sequence[SearchQuery]) -> bool:
    """Whether these queries' work is bounded and small: unfiltered vector searches only (a
    filter may need a mask over every chunk or a Python predicate per visited node; BM25's cost
    grows with its terms' postings)."""
    return all(
        q.mode == "vector" and q.metadata_filter is None and q.top_k <= INLINE_MAX_TOP_K for q in queries
    )


class EmbeddedVectorStore(VectorStore):
    """`VectorStore` on local files: ``<data_dir>/<tenant>/<collection>/``.

    Several processes may share a data directory (replicas on one machine, uvicorn workers):
    each holds the index in memory and follows the others' writes through the log (see
    `CollectionIndex`). Each process pays the memory and the index-building work, so many
    replicas or very large corpora are what the Weaviate backend is for.

    Collections are opened on first use (or all at once by `warm()`), and `close()` snapshots
    every collection with unsnapshotted writes, so the next start loads instead of replaying.
    """

    backend = "embedded"

    def __init__(
        self,
        data_dir: Path | str,
        *,
        dim: int = DEFAULT_DIM,
        settings: IndexSettings | None = None,
        threads: int | None = None,
        blas_threads: int | None = 1,
    ) -> None:
        # Exact scans are numpy matrix-vector products. Searches already run in parallel on the
        # pool, so a multi-threaded BLAS per query only oversubscribes the cores: on this 2-core
        # box under load it made them ~10x slower. This limit is process-wide (BLAS is); None
        # leaves BLAS alone.
        if blas_threads is not None:
            threadpool_limits(limits=blas_threads, user_api="blas")
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.dim = dim
        self.settings = settings or IndexSettings()
        self._executor = ThreadPoolExecutor(
            max_workers=threads or os.cpu_count() or 1, thread_name_prefix="vector-store"
        )
        self._indexes: dict[tuple[str, str], CollectionIndex] = {}
        self._open_lock = threading.Lock()
        self._closed = False

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RuntimeError("the vector store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _directory(self, tenant: str, collection: str) -> Path:
        return self.data_dir / validate_name("tenant", tenant) / validate_name("collection", collection)

    def _index(self, tenant: str, collection: str, *, create: bool) -> CollectionIndex | None:
        key = (tenant, collection)
        index = self._indexes.get(key)
        # One stat: another process (a replica, a uvicorn worker) may have deleted the collection.
        if index is not None and index.directory.is_dir():
            return index
        directory = self._directory(tenant, collection)
        with self._open_lock:
            if (stale := self._indexes.get(key)) is not None and not stale.directory.is_dir():
                del self._indexes[key]
            index = self._indexes.get(key)
            if index is None and (create or directory.is_dir()):
                index = CollectionIndex.open(directory, self.dim, self.settings)
                self._indexes[key] = index
        return index

    def _require(self, tenant: str, collection: str) -> CollectionIndex:
        index = self._index(tenant, collection, create=False)
        if index is None:
            raise CollectionNotFound(f"collection {collection!r} does not exist")
        return index

    # --- VectorStore --------------------------------------------------------------------------

    async def upsert(self, tenant: str, collection: str, chunks: Sequence[Chunk]) -> int:
        def work() -> int:
            index = self._index(tenant, collection, create=True)
            assert index is not None
            return index.upsert(chunks)

        return await self._run(work)

    async def delete_documents(self, tenant: str, collection: str, document_ids: Sequence[str]) -> int:
        def work() -> int:
            index = self._index(tenant, collection, create=False)
            return index.delete_documents(document_ids) if index is not None else 0

        return await self._run(work)

    async def delete_chunks(self, tenant: str, collection: str, chunk_ids: Sequence[str]) -> int:
        def work() -> int:
            index = self._index(tenant, collection, create=False)
            return index.delete_chunks(chunk_ids) if index is not None else 0

        return await self._run(work)

    async def delete_collection(self, tenant: str, collection: str) -> int | None:
        def work() -> int | None:
            directory = self._directory(tenant, collection)
            with self._open_lock:
                index = self._indexes.pop((tenant, collection), None)
                if index is None and not directory.is_dir():
                    return None
                if index is None:
                    index = CollectionIndex.open(directory, self.dim, self.settings)
                return index.drop()

        return await self._run(work)

    def _now(self, tenant: str, collection: str, read: Callable[[CollectionIndex], T | None]) -> T | None:
        """`read` answered on the calling thread (the event loop) if it needs no wait: the
        collection already open, no other process's writes to replay, no write holding or
        awaiting its lock; else None, and the caller goes to the pool. A trip to the pool cost
        more CPU than the searches `_cheap` lets through (the hand-off, waking the thread, the
        GIL passed back and forth under load): about a quarter of an uncached vector search's
        CPU over HTTP with 2 workers (docs/benchmarks/retrieval.md, session 8)."""
        index = self._indexes.get((tenant, collection))
        if self._closed or index is None or not index.directory.is_dir():
            return None
        return read(index)

    async def search(self, tenant: str, collection: str, query: SearchQuery) -> list[Hit]:
        if _cheap([query]):
            hits = self._now(tenant, collection, lambda index: index.search_now(query))
            if hits is not None:
                return hits
        return await self._run(lambda: self._require(tenant, collection).search(query))

    def search_sync(self, tenant: str, collection: str, query: SearchQuery) -> list[Hit]:
        """`search` in the calling thread (benchmarks, or callers already off the event loop)."""
        return self._require(tenant, collection).search(query)

    async def document_vectors(
        self, tenant: str, collection: str, document_ids: Sequence[str]
    ) -> dict[str, np.ndarray]:
        return await self._run(lambda: self._require(tenant, collection).document_vectors(document_ids))

    async def document_candidates(
        self, tenant: str, collection: str, queries: Sequence[SearchQuery], *, centroids: bool
    ) -> DocumentCandidates:
        if _cheap(queries):
            found = self._now(
                tenant,
                collection,
                lambda index: index.document_candidates_now(queries, centroids=centroids),
            )
            if found is not None:
                return found
        return await self._run(
            lambda: self._require(tenant, collection).document_candidates(queries, centroids=centroids)
        )

    async def get_document(self, tenant: str, collection: str, document_id: str) -> DocumentInfo | None:
        def work() -> DocumentInfo | None:
            index = self._index(tenant, collection, create=False)
            return index.get_document(document_id) if index is not None else None

        return await self._run(work)

    async def list_collections(self, tenant: str) -> list[CollectionInfo]:
        def work() -> list[CollectionInfo]:
            tenant_dir = self.data_dir / validate_name("tenant", tenant)
            names = {c for t, c in self._indexes if t == tenant}
            if tenant_dir.is_dir():
                names |= {p.name for p in tenant_dir.iterdir() if p.is_dir()}
            infos = []
            for name in sorted(names):
                index = self._index(tenant, name, create=False)
                if index is not None:
                    infos.append(index.info(name))
            return infos

        return await self._run(work)

    async def collection_exists(self, tenant: str, collection: str) -> bool:
        # The directory decides, not this process's cache: another process may have deleted it.
        return self._directory(tenant, collection).is_dir()

    async def warm(self) -> int:
        """Open every collection on disk now (e.g. before reporting ready); returns how many."""

        def work() -> int:
            count = 0
            for tenant_dir in sorted(p for p in self.data_dir.iterdir() if p.is_dir()):
                for collection_dir in sorted(p for p in tenant_dir.iterdir() if p.is_dir()):
                    self._index(tenant_dir.name, collection_dir.name, create=False)
                    count += 1
            return count

        return await self._run(work)

    async def close(self) -> None:
        if self._closed:
            return

        def work() -> None:
            for index in list(self._indexes.values()):
                if index.directory.is_dir():  # not deleted by another process meanwhile
                    index.close()

        await self._run(work)
        self._closed = True
        self._executor.shutdown(wait=True)
