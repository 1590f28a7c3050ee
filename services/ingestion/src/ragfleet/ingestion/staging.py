"""Staged uploads: each document's bytes in the state Redis, written and read in bounded pieces.

The API writes a document while it arrives, ``APPEND``-ing at most ``stage_chunk_bytes`` at a
time, so no upload is ever held whole in the API's memory; the worker reads it back with
``GETRANGE`` in pieces of the same size, so no single Redis reply is bigger than one piece either.
The worker does end with the whole document in memory, because the parsers need its whole text;
that is bounded by ``max_document_bytes``.

One string key per document (``jobs.payload_key``), the layout staging always had: an API and a
worker of different versions (a rolling upgrade) still read what the other staged.

While its request is still being read a staged key expires ``STAGING_IDLE_TTL_S`` after its last
write (an API replica that dies mid-upload leaves nothing behind for long); a refused or failed
request deletes every key it wrote at once; an accepted one gives them ``payload_ttl_s``.
"""

from __future__ import annotations

import logging

import redis
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from ragfleet.ingestion import jobs

log = logging.getLogger("ragfleet.ingestion.staging")

# Long enough for a slow client's pause between two pieces, short enough that an upload whose API
# replica died is gone well before the two days an accepted document waits for a worker.
STAGING_IDLE_TTL_S = 900


class StagedRequest:
    """The documents one request stages under its job id: deleted unless the job is accepted."""

    def __init__(self, redis_client: Redis, job_id: str, chunk_bytes: int) -> None:
        self._redis = redis_client
        self.job_id = job_id
        self.chunk_bytes = chunk_bytes
        self._keys: list[str] = []

    def document(self, document_id: str) -> StagedDocumentWriter:
        key = jobs.payload_key(self.job_id, document_id)
        self._keys.append(key)
        return StagedDocumentWriter(self._redis, key, self.chunk_bytes)

    def keep(self, pipe: Pipeline, ttl_s: int) -> None:
        """Part of accepting the job (in its transaction): the staged bytes wait ``ttl_s`` for a worker."""
        for key in self._keys:
            pipe.expire(key, ttl_s)

    async def discard(self) -> None:
        """Delete everything this request staged (it was refused, or failed before it was accepted)."""
        if not self._keys:
            return
        try:
            await self._redis.delete(*self._keys)
        except RedisError as exc:  # Redis is away: the keys expire after STAGING_IDLE_TTL_S anyway
            log.warning("cannot delete the staged documents of job %s: %s", self.job_id, exc)


class StagedDocumentWriter:
    """One document's bytes, sent to Redis a piece of at most ``chunk_bytes`` at a time."""

    def __init__(self, redis_client: Redis, key: str, chunk_bytes: int) -> None:
        self._redis = redis_client
        self._key = key
        self._chunk_bytes = chunk_bytes
        self._buffer = bytearray()
        self.size = 0

    async def write(self, data: bytes) -> None:
        self._buffer += data
        self.size += len(data)
        while len(self._buffer) >= self._chunk_bytes:
            await self._append(bytes(self._buffer[: self._chunk_bytes]))
            del self._buffer[: self._chunk_bytes]

    async def close(self) -> None:
        if self._buffer:
            await self._append(bytes(self._buffer))
            self._buffer.clear()

    async def _append(self, piece: bytes) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.append(self._key, piece)
        pipe.expire(self._key, STAGING_IDLE_TTL_S)
        await pipe.execute()


def read_staged(client: redis.Redis, key: str, chunk_bytes: int) -> bytes | None:
    """A staged document, read in pieces of ``chunk_bytes``; None when it is gone (expired, or
    deleted while being read: the pieces then fall short of the length read first)."""
    size = int(client.strlen(key))
    if size == 0:  # a missing key (empty documents are refused before anything is staged)
        return None
    pieces = [
        bytes(client.getrange(key, start, min(start + chunk_bytes, size) - 1))
        for start in range(0, size, chunk_bytes)
    ]
    data = b"".join(pieces)
    return data if len(data) == size else None
