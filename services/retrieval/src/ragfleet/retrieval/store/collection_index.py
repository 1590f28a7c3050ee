"""One tenant's collection in the embedded backend: HNSW (hnswlib, cosine) + a dense copy of the
vectors, BM25 and the chunk records, persisted with a write-ahead log and snapshots.

Concurrency: searches run on many threads at once (hnswlib queries are thread-safe with each
other); writes to one collection are serialised and exclude its searches for their duration (a
readers-writer lock), since hnswlib's add/resize/delete are not safe against concurrent queries.

Over 500 lines on purpose: the state, its persistence and its searches share one set of locks
and labels; what stands on its own (BM25, the metadata index, fusion, the file formats) lives
in its own module.
"""

from __future__ import annotations

import fcntl
import logging
import operator
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import hnswlib
import numpy as np
import orjson

from ragfleet.common.errors import BadRequest
from ragfleet.retrieval.store.base import (
    CONTENT_HASH_KEY,
    Chunk,
    CollectionInfo,
    DocumentCandidates,
    DocumentInfo,
    Hit,
    MetadataFilter,
    SearchQuery,
    as_vector,
)
from ragfleet.retrieval.store.bm25 import ANALYZER_VERSION, BM25Index
from ragfleet.retrieval.store.fusion import fuse
from ragfleet.retrieval.store.index_settings import IndexSettings
from ragfleet.retrieval.store.metadata_index import MetadataIndex
from ragfleet.retrieval.store.persistence import CollectionFiles, Snapshot, WriteAheadLog
from ragfleet.retrieval.store.rwlock import RWLock

log = logging.getLogger("ragfleet.retrieval.store")
T = TypeVar("T")


