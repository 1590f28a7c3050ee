"""Index the corpus into a real retrieval service and ask it every question over HTTP.

The harness starts Redis and the retrieval service on free loopback ports (the same processes
`make run` starts), chunks each document with the ingestion service's own parser and chunker,
embeds the chunks with the platform's embedder (vectors cached on disk by model and text, so a
second run embeds nothing) and upserts them through retrieval's internal API, one collection per
chunking. Questions then go through the public `POST /v1/search`, where retrieval embeds the
query, searches and fuses exactly as it does for clients. Only the Celery hop is skipped: it
would re-embed every chunking on every run and add nothing to what is ranked.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from ragfleet.common.contracts import TENANT_HEADER
from ragfleet.common.embeddings import Embedder
from ragfleet.devstack.processes import free_port, start_redis, start_service
from ragfleet.eval.dataset import Document, Question
from ragfleet.ingestion.chunking import chunk_sections, document_title, embedding_text
from ragfleet.ingestion.parsers import DocumentFormat, parse

log = logging.getLogger("ragfleet.eval")

TENANT = "eval"


@dataclass(frozen=True)
class Chunking:
    size: int
    overlap: int

    @property
    def collection(self) -> str:
        return f"c{self.size}-{self.overlap}"

    def __str__(self) -> str:
        return f"{self.size}/{self.overlap}"


@dataclass(frozen=True)
class Setting:
    """One way of asking: the search request's fields beyond the query (empty: server defaults)."""

    name: str
    request: dict[str, Any] = field(default_factory=dict)


class EmbeddingCache:
    """Chunk vectors on disk, keyed by model and text: re-running the harness embeds nothing new."""

    def __init__(self, embedder: Embedder, directory: Path) -> None:
        self.embedder = embedder
        self.path = directory / f"embeddings-{embedder.model_name}.npz"
        self.vectors: dict[str, np.ndarray] = {}
        if self.path.exists():
            with np.load(self.path) as stored:
                self.vectors = {key: stored[key] for key in stored.files}
        self.computed = 0

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = sorted({t for t in texts if self._key(t) not in self.vectors}, key=len)
        if missing:
            for start in range(0, len(missing), 64):
                batch = missing[start : start + 64]
                for text, vector in zip(batch, self.embedder.embed(batch), strict=True):
                    self.vectors[self._key(text)] = vector
            self.computed += len(missing)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(self.path, **self.vectors)  # type: ignore[arg-type]  # numpy's stub
        return np.stack([self.vectors[self._key(t)] for t in texts])


@contextmanager
def retrieval_service(work_dir: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Redis and one retrieval process on free ports; yields the retrieval base URL."""
    redis_port, port = free_port(), free_port()
    redis = start_redis(redis_port, work_dir / "redis")
    service = None
    try:
        prefix = "RAGFLEET_RETRIEVAL_"
        service_env = {
            f"{prefix}REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            f"{prefix}PORT": str(port),
            f"{prefix}DATA_DIR": str(work_dir / "data"),
            f"{prefix}METRICS_DIR": str(work_dir / "metrics"),
            f"{prefix}ENVIRONMENT": "development",
            f"{prefix}LOG_LEVEL": "WARNING",
            **(env or {}),
        }
        service = start_service(
            "retrieval",
            "ragfleet.retrieval",
            port=port,
            env=service_env,
            log_dir=work_dir,
            ready_path="/readyz",
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        if service is not None:
            service.stop()
        redis.stop()


def index_corpus(
    client: httpx.Client,
    documents: Sequence[Document],
    chunking: Chunking,
    cache: EmbeddingCache,
    collection: str | None = None,
) -> int:
    """Chunk, embed and upsert every document into `collection` (default: the chunking's); returns chunks."""
    collection = collection or chunking.collection
    rows: list[dict[str, Any]] = []
    for doc in documents:
        sections = parse(doc.data, DocumentFormat.MARKDOWN)
        title = document_title(sections, {}, doc.id)
        chunks = chunk_sections(sections, size=chunking.size, overlap=chunking.overlap)
        vectors = cache.embed([embedding_text(chunk, title) for chunk in chunks])
        for chunk, vector in zip(chunks, vectors, strict=True):
            rows.append(
                {
                    "id": f"{doc.id}:{chunk.position}",
                    "document_id": doc.id,
                    "text": chunk.text,
                    "position": chunk.position,
                    "metadata": {"title": title, "heading": chunk.heading},
                    "vector": vector.tolist(),
                }
            )
    for start in range(0, len(rows), 256):
        response = client.post(
            f"/internal/v1/collections/{collection}/upsert",
            json={"chunks": rows[start : start + 256]},
        )
        response.raise_for_status()
    return len(rows)


def ask(
    client: httpx.Client, collection: str, questions: Sequence[Question], setting: Setting
) -> list[list[str]]:
    """Each question's ranking of document ids (a document at the rank of its best chunk)."""
    rankings = []
    for question in questions:
        body = {"query": question.text, "collection": collection, **setting.request}
        response = client.post("/v1/search", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"{setting.name}: search answered {response.status_code}: {response.text}")
        ids = [hit["document_id"] for hit in response.json()["results"]]
        rankings.append(list(dict.fromkeys(ids)))
    return rankings


def client_for(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={TENANT_HEADER: TENANT}, timeout=120.0)


def wait_for(predicate: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.1)
