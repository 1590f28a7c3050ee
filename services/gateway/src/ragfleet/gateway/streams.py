"""Resumable streams: generation writes events to a Redis stream; connections tail it.

Every streamed event is appended to ``gw:stream:<id>`` with the explicit entry id ``<seq>-0`` and
sent to clients with the event id ``<stream id>:<seq>``. A client that comes back with the last
id it saw — to any replica — tails the same Redis stream from there, so nothing is generated
twice, and the generating task keeps writing whether or not its client is still connected.

While it generates, a replica holds the stream's lease (``gw:stream:<id>:lease``, a token of its
own, refreshed every third of ``stream_lease_s``), and it can only append while the lease is its
own: a generator that lost its lease (paused past it, or replaced) can never interleave events
with the one that replaced it. A tailer that finds the stream unfinished and the lease gone
knows the generating replica died: it *claims* the stream (takes the lease with SET NX, so of
all the readers on all the replicas exactly one wins) and hands the claim to a takeover, which
generates the answer again from the turn kept in the stream's meta (see ``chat.py``). When no
takeover may run (none given, too many already), the claimant appends a terminal ``error``
event (``stream_interrupted``, retryable) so every reader of that stream ends the same way.

The buffer lives on the cache Redis, which may evict it under memory pressure (by design: it is
rebuildable). So the client that asked for an answer never reads it back from Redis: the replica
generating it hands every event to a ``LiveStream`` in its own memory first, and that client's
connection reads from there (``ChatService.live``). Redis is only what a *resume* reads — on
another replica, or after this one dropped the live stream. A resume checks what it reads: event
sequence numbers run 1, 2, 3… without a hole, so a buffer that lost events (evicted whole, or its
start evicted and writing went on into a fresh key) ends the reader with a clear ``stream_gone``
error, and a resume whose buffer's meta is gone is answered 410 ``stream_gone`` — never a
silently truncated answer.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from ragfleet.common.errors import BadRequest, RagfleetError, ServiceUnavailable

TERMINAL_EVENTS = frozenset({"done", "error"})
EVENT_ID = re.compile(r"^([a-f0-9]{32}):(\d{1,9})$")

# KEYS: events, lease. ARGV: lease token, entry id, ttl (s), terminal (1/0), event, data.
# Appends only while the caller holds the lease; a terminal event releases it.
APPEND_IF_LEASED = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('XADD', KEYS[1], ARGV[2], 'event', ARGV[5], 'data', ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if ARGV[4] == '1' then redis.call('DEL', KEYS[2]) end
return 1
"""

# KEYS: lease. ARGV: lease token, lease (ms). Refreshes the lease only while it is the caller's.
REFRESH_IF_LEASED = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