class CollectionIndex:
    """One tenant's collection: vectors (HNSW + a dense copy), BM25, and the chunk records.

    Chunks live at integer labels; a deleted chunk's label is reused by a later insert.
    Methods are synchronous and do their own locking; call them from worker threads (the
    ``*_now`` ones never wait, and may be called from the event loop).

    Several processes (replicas, uvicorn workers) may open the same directory: a write takes
    an exclusive file lock, first replays what other processes appended to the log, then
    appends its own record; every read first checks (one stat) whether the log grew and
    replays the new records. So a write is visible to every process once the call returns.
    """

    def __init__(self, directory: Path, dim: int, settings: IndexSettings) -> None:
        self.directory = directory
        self.dim = dim
        self.settings = settings
        self.lock = RWLock()
        self._write_mutex = threading.Lock()
        self._files = CollectionFiles(directory)
        self._lock_path = directory / "write.lock"
        self._reset_state()

    def _reset_state(self) -> None:
        dim = self.dim
        self._capacity = 1024
        self._vectors = np.zeros((self._capacity, dim), dtype=np.float32)
        self._chunk_ids: list[str | None] = []
        self._doc_ids: list[str | None] = []
        self._texts: list[str | None] = []
        self._positions: list[int] = []
        self._metadata: list[dict[str, Any] | None] = []
        self._metadata_index = MetadataIndex()
        self._alive = np.zeros(self._capacity, dtype=bool)
        self._label_of: dict[str, int] = {}
        self._doc_labels: dict[str, set[int]] = {}
        # Each document has a number while it has chunks (reused after): the row of its centroid
        # (the normalised mean of its chunks' vectors) in one matrix, computed when a search first
        # asks for it and marked stale when a write touches one of its chunks. Document ranking
        # reads its candidates' documents and centroids by number, in a few numpy calls.
        self._doc_number: dict[str, int] = {}
        self._doc_names: list[str] = []
        self._free_docs: list[int] = []
        self._label_doc = np.full(self._capacity, -1, dtype=np.intp)
        self._centroid_rows = np.zeros((64, dim), dtype=np.float32)
        self._centroid_fresh = np.zeros(64, dtype=bool)
        self._free: list[int] = []
        self._bm25 = BM25Index()
        self._hnsw = self._new_hnsw(self._capacity)
        self._version = 0  # bumped by every write; keys the filter-mask cache
        self._filter_masks: OrderedDict[tuple[int, bytes], np.ndarray] = OrderedDict()
        self._filter_masks_lock = threading.Lock()  # searches share the cache from many threads
        self._generation = 0
        self._wal: WriteAheadLog | None = None
        self._wal_offset = 0  # bytes of the current log applied to this process's state
        # How the last load got its BM25 postings: "snapshot" (read as saved), "rebuilt" (from the
        # texts: a snapshot from before BM25 was persisted, or another tokenizer) or "empty".
        self.bm25_source = "empty"

    # --- lifecycle ----------------------------------------------------------------------------

    def _new_hnsw(self, capacity: int) -> hnswlib.Index:
        index = hnswlib.Index(space="cosine", dim=self.dim)
        index.init_index(
            max_elements=capacity, M=self.settings.m, ef_construction=self.settings.ef_construction
        )
        index.set_ef(self.settings.ef_search)
        return index

    @classmethod
    def open(cls, directory: Path, dim: int, settings: IndexSettings) -> CollectionIndex:
        directory.mkdir(parents=True, exist_ok=True)
        index = cls(directory, dim, settings)
        with index._write_mutex, index._file_lock(), index.lock.write():
            index._load(holding_file_lock=True)
        return index

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        """The cross-process write lock of this collection (flock; released if the process dies)."""
        with open(self._lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _load(self, *, holding_file_lock: bool) -> None:
        """Newest snapshot + its log, from scratch (caller holds the in-process locks)."""
        started = time.perf_counter()
        if self._wal is not None:
            self._wal.close()
        self._reset_state()
        generation = self._files.current_generation()
        snapshot = self._files.load_snapshot(generation)
        if snapshot is not None:
            if int(snapshot.meta["dim"]) != self.dim:
                raise ValueError(f"{self.directory} holds {snapshot.meta['dim']}-d vectors, not {self.dim}-d")
            self._restore(snapshot)
        self._generation = generation
        replayed = self._replay(truncate=holding_file_lock)
        self._wal = WriteAheadLog(self._files.wal_path(generation), self.dim)
        if holding_file_lock:  # leftovers of a process that died between snapshot and cleanup
            self._files.remove_older_than(generation)
        log.info(
            "loaded %s: %d chunks (snapshot %d, BM25 %s, + %d log records) in %.2fs",
            self.directory,
            len(self._label_of),
            generation,
            self.bm25_source,
            replayed,
            time.perf_counter() - started,
        )

    def _replay(self, *, truncate: bool) -> int:
        """Apply the log's records past our offset. Only a writer holding the file lock may cut
        a torn tail; a reader just stops before an incomplete record (it may be mid-append)."""
        replayed = 0
        path = self._files.wal_path(self._generation)
        # Every core for the graph inserts: the caller holds the write lock, so this process's
        # searches wait for the whole replay whatever else the cores could do meanwhile. (A
        # follower replaying 5,000 chunks another worker had just replaced stalled its searches
        # 13.5 s with one thread, 10.7 s with two: hnswlib updates a vector in place at ~14x
        # the cost of an insert; docs/benchmarks/retrieval.md, session 14.)
        threads = os.cpu_count() or 1
        for record, end in WriteAheadLog.replay(path, self.dim, start=self._wal_offset, truncate=truncate):
            if record.payload["op"] == "upsert":
                assert record.vectors is not None
                self._apply_upsert(record.payload["chunks"], record.vectors, threads=threads)
            else:
                self._apply_delete(record.payload["chunk_ids"])
            self._wal_offset = end
            replayed += 1
        return replayed

    def _catch_up(self, *, truncate: bool) -> None:
        """Bring this process's state up to the files (caller holds the write mutex and RW write lock)."""
        if self._files.current_generation() != self._generation:
            self._load(holding_file_lock=truncate)  # another process took a snapshot: start from it
        else:
            self._replay(truncate=truncate)

    def refresh(self) -> None:
        """Apply other processes' writes, if any: the common case costs one stat()."""
        if self._caught_up():
            return
        with self._write_mutex, self.lock.write():
            self._catch_up(truncate=False)

    def _caught_up(self) -> bool:
        """Whether this process holds every write in the files (one stat of the log)."""
        try:
            size = os.stat(self._files.wal_path(self._generation)).st_size
        except FileNotFoundError:
            size = -1  # the log rolled over to a new generation
        return size == self._wal_offset

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Exclusive across threads and processes, with the state caught up with the files."""
        with self._write_mutex, self._file_lock():
            with self.lock.write():
                self._catch_up(truncate=True)
            yield

    def _restore(self, snapshot: Snapshot) -> None:
        next_label = int(snapshot.meta["next_label"])
        self._ensure_capacity(next_label)
        self._extend_lists(next_label)
        labels = snapshot.labels.astype(np.int64)
        if snapshot.index_path is not None and len(labels):
            self._hnsw = hnswlib.Index(space="cosine", dim=self.dim)
            self._hnsw.load_index(str(snapshot.index_path), max_elements=self._capacity)
            self._hnsw.set_ef(self.settings.ef_search)
        elif len(labels):
            self._hnsw.add_items(snapshot.vectors, labels, num_threads=os.cpu_count() or 1)
        self._vectors[labels] = snapshot.vectors
        for label, (chunk_id, doc_id, text, position, metadata) in zip(
            labels.tolist(), snapshot.records, strict=True
        ):
            self._set_record(label, chunk_id, doc_id, text, position, metadata)
        self._metadata_index.compact(force=True)
        if snapshot.bm25 is not None and snapshot.bm25.analyzer_version == ANALYZER_VERSION:
            self._bm25 = BM25Index.from_arrays(snapshot.bm25, labels)
            self.bm25_source = "snapshot"
        else:  # tokenizing every text again: the slow part of a load (~10 s per 100k chunks)
            for label, record in zip(labels.tolist(), snapshot.records, strict=True):
                self._bm25.add(label, record[2])
            self.bm25_source = "rebuilt"
        self._free = sorted(set(range(next_label)) - set(labels.tolist()), reverse=True)

    def snapshot(self) -> None:
        """Write a new snapshot generation and start an empty log (caller holds the write lock)."""
        labels = np.flatnonzero(self._alive[: len(self._chunk_ids)]).astype(np.int64)
        records = [
            [self._chunk_ids[i], self._doc_ids[i], self._texts[i], self._positions[i], self._metadata[i]]
            for i in labels.tolist()
        ]
        generation = self._generation + 1
        snapshot = Snapshot(
            labels=labels,
            records=records,
            vectors=self._vectors[labels],
            meta={"dim": self.dim, "next_label": len(self._chunk_ids), "chunks": len(labels)},
            index_path=None,
            bm25=self._bm25.to_arrays(),
        )
        self._files.write_snapshot(generation, snapshot, self._hnsw.save_index)
        if self._wal is not None:
            self._wal.close()
        self._wal = WriteAheadLog(self._files.wal_path(generation), self.dim)
        self._generation = generation
        self._wal_offset = self._wal.size
        self._files.remove_older_than(generation)

    def drop(self) -> int:
        """Delete this collection's files; returns the chunks it held. The index is unusable after."""
        with self._writing(), self.lock.write():
            removed = len(self._label_of)
            if self._wal is not None:
                self._wal.close()
                self._wal = None
            shutil.rmtree(self.directory, ignore_errors=True)
            self._reset_state()
        return removed

    def close(self) -> None:
        with self._writing(), self.lock.write():
            if self._wal is not None and self._wal.size > 0:
                self.snapshot()
            if self._wal is not None:
                self._wal.close()
                self._wal = None

    # --- state --------------------------------------------------------------------------------

    def _ensure_capacity(self, needed: int) -> None:
        if needed <= self._capacity:
            return
        capacity = self._capacity
        while capacity < needed:
            capacity *= 2
        vectors = np.zeros((capacity, self.dim), dtype=np.float32)
        vectors[: self._capacity] = self._vectors
        alive = np.zeros(capacity, dtype=bool)
        alive[: self._capacity] = self._alive
        label_doc = np.full(capacity, -1, dtype=np.intp)
        label_doc[: self._capacity] = self._label_doc
        self._vectors, self._alive, self._label_doc, self._capacity = vectors, alive, label_doc, capacity
        self._hnsw.resize_index(capacity)

    def _ensure_document_rows(self, needed: int) -> None:
        if needed <= len(self._centroid_fresh):
            return
        capacity = max(needed, 2 * len(self._centroid_fresh))
        rows = np.zeros((capacity, self.dim), dtype=np.float32)
        rows[: len(self._centroid_rows)] = self._centroid_rows
        fresh = np.zeros(capacity, dtype=bool)
        fresh[: len(self._centroid_fresh)] = self._centroid_fresh
        self._centroid_rows, self._centroid_fresh = rows, fresh

    def _extend_lists(self, size: int) -> None:
        missing = size - len(self._chunk_ids)
        if missing > 0:
            self._chunk_ids.extend([None] * missing)
            self._doc_ids.extend([None] * missing)
            self._texts.extend([None] * missing)
            self._positions.extend([0] * missing)
            self._metadata.extend([None] * missing)

    def _set_record(
        self, label: int, chunk_id: str, doc_id: str, text: str, position: int, metadata: dict[str, Any]
    ) -> None:
        self._chunk_ids[label] = chunk_id
        self._doc_ids[label] = doc_id
        self._texts[label] = text
        self._positions[label] = position
        self._metadata[label] = metadata
        self._metadata_index.add(label, metadata)
        self._alive[label] = True
        self._label_of[chunk_id] = label
        self._doc_labels.setdefault(doc_id, set()).add(label)
        number = self._doc_number.get(doc_id)
        if number is None:
            number = self._free_docs.pop() if self._free_docs else len(self._doc_names)
            if number == len(self._doc_names):
                self._doc_names.append(doc_id)
                self._ensure_document_rows(number + 1)
            self._doc_names[number] = doc_id
            self._doc_number[doc_id] = number
        self._label_doc[label] = number
        self._centroid_fresh[number] = False

    def _clear_record(self, label: int) -> None:
        chunk_id, doc_id = self._chunk_ids[label], self._doc_ids[label]
        if chunk_id is not None:
            self._label_of.pop(chunk_id, None)
        if doc_id is not None:
            number = self._doc_number[doc_id]
            self._centroid_fresh[number] = False
            labels = self._doc_labels.get(doc_id)
            if labels is not None:
                labels.discard(label)
                if not labels:
                    del self._doc_labels[doc_id]
                    del self._doc_number[doc_id]
                    self._free_docs.append(number)
        self._label_doc[label] = -1
        metadata = self._metadata[label]
        if metadata is not None:
            self._metadata_index.remove(label, metadata)
        self._chunk_ids[label] = self._doc_ids[label] = self._texts[label] = None
        self._metadata[label] = None
        self._alive[label] = False

    def _apply_upsert(
        self, rows: list[list[Any]], vectors: np.ndarray, *, threads: int | None = None
    ) -> None:
        """Apply one upsert to the in-memory state. ``threads``: for the graph inserts; by default
        every core only for a large write (a small one leaves the other core to the searches of
        the other processes, which this write does not block)."""
        labels = np.empty(len(rows), dtype=np.int64)
        for i, (chunk_id, doc_id, text, position, metadata) in enumerate(rows):
            label = self._label_of.get(chunk_id)
            if label is not None:
                self._clear_record(label)
            elif self._free:
                label = self._free.pop()
            else:
                label = len(self._chunk_ids)
                self._ensure_capacity(label + 1)
                self._extend_lists(label + 1)
            self._set_record(label, chunk_id, doc_id, text, position, metadata)
            self._bm25.add(label, text)
            labels[i] = label
        self._vectors[labels] = vectors
        # Re-adding a label updates its vector, and un-deletes it if it was a tombstone.
        if threads is None:
            threads = (os.cpu_count() or 1) if len(rows) >= 1000 else 1
        self._hnsw.add_items(vectors, labels, num_threads=threads)
        self._metadata_index.compact()
        self._version += 1

    def _apply_delete(self, chunk_ids: list[str]) -> int:
        removed = 0
        for chunk_id in chunk_ids:
            label = self._label_of.get(chunk_id)
            if label is None:
                continue
            self._clear_record(label)
            self._bm25.remove(label)
            self._hnsw.mark_deleted(label)
            self._free.append(label)
            removed += 1
        self._metadata_index.compact()
        self._version += 1
        return removed

    # --- writes -------------------------------------------------------------------------------

    def upsert(self, chunks: Sequence[Chunk]) -> int:
        # Later duplicates of an id win, as if the chunks had been upserted one by one.
        latest = {chunk.id: chunk for chunk in chunks}
        rows: list[list[Any]] = []
        vectors = np.empty((len(latest), self.dim), dtype=np.float32)
        for i, chunk in enumerate(latest.values()):
            rows.append(_validated_row(chunk))
            vectors[i] = as_vector(chunk.vector, self.dim, f"vector of chunk {chunk.id!r}")
        if not rows:
            return 0
        with self._writing():
            assert self._wal is not None
            self._wal.append({"op": "upsert", "chunks": rows}, vectors)
            with self.lock.write():
                self._apply_upsert(rows, vectors)
                self._wal_offset = self._wal.size
                self._maybe_snapshot()
        return len(rows)

    def delete_chunks(self, chunk_ids: Sequence[str]) -> int:
        with self._writing():
            return self._delete_locked(chunk_ids)

    def delete_documents(self, document_ids: Sequence[str]) -> int:
        with self._writing():
            chunk_ids = [
                cid
                for doc_id in dict.fromkeys(document_ids)
                for label in sorted(self._doc_labels.get(doc_id, ()))
                if (cid := self._chunk_ids[label]) is not None
            ]
            return self._delete_locked(chunk_ids)

    def _delete_locked(self, chunk_ids: Sequence[str]) -> int:
        present = [c for c in dict.fromkeys(chunk_ids) if c in self._label_of]
        if not present:
            return 0
        assert self._wal is not None
        self._wal.append({"op": "delete", "chunk_ids": present})
        with self.lock.write():
            removed = self._apply_delete(present)
            self._wal_offset = self._wal.size
            self._maybe_snapshot()
        return removed

    def _maybe_snapshot(self) -> None:
        if self._wal is not None and self._wal.size >= self.settings.snapshot_log_bytes:
            self.snapshot()

    # --- reads --------------------------------------------------------------------------------

    def info(self, name: str) -> CollectionInfo:
        self.refresh()
        with self.lock.read():
            return CollectionInfo(name=name, chunks=len(self._label_of), documents=len(self._doc_labels))

    def document_vectors(self, document_ids: Iterable[str]) -> dict[str, np.ndarray]:
        """Each known document's centroid: the mean of its chunks' unit vectors, L2-normalised."""
        self.refresh()
        with self.lock.read():
            return self._document_vectors(document_ids)

    def _document_vectors(self, document_ids: Iterable[str]) -> dict[str, np.ndarray]:
        """`document_vectors` for a caller holding the read lock."""
        known = [d for d in document_ids if d in self._doc_number]
        numbers = np.array([self._doc_number[d] for d in known], dtype=np.intp)
        return dict(zip(known, self._centroids(numbers), strict=True))

    def _centroids(self, numbers: np.ndarray) -> np.ndarray:
        """The centroids of these documents (by number), one row each, for a caller holding the
        read lock: the stale ones computed first."""
        for number in numbers[~self._centroid_fresh[numbers]].tolist():
            labels = self._doc_labels[self._doc_names[number]]
            rows = self._vectors[np.fromiter(labels, dtype=np.int64, count=len(labels))]
            rows = rows / np.clip(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12, None)
            mean = rows.mean(axis=0)
            # Under the read lock, from several threads at once: two threads computing the same
            # centroid agree, and the row is marked fresh only once it is written.
            self._centroid_rows[number] = mean / max(float(np.linalg.norm(mean)), 1e-12)
            self._centroid_fresh[number] = True
        return self._centroid_rows[numbers]

    def get_document(self, document_id: str) -> DocumentInfo | None:
        self.refresh()
        with self.lock.read():
            labels = sorted(self._doc_labels.get(document_id, ()), key=lambda label: self._positions[label])
            if not labels:
                return None
            metadata = dict(self._metadata[labels[0]] or {})
            return DocumentInfo(
                document_id=document_id,
                chunks=len(labels),
                content_hash=metadata.get(CONTENT_HASH_KEY),
                metadata=metadata,
            )

    def search(self, query: SearchQuery) -> list[Hit]:
        read = self._search_reader(query)
        self.refresh()
        with self.lock.read():
            return read()

    def document_candidates(self, queries: Sequence[SearchQuery], *, centroids: bool) -> DocumentCandidates:
        """Each query's candidates and, with `centroids`, the centroid of every document among
        them, under one refresh and one read lock: what document ranking reads. The candidates
        share the index's metadata mappings instead of copying them (a mapping is replaced on a
        write, never changed in place), so a caller must not change them."""
        read = self._candidates_reader(queries, centroids=centroids)
        self.refresh()
        with self.lock.read():
            return read()

    def search_now(self, query: SearchQuery) -> list[Hit] | None:
        """`search`, or None at once where it would wait (see `_read_now`)."""
        return self._read_now(self._search_reader(query))

    def document_candidates_now(
        self, queries: Sequence[SearchQuery], *, centroids: bool
    ) -> DocumentCandidates | None:
        """`document_candidates`, or None at once where it would wait (see `_read_now`)."""
        return self._read_now(self._candidates_reader(queries, centroids=centroids))

    def _read_now(self, read: Callable[[], T]) -> T | None:
        """`read()` under the read lock if that needs no wait, else None at once: when other
        processes' writes must be replayed first (unbounded work), or a write holds or awaits
        the lock. For a caller that must not block: the store answers its cheapest searches on
        the event loop with it."""
        if not self._caught_up():
            return None
        with self.lock.read_now() as held:
            return read() if held else None

    def _search_reader(self, query: SearchQuery) -> Callable[[], list[Hit]]:
        """`search`'s work under the read lock; the query vector is checked before (no lock)."""
        vector = as_vector(query.vector, self.dim, "query vector") if query.vector is not None else None
        return lambda: [self._hit(label, score) for label, score in self._ranked(query, vector)]

    def _candidates_reader(
        self, queries: Sequence[SearchQuery], *, centroids: bool
    ) -> Callable[[], DocumentCandidates]:
        vectors = [
            as_vector(q.vector, self.dim, "query vector") if q.vector is not None else None for q in queries
        ]

        def read() -> DocumentCandidates:
            ranked = [
                self._ranked_arrays(query, vector) for query, vector in zip(queries, vectors, strict=True)
            ]
            if len(ranked) == 1:  # the common case (a vector or a BM25 search): no duplicates
                labels = ranked[0][0]
                lists = [(np.arange(len(labels)), ranked[0][1])]
            else:  # one candidate per distinct chunk, numbered in order of first appearance
                found = np.concatenate([labels for labels, _ in ranked])
                labels, first, inverse = np.unique(found, return_index=True, return_inverse=True)
                order = np.argsort(first)
                number = np.empty(len(order), dtype=np.intp)
                number[order] = np.arange(len(order))
                labels, chunks = labels[order], number[inverse]
                ends = np.cumsum([len(scores) for _, scores in ranked])
                lists = [
                    (chunks[end - len(scores) : end], scores)
                    for (_, scores), end in zip(ranked, ends.tolist(), strict=True)
                ]
            # The records of the candidates, copied out under the lock (a label is reused after a
            # delete): one C-level gather per field, no Hit or dict per candidate.
            at = labels.tolist()
            # The candidates' documents numbered in a dict: np.unique (a sort and a cumsum) cost
            # three times as much for ~50 small ints.
            numbers: dict[int, int] = {}
            chunk_documents = np.array(
                [numbers.setdefault(n, len(numbers)) for n in self._label_doc[labels].tolist()], dtype=np.intp
            )
            documents = np.fromiter(numbers, dtype=np.intp, count=len(numbers))
            candidates = DocumentCandidates(
                lists=lists,
                # A live label's fields are never None.
                chunk_ids=cast(list[str], _gather(self._chunk_ids, at)),
                document_ids=cast(list[str], _gather(self._doc_ids, at)),
                texts=cast(list[str], _gather(self._texts, at)),
                metadata=cast(list[dict[str, Any]], _gather(self._metadata, at)),
                positions=_gather(self._positions, at),
                chunk_documents=chunk_documents,
                documents=_gather(self._doc_names, documents.tolist()),
            )
            if centroids and len(documents):
                candidates.centroids = self._centroids(documents)
            return candidates

        return read

    def _ranked(self, query: SearchQuery, vector: np.ndarray | None) -> list[tuple[int, float]]:
        """(label, score) pairs, best first, for a caller holding the read lock."""
        if not self._label_of:
            return []
        mask = self._filter_mask(query.metadata_filter)
        if mask is not None and not mask.any():
            return []
        if query.mode == "vector":
            assert vector is not None
            return self._vector_search(vector, query.top_k, mask)
        if query.mode == "bm25":
            assert query.text is not None
            return self._bm25.search(query.text, query.top_k, mask)
        assert vector is not None and query.text is not None
        candidates = max(query.top_k, self.settings.hybrid_candidates)
        return fuse(
            self._vector_search(vector, candidates, mask),
            self._bm25.search(query.text, candidates, mask),
            alpha=query.alpha,
            fusion=query.fusion,
        )[: query.top_k]

    def _ranked_arrays(self, query: SearchQuery, vector: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """`_ranked` as (labels, scores) arrays; an unfiltered vector search's straight from
        hnswlib's, without a Python tuple per neighbour."""
        if query.mode == "vector" and query.metadata_filter is None and self._label_of:
            assert vector is not None
            found = self._knn(vector, query.top_k)
            if found is not None:
                return found
        pairs = self._ranked(query, vector)
        return (
            np.array([label for label, _ in pairs], dtype=np.intp),
            np.array([score for _, score in pairs], dtype=np.float64),
        )

    def _hit(self, label: int, score: float) -> Hit:
        metadata = self._metadata[label]
        return Hit(
            id=self._chunk_ids[label] or "",
            document_id=self._doc_ids[label] or "",
            text=self._texts[label] or "",
            score=score,
            metadata={} if metadata is None else dict(metadata),
            position=self._positions[label],
        )

    def _filter_mask(self, metadata_filter: MetadataFilter | None) -> np.ndarray | None:
        """A boolean mask by label of the live chunks matching the filter (None: no filter).

        The metadata index answers it in lookups (metadata_index.py); the masks are also cached
        per (index version, filter), which spares repeated filtered queries even those.
        """
        if not metadata_filter:  # no condition: every live chunk matches
            return None
        key = (self._version, orjson.dumps(metadata_filter.model_dump(by_alias=True, exclude_none=True)))
        with self._filter_masks_lock:
            mask = self._filter_masks.get(key)
            if mask is not None:
                self._filter_masks.move_to_end(key)
                return mask
        mask = self._metadata_index.mask(metadata_filter, len(self._chunk_ids))
        with self._filter_masks_lock:
            self._filter_masks[key] = mask
            while len(self._filter_masks) > self.settings.filter_cache_size:
                self._filter_masks.popitem(last=False)
        return mask

    def _knn(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The unfiltered HNSW query: (labels, cosine similarities), best first; None when the
        graph cannot give k live nodes (one thinned by deletes), and an exact scan must."""
        try:
            labels, distances = self._hnsw.knn_query(vector, k=min(k, len(self._label_of)), num_threads=1)
        except RuntimeError:
            return None
        return labels[0].astype(np.intp), 1.0 - distances[0].astype(np.float64)

    def _vector_search(self, vector: np.ndarray, k: int, mask: np.ndarray | None) -> list[tuple[int, float]]:
        if mask is None:
            found = self._knn(vector, k)
            if found is not None:
                return list(zip(found[0].tolist(), found[1].tolist(), strict=True))
            mask = self._alive[: len(self._chunk_ids)]
        allowed = np.flatnonzero(mask)
        k = min(k, len(allowed))
        # Few matches: an exact scan of just them is both cheaper and exact. Many: first an
        # unfiltered walk over-fetching by the inverse of the match fraction, post-filtered (the
        # cheapest when a good share of chunks match); if that comes up short, the walk with the
        # predicate inside it (a Python call per visited node: slower, but it always finds k).
        if len(allowed) > self.settings.exact_scan_limit:
            fraction = len(allowed) / len(self._label_of)
            if fraction >= 0.1:
                fetch = min(len(self._label_of), int(2 * k / fraction) + 10)
                labels, distances = self._hnsw.knn_query(vector, k=fetch, num_threads=1)
                kept = [
                    (int(label), 1.0 - float(d))
                    for label, d in zip(labels[0], distances[0], strict=True)
                    if mask[label]
                ]
                if len(kept) >= k:
                    return kept[:k]
            try:
                labels, distances = self._hnsw.knn_query(
                    vector, k=k, num_threads=1, filter=lambda label: bool(mask[label])
                )
                return [
                    (int(label), 1.0 - float(d)) for label, d in zip(labels[0], distances[0], strict=True)
                ]
            except RuntimeError:  # hnswlib found fewer than k matches in the graph; scan them all
                pass
        scores = self._vectors[allowed] @ vector
        if len(allowed) > k:
            top = np.argpartition(-scores, k)[:k]
            allowed, scores = allowed[top], scores[top]
        order = np.argsort(-scores, kind="stable")
        return [(int(allowed[i]), float(scores[i])) for i in order]


def _gather(values: list[T], at: list[int]) -> list[T]:
    """`[values[i] for i in at]` in C (itemgetter): document ranking gathers ~50 candidates'
    fields per search."""
    if len(at) > 1:
        return list(operator.itemgetter(*at)(values))
    return [values[i] for i in at]


def _validated_row(chunk: Chunk) -> list[Any]:
    for name in ("id", "document_id"):
        value = getattr(chunk, name)
        if not isinstance(value, str) or not value or len(value) > 512:
            raise BadRequest(f"chunk {name} must be a non-empty string of at most 512 characters")
    if not isinstance(chunk.text, str):
        raise BadRequest(f"text of chunk {chunk.id!r} must be a string")
    if not isinstance(chunk.metadata, dict):
        raise BadRequest(f"metadata of chunk {chunk.id!r} must be an object")
    try:
        metadata = orjson.loads(orjson.dumps(chunk.metadata))
    except TypeError as exc:
        raise BadRequest(f"metadata of chunk {chunk.id!r} is not JSON-serialisable: {exc}") from None
    return [chunk.id, chunk.document_id, chunk.text, int(chunk.position), metadata]
