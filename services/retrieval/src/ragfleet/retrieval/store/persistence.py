"""Crash-safe files for the embedded index: numbered snapshots plus an append-only write-ahead log.

A collection's directory holds ``snapshot-<gen>/`` (the whole state at some point) and
``wal-<gen>.log`` (every write since that snapshot). Each write is appended to the log and
fsynced before the call returns, so a crash loses nothing that was acknowledged. Taking a
snapshot writes ``snapshot-<gen+1>.tmp/``, fsyncs its files, renames it into place (atomic) and
fsyncs the directory; only then are the older generation's files removed. On start the newest
complete snapshot is loaded and its log replayed; a torn record at the log's tail (a crash
mid-append) is cut off.

Log record: ``<u32 json_len><u32 vectors_len><u32 crc32>`` + JSON + raw float32 vectors.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ragfleet.retrieval.store.bm25 import BM25Arrays

log = logging.getLogger("ragfleet.retrieval.store")

_HEADER = struct.Struct("<III")


@dataclass(slots=True)
class LogRecord:
    payload: dict[str, Any]
    vectors: np.ndarray | None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class WriteAheadLog:
    def __init__(self, path: Path, dim: int) -> None:
        self.path = path
        self.dim = dim
        self._file = open(path, "ab")  # noqa: SIM115 - kept open for the life of the log
        self.size = self._file.tell()

    def append(self, payload: dict[str, Any], vectors: np.ndarray | None = None) -> None:
        body = orjson.dumps(payload)
        raw = b"" if vectors is None else np.ascontiguousarray(vectors, dtype=np.float32).tobytes()
        crc = zlib.crc32(raw, zlib.crc32(body))
        self._file.write(_HEADER.pack(len(body), len(raw), crc) + body + raw)
        self._file.flush()
        os.fsync(self._file.fileno())
        self.size = self._file.tell()

    def close(self) -> None:
        self._file.close()

    @staticmethod
    def replay(
        path: Path, dim: int, *, start: int = 0, truncate: bool = True
    ) -> Iterator[tuple[LogRecord, int]]:
        """Every intact record from byte `start` on, with the offset just past it. With
        `truncate`, a torn or corrupt tail (a crash mid-append) is cut off the file."""
        if not path.exists():
            return
        good_end = start
        with open(path, "rb") as f:
            f.seek(start)
            while True:
                header = f.read(_HEADER.size)
                if len(header) < _HEADER.size:
                    break
                body_len, raw_len, crc = _HEADER.unpack(header)
                body = f.read(body_len)
                raw = f.read(raw_len)
                if len(body) < body_len or len(raw) < raw_len or zlib.crc32(raw, zlib.crc32(body)) != crc:
                    break
                good_end = f.tell()
                vectors = np.frombuffer(raw, dtype=np.float32).reshape(-1, dim) if raw_len else None
                yield LogRecord(orjson.loads(body), vectors), good_end
        if truncate and good_end < path.stat().st_size:
            log.warning("cutting a torn tail off %s at byte %d", path, good_end)
            with open(path, "r+b") as f:
                f.truncate(good_end)
                os.fsync(f.fileno())


@dataclass(slots=True)
class Snapshot:
    """What a snapshot holds: the records of every live label, their vectors, the HNSW file and
    the BM25 postings (snapshots written before BM25 was persisted have none: it is rebuilt)."""

    labels: np.ndarray  # int64, one per live chunk
    records: list[list[Any]]  # [chunk_id, document_id, text, position, metadata] per label
    vectors: np.ndarray  # float32 (len(labels), dim)
    meta: dict[str, Any]
    index_path: Path | None  # the saved HNSW graph, when there is one
    bm25: BM25Arrays | None = None


class CollectionFiles:
    """The files of one collection's directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def generations(self) -> list[int]:
        gens = []
        for child in self.directory.glob("snapshot-*"):
            suffix = child.name.removeprefix("snapshot-")
            if child.is_dir() and suffix.isdigit():
                gens.append(int(suffix))
        return sorted(gens)

    def current_generation(self) -> int:
        gens = self.generations()
        return gens[-1] if gens else 0

    def wal_path(self, generation: int) -> Path:
        return self.directory / f"wal-{generation}.log"

    def snapshot_dir(self, generation: int) -> Path:
        return self.directory / f"snapshot-{generation}"

    def load_snapshot(self, generation: int) -> Snapshot | None:
        path = self.snapshot_dir(generation)
        if generation == 0 or not path.is_dir():
            return None
        meta = orjson.loads((path / "meta.json").read_bytes())
        records = orjson.loads((path / "records.json").read_bytes())
        labels = np.load(path / "labels.npy")
        vectors = np.load(path / "vectors.npy")
        index_path = path / "hnsw.bin"
        bm25 = None
        if "bm25_tokenizer" in meta:
            bm25 = BM25Arrays(
                terms=orjson.loads((path / "bm25-terms.json").read_bytes()),
                indptr=np.load(path / "bm25-indptr.npy"),
                labels=np.load(path / "bm25-labels.npy"),
                tfs=np.load(path / "bm25-tfs.npy"),
                analyzer_version=int(meta["bm25_tokenizer"]),
            )
        return Snapshot(labels, records, vectors, meta, index_path if index_path.exists() else None, bm25)

    def write_snapshot(
        self,
        generation: int,
        snapshot: Snapshot,
        save_index: Any,
    ) -> None:
        """Write snapshot `generation` atomically; `save_index(path)` writes the HNSW graph."""
        final = self.snapshot_dir(generation)
        tmp = self.directory / f"snapshot-{generation}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        write_file(tmp / "records.json", orjson.dumps(snapshot.records))
        arrays = {"labels.npy": snapshot.labels, "vectors.npy": snapshot.vectors}
        meta = dict(snapshot.meta)
        if snapshot.bm25 is not None:
            write_file(tmp / "bm25-terms.json", orjson.dumps(snapshot.bm25.terms))
            arrays |= {
                "bm25-indptr.npy": snapshot.bm25.indptr,
                "bm25-labels.npy": snapshot.bm25.labels,
                "bm25-tfs.npy": snapshot.bm25.tfs,
            }
            meta["bm25_tokenizer"] = snapshot.bm25.analyzer_version
        for name, array in arrays.items():
            with open(tmp / name, "wb") as f:
                np.save(f, array)
                f.flush()
                os.fsync(f.fileno())
        index_file = tmp / "hnsw.bin"
        save_index(str(index_file))
        with open(index_file, "rb+") as f:
            os.fsync(f.fileno())
        # meta.json last: a snapshot directory is only renamed into place once it is complete.
        write_file(tmp / "meta.json", orjson.dumps(meta))
        fsync_dir(tmp)
        os.replace(tmp, final)
        fsync_dir(self.directory)

    def remove_older_than(self, generation: int) -> None:
        for gen in self.generations():
            if gen < generation:
                shutil.rmtree(self.snapshot_dir(gen), ignore_errors=True)
        for wal in self.directory.glob("wal-*.log"):
            suffix = wal.name.removeprefix("wal-").removesuffix(".log")
            if suffix.isdigit() and int(suffix) < generation:
                wal.unlink(missing_ok=True)
        for tmp in self.directory.glob("snapshot-*.tmp"):
            shutil.rmtree(tmp, ignore_errors=True)
        fsync_dir(self.directory)