# KEYS: events, lease, meta. ARGV: lease token, lease (ms), ttl (s).
# Returns {attempt, last seq}: attempt -1 when the stream already ended (nothing to take over),
# 0 when someone holds the lease, else the number of this takeover (counted in the meta).
CLAIM = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
local last_id = '0-0'
if last then
  last_id = last[1]
  local fields = last[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'event' and (fields[i + 1] == 'done' or fields[i + 1] == 'error') then
      return {-1, last_id}
    end
  end
end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0, last_id} end
local attempt = redis.call('HINCRBY', KEYS[3], 'takeovers', 1)
redis.call('EXPIRE', KEYS[3], ARGV[3])
return {attempt, last_id}
"""


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


@dataclass(frozen=True)
class Claim:
    """A reader's attempt to take over a stream whose lease is gone.

    ``attempt`` is the number of this takeover (1 for the first) when the reader won the lease,
    0 when someone else holds it, -1 when the stream has already ended. ``last_seq`` is the
    stream's last event: a takeover writes after it.
    """

    stream_id: str
    token: str
    attempt: int
    last_seq: int

    @property
    def won(self) -> bool:
        return self.attempt > 0

    @property
    def ended(self) -> bool:
        return self.attempt < 0


class StreamGone(RagfleetError):
    """The buffer of this stream is not (or no longer wholly) in the cache Redis."""

    status_code = 410
    code = "stream_gone"


def gone(stream_id: str, what: str) -> StreamGone:
    return StreamGone(
        f"stream {stream_id} {what}: its buffer expired or was evicted from the cache (or it never "
        "existed); send the message again"
    )


class LiveStream:
    """One answer's events, in the memory of the replica generating it, for the connection that
    asked for it (and any resume that lands on this replica while it runs). Unlike the Redis
    buffer nothing can evict it; it is dropped when the generation ends."""

    def __init__(self, stream_id: str, tenant: str, key_id: str, idle_s: float) -> None:
        self.stream_id = stream_id
        self.owner = (tenant, key_id)
        self.idle_s = idle_s
        self.events: list[StreamEvent] = []
        self.ended = False
        self.readers = 0
        self._changed = asyncio.Event()

    def publish(self, event: StreamEvent) -> None:
        self.events.append(event)
        self.ended = self.ended or event.terminal
        self._changed.set()
        self._changed = asyncio.Event()  # the waiters of this event are woken; later ones wait anew

    @property
    def last_seq(self) -> int:
        return self.events[-1].seq if self.events else 0

    async def tail(self, after_seq: int) -> AsyncIterator[StreamEvent | None]:
        """Events after ``after_seq`` until a terminal one; ``None`` on each idle wait (keep-alives)."""
        index = 0
        self.readers += 1
        try:
            while True:
                while index < len(self.events):
                    event = self.events[index]
                    index += 1
                    if event.seq > after_seq:
                        yield event
                        if event.terminal:
                            return
                if self.ended:
                    return
                changed = self._changed
                try:
                    await asyncio.wait_for(changed.wait(), self.idle_s)
                except TimeoutError:
                    yield None
        finally:
            self.readers -= 1


# Runs a claimed stream's answer again; False when it will not (the claimant then ends the stream).
Takeover = Callable[[Claim], Awaitable[bool]]


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
        self._append = redis.register_script(APPEND_IF_LEASED)
        self._refresh = redis.register_script(REFRESH_IF_LEASED)
        self._claim = redis.register_script(CLAIM)

    @staticmethod
    def _keys(stream_id: str) -> tuple[str, str, str]:
        base = f"gw:stream:{stream_id}"
        return base, f"{base}:meta", f"{base}:lease"

    def _new_token(self) -> str:
        # Unique per generation, so two generations on one replica never share a lease.
        return f"{self.replica}:{uuid.uuid4().hex[:12]}"

    @property
    def lease_ms(self) -> int:
        return max(1, int(self.lease_s * 1000))

    async def open(self, stream_id: str, meta: dict[str, str]) -> str:
        """Create a stream's meta (``tenant`` is required) and take its lease; returns the lease token."""
        _, meta_key, lease_key = self._keys(stream_id)
        token = self._new_token()
        fields: dict[str | bytes, str] = {"replica": self.replica, "created_at": str(time.time())}
        fields.update(meta)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(meta_key, mapping=fields)
                pipe.expire(meta_key, self.ttl_s)
                pipe.set(lease_key, token, px=self.lease_ms)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise ServiceUnavailable(
                "streamed answers need the stream buffer, which is unavailable; retry shortly, or ask "
                "without Accept: text/event-stream for a JSON answer"
            ) from exc
        return token

    async def meta(self, stream_id: str) -> dict[str, str]:
        raw = await self.redis.hgetall(self._keys(stream_id)[1])
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def append(self, event: StreamEvent, token: str) -> bool:
        """Append one event; False when the lease is not ``token``'s or that sequence number is taken."""
        events_key, _, lease_key = self._keys(event.stream_id)
        try:
            appended = await self._append(
                keys=[events_key, lease_key],
                args=[
                    token,
                    f"{event.seq}-0",
                    self.ttl_s,
                    int(event.terminal),
                    event.event,
                    orjson.dumps(event.data),
                ],
            )
        except ResponseError as exc:
            if "equal or smaller" in str(exc):
                return False
            raise
        return bool(appended)

    async def keep_lease(self, stream_id: str, token: str) -> None:
        """Refresh the lease until cancelled, or until it is no longer ``token``'s."""
        lease_key = self._keys(stream_id)[2]
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                if not await self._refresh(keys=[lease_key], args=[token, self.lease_ms]):
                    return
            except (RedisError, OSError):
                continue  # Redis is away for a moment: the lease may still hold when it is back

    async def remember_once(self, stream_id: str) -> bool:
        """True for the first generation of a stream to record its turn in the conversation."""
        return bool(await self.redis.hsetnx(self._keys(stream_id)[1], "remembered", "1"))

    async def claim(self, stream_id: str) -> Claim:
        """Try to take the lease of an unfinished stream nobody holds (atomically: one winner)."""
        events_key, meta_key, lease_key = self._keys(stream_id)
        token = self._new_token()
        attempt, last_id = await self._claim(
            keys=[events_key, lease_key, meta_key], args=[token, self.lease_ms, self.ttl_s]
        )
        return Claim(stream_id, token, int(attempt), int(last_id.decode().split("-", 1)[0]))

    async def interrupt(self, claim: Claim) -> None:
        """End a claimed stream for every reader: its answer will not be completed."""
        interrupted = StreamEvent(
            claim.stream_id,
            claim.last_seq + 1,
            "error",
            {
                "code": "stream_interrupted",
                "message": "the replica generating this answer stopped; send the message again",
                "retryable": True,
            },
        )
        await self.append(interrupted, claim.token)

    async def require_owned(self, stream_id: str, tenant: str, key_id: str) -> None:
        """A stream of another key is reported exactly like one that never existed.

        The key, not only the tenant: an answer holds passages of the collections its key may read
        (the same scope as its conversation, see memory.py).
        """
        owner = await self.redis.hmget(self._keys(stream_id)[1], ["tenant", "key_id"])
        if owner != [tenant.encode(), key_id.encode()]:
            raise gone(stream_id, "cannot be resumed")

    async def tail(
        self, stream_id: str, after_seq: int, takeover: Takeover | None = None
    ) -> AsyncIterator[StreamEvent | None]:
        """Events after ``after_seq`` until a terminal one; ``None`` on each idle wait (for keep-alives).

        When the generator is gone, this reader may claim the stream and hand it to ``takeover``.
        Raises ``StreamGone`` when the buffer lost events (see the module's docstring).
        """
        events_key, _, lease_key = self._keys(stream_id)
        last = after_seq
        try:
            while True:
                reply = await self.redis.xread({events_key: f"{last}-0"}, count=200, block=self.block_ms)
                entries = reply[0][1] if reply else []
                if not entries:
                    if not await self.redis.exists(lease_key):
                        # Nothing new and nobody generating. The claim looks at the stream's end
                        # again, atomically: a writer that finished meanwhile is not replaced.
                        claim = await self.claim(stream_id)
                        if claim.last_seq < last:
                            # Events this reader was told exist are gone: evicted. A takeover
                            # would write after the hole, so nobody takes this stream over.
                            raise gone(stream_id, f"lost its events after {claim.last_seq}")
                        if claim.ended and claim.last_seq <= last:
                            return  # resumed after the end: nothing more will come
                        if claim.won and (takeover is None or not await takeover(claim)):
                            await self.interrupt(claim)
                        continue
                    yield None
                    continue
                for entry_id, fields in entries:
                    seq = int(entry_id.decode().split("-", 1)[0])
                    if seq != last + 1:  # written on after its earlier events were evicted
                        raise gone(stream_id, f"lost events {last + 1} to {seq - 1}")
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
