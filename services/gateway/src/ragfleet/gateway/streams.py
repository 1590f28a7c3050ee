"""Resumable streams: generation writes events to a Redis stream; connections tail it.

Every streamed event is appended to ``gw:stream:<id>`` with the explicit entry id ``<seq>-0`` and
sent to clients with the event id ``<stream id>:<seq>``. A client that comes back with the last
id it saw — to any replica — tails the same Redis stream from there, so nothing is generated
twice, and the generating task keeps writing whether or not its client is still connected.

While it generates, the replica holds a lease (``gw:stream:<id>:lease``, refreshed every third
of ``stream_lease_s``). A tailer that finds the stream unfinished and the lease gone knows the
generating replica died: it appends a terminal ``error`` event (``stream_interrupted``,
retryable) so every reader of that stream ends the same way, and the client resends its
message. Regenerating elsewhere was rejected: a model is not deterministic in general, so the
continuation would not match the half the client already showed; the conversation memory is
written only when an answer completes, so resending is safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from ragfleet.common.errors import BadRequest, NotFound, ServiceUnavailable

TERMINAL_EVENTS = frozenset({"done", "error"})
EVENT_ID = re.compile(r"^([a-f0-9]{32}):(\d{1,9})$")


@dataclass(frozen=True)
class StreamEvent:
    stream_id: str
    seq: int
    event: str
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.stream_id}:{self.seq}"

    @property
    def terminal(self) -> bool:
        return self.event in TERMINAL_EVENTS

    def sse(self) -> bytes:
        return b"id: %s\nevent: %s\ndata: %s\n\n" % (
            self.id.encode(),
            self.event.encode(),
            orjson.dumps(self.data),
        )

    def ws(self) -> str:
        return orjson.dumps({"type": self.event, "id": self.id, **self.data}).decode()


def parse_event_id(event_id: str) -> tuple[str, int]:
    match = EVENT_ID.match(event_id.strip())
    if not match:
        raise BadRequest("a last event id looks like '<32 hex stream id>:<sequence number>'")
    return match.group(1), int(match.group(2))


class StreamBuffer:
    def __init__(self, redis: Redis, *, ttl_s: int, lease_s: float, replica: str, block_ms: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.lease_s = lease_s
        self.replica = replica
        self.block_ms = block_ms

    @staticmethod
    def _keys(stream_id: str) -> tuple[str, str, str]:
        base = f"gw:stream:{stream_id}"
        return base, f"{base}:meta", f"{base}:lease"

    async def open(self, stream_id: str, tenant: str, key_id: str, session_id: str) -> None:
        _, meta_key, lease_key = self._keys(stream_id)
        meta: dict[str | bytes, str] = {
            "tenant": tenant,
            "key_id": key_id,
            "session_id": session_id,
            "replica": self.replica,
        }
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(meta_key, mapping={**meta, "created_at": str(time.time())})
                pipe.expire(meta_key, self.ttl_s)
                pipe.set(lease_key, self.replica, px=int(self.lease_s * 1000))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise ServiceUnavailable(
                "streamed answers need the stream buffer, which is unavailable; retry shortly, or ask "
                "without Accept: text/event-stream for a JSON answer"
            ) from exc

    async def append(self, event: StreamEvent) -> bool:
        """Append one event; False when that sequence number is taken (another writer ended it)."""
        events_key, _, lease_key = self._keys(event.stream_id)
        fields: dict[str | bytes, bytes | str] = {"event": event.event, "data": orjson.dumps(event.data)}
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xadd(events_key, fields, id=f"{event.seq}-0")
                pipe.expire(events_key, self.ttl_s)
                if event.terminal:
                    pipe.delete(lease_key)
                await pipe.execute()
        except ResponseError as exc:
            if "equal or smaller" in str(exc):
                return False
            raise
        return True

    async def keep_lease(self, stream_id: str) -> None:
        """Refresh the lease until cancelled: the proof that this replica still generates."""
        lease_key = self._keys(stream_id)[2]
        while True:
            await asyncio.sleep(self.lease_s / 3)
            with contextlib.suppress(Exception):
                await self.redis.set(lease_key, self.replica, px=int(self.lease_s * 1000))

    async def owner_tenant(self, stream_id: str) -> str | None:
        tenant = await self.redis.hget(self._keys(stream_id)[1], "tenant")
        return tenant.decode() if tenant else None

    async def require_owned(self, stream_id: str, tenant: str) -> None:
        """A stream of another tenant is reported exactly like one that never existed."""
        if await self.owner_tenant(stream_id) != tenant:
            raise NotFound(f"stream {stream_id} does not exist or has expired", code="stream_not_found")

    async def tail(self, stream_id: str, after_seq: int) -> AsyncIterator[StreamEvent | None]:
        """Events after ``after_seq`` until a terminal one; ``None`` on each idle wait (for keep-alives)."""
        events_key, _, lease_key = self._keys(stream_id)
        last = after_seq
        try:
            while True:
                reply = await self.redis.xread({events_key: f"{last}-0"}, count=200, block=self.block_ms)
                entries = reply[0][1] if reply else []
                if not entries:
                    if not await self.redis.exists(lease_key):
                        # Nothing new and nobody generating: read once more (the writer may have
                        # finished between the two calls), then end the stream for everyone.
                        again = await self.redis.xread({events_key: f"{last}-0"}, count=200)
                        if not again:
                            interrupted = StreamEvent(
                                stream_id,
                                last + 1,
                                "error",
                                {
                                    "code": "stream_interrupted",
                                    "message": "the replica generating this answer stopped; send the message again",
                                    "retryable": True,
                                },
                            )
                            if await self.append(interrupted):
                                yield interrupted
                                return
                        continue
                    yield None
                    continue
                for entry_id, fields in entries:
                    seq = int(entry_id.decode().split("-", 1)[0])
                    event = StreamEvent(
                        stream_id, seq, fields[b"event"].decode(), orjson.loads(fields[b"data"])
                    )
                    last = seq
                    yield event
                    if event.terminal:
                        return
        except (RedisError, OSError) as exc:
            # Redis went away mid-stream: end this reader cleanly; the events stay resumable.
            raise ServiceUnavailable(
                "this answer's stream cannot be read right now (its buffer is unreachable); "
                "resume from the last event id in a moment",
                code="stream_unavailable",
            ) from exc
