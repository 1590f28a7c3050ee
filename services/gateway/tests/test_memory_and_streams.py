"""Conversation memory and the stream buffer, against a real Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from ragfleet.gateway.memory import ConversationStore
from ragfleet.gateway.streams import (
    Claim,
    LiveStream,
    StreamBuffer,
    StreamEvent,
    StreamGone,
    Takeover,
    parse_event_id,
)

pytestmark = pytest.mark.integration


async def test_conversation_keeps_only_the_last_n_messages(redis: Redis) -> None:
    memory = ConversationStore(redis, window=4, ttl_s=600)
    for turn in range(5):
        await memory.append(
            "acme",
            "s1",
            [{"role": "user", "content": f"q{turn}"}, {"role": "assistant", "content": f"a{turn}"}],
            system_prompt="be brief" if turn == 0 else None,
        )
    conversation = await memory.load("acme", "s1")
    assert [m["content"] for m in conversation.messages] == ["q3", "a3", "q4", "a4"]
    assert conversation.system_prompt == "be brief"
    assert (await memory.load("globex", "s1")).messages == []


async def test_conversation_expires_and_use_refreshes_the_expiry(redis: Redis) -> None:
    memory = ConversationStore(redis, window=20, ttl_s=600)
    await memory.append("acme", "s2", [{"role": "user", "content": "hello"}], system_prompt="p")
    await redis.expire("gw:conv:acme:s2", 1)
    await redis.expire("gw:conv:acme:s2:system", 1)
    await memory.load("acme", "s2")  # a use: both keys are back to the full TTL
    assert await memory.ttl("acme", "s2") > 500
    assert await redis.ttl("gw:conv:acme:s2:system") > 500

    short = ConversationStore(redis, window=20, ttl_s=1)
    await short.append("acme", "s3", [{"role": "user", "content": "hello"}])
    for _ in range(50):
        if not await short.exists("acme", "s3"):
            break
        await asyncio.sleep(0.1)
    assert not await short.exists("acme", "s3")


def buffer_for(redis: Redis, replica: str = "gw-a") -> StreamBuffer:
    return StreamBuffer(redis, ttl_s=60, lease_s=0.6, replica=replica, block_ms=100)


async def open_stream(writer: StreamBuffer) -> tuple[str, str]:
    stream_id = uuid.uuid4().hex
    token = await writer.open(stream_id, {"tenant": "acme", "key_id": "k1", "session_id": "s1"})
    return stream_id, token


async def test_a_reader_resumes_after_its_last_event(redis: Redis) -> None:
    writer, reader = buffer_for(redis, "gw-a"), buffer_for(redis, "gw-b")
    stream_id, token = await open_stream(writer)
    words = ["Paris", " is", " the", " capital", "."]
    await writer.append(StreamEvent(stream_id, 1, "sources", {"sources": []}), token)
    for seq, word in enumerate(words, start=2):
        await writer.append(StreamEvent(stream_id, seq, "token", {"text": word}), token)
    await writer.append(StreamEvent(stream_id, 7, "done", {"answer": "".join(words)}), token)

    stream, seq = parse_event_id(f"{stream_id}:3")
    rest = [event async for event in reader.tail(stream, seq) if event is not None]
    assert [e.seq for e in rest] == [4, 5, 6, 7]
    assert "".join(e.data["text"] for e in rest if e.event == "token") == " the capital."
    await reader.require_owned(stream_id, "acme", "k1")
    with pytest.raises(StreamGone):  # answered exactly like a stream that is gone
        await reader.require_owned(stream_id, "acme", "another-key-of-acme")
    # Resuming after the end reads nothing more, and appends nothing.
    assert [e async for e in reader.tail(stream_id, 7)] == []
    assert await redis.xlen(f"gw:stream:{stream_id}") == 7


async def test_readers_of_a_stream_whose_writer_died_get_one_clean_error(redis: Redis) -> None:
    writer = buffer_for(redis)
    stream_id, token = await open_stream(writer)
    await writer.append(StreamEvent(stream_id, 1, "sources", {"sources": []}), token)
    await writer.append(StreamEvent(stream_id, 2, "token", {"text": "half"}), token)
    # The writer never refreshes its lease (as if its replica was killed): it lapses. These
    # readers cannot regenerate the answer (no takeover), so they end it.
    first = [e async for e in buffer_for(redis, "gw-b").tail(stream_id, 1) if e is not None]
    second = [e async for e in buffer_for(redis, "gw-c").tail(stream_id, 2) if e is not None]
    assert [(e.seq, e.event) for e in first] == [(2, "token"), (3, "error")]
    assert first[-1].data["code"] == "stream_interrupted"
    assert second == [first[-1]]


async def test_a_writer_that_lost_its_lease_cannot_append(redis: Redis) -> None:
    writer = buffer_for(redis)
    stream_id, token = await open_stream(writer)
    assert await writer.append(StreamEvent(stream_id, 1, "token", {"text": "a"}), token)
    await redis.delete(f"gw:stream:{stream_id}:lease")  # lapsed while its replica was paused
    claim = await buffer_for(redis, "gw-b").claim(stream_id)
    assert claim.won and claim.attempt == 1 and claim.last_seq == 1
    assert not await writer.append(StreamEvent(stream_id, 2, "token", {"text": "b"}), token)
    assert await writer.append(StreamEvent(stream_id, 2, "restart", {"attempt": 1}), claim.token)
    # Someone holds the lease now: no second claim.
    assert (await buffer_for(redis, "gw-c").claim(stream_id)).attempt == 0
    # Its replica dies too: the next claim is counted as the second takeover (stream_max_takeovers).
    await redis.delete(f"gw:stream:{stream_id}:lease")
    again = await buffer_for(redis, "gw-c").claim(stream_id)
    assert again.attempt == 2 and again.last_seq == 2
    await buffer_for(redis, "gw-c").interrupt(again)
    assert (await buffer_for(redis, "gw-d").claim(stream_id)).ended  # nothing left to take over


async def test_of_two_readers_of_a_lost_stream_one_takes_it_over_and_both_see_its_answer(
    redis: Redis,
) -> None:
    writer = buffer_for(redis)
    stream_id, token = await open_stream(writer)
    await writer.append(StreamEvent(stream_id, 1, "sources", {"sources": []}), token)
    await writer.append(StreamEvent(stream_id, 2, "token", {"text": "half"}), token)
    claims: list[tuple[str, Claim]] = []

    def takeover_on(replica: StreamBuffer) -> Takeover:
        async def take_over(claim: Claim) -> bool:
            claims.append((replica.replica, claim))

            async def regenerate() -> None:  # what ChatService.take_over does, minus the model
                for offset, (event, data) in enumerate(
                    [("restart", {"attempt": claim.attempt}), ("token", {"text": "whole"}), ("done", {})],
                    start=1,
                ):
                    await asyncio.sleep(0.05)
                    await replica.append(
                        StreamEvent(stream_id, claim.last_seq + offset, event, data), claim.token
                    )

            tasks.append(asyncio.create_task(regenerate()))
            return True

        return take_over

    tasks: list[asyncio.Task[None]] = []
    readers = [buffer_for(redis, "gw-b"), buffer_for(redis, "gw-c")]

    async def read(reader: StreamBuffer) -> list[StreamEvent]:
        return [e async for e in reader.tail(stream_id, 2, takeover_on(reader)) if e is not None]

    seen = await asyncio.gather(*(read(reader) for reader in readers))
    await asyncio.gather(*tasks)
    assert len(claims) == 1 and claims[0][1].attempt == 1 and claims[0][1].last_seq == 2
    assert seen[0] == seen[1]
    assert [(e.seq, e.event) for e in seen[0]] == [(3, "restart"), (4, "token"), (5, "done")]
    assert await redis.hget(f"gw:stream:{stream_id}:meta", "takeovers") == b"1"


async def test_a_resume_of_a_buffer_evicted_mid_answer_ends_with_stream_gone(redis: Redis) -> None:
    """The cache Redis evicts the stream key while the writer goes on: the writer's next events go
    into a fresh key. A reader that saw event 2 must not be handed 5, 6... as if nothing was lost."""
    writer = buffer_for(redis)
    stream_id, token = await open_stream(writer)
    for seq in (1, 2, 3, 4):
        await writer.append(StreamEvent(stream_id, seq, "token", {"text": f"w{seq}"}), token)
    await redis.delete(f"gw:stream:{stream_id}")  # what allkeys-lru does to a cold key
    await writer.append(StreamEvent(stream_id, 5, "token", {"text": "w5"}), token)
    await writer.append(StreamEvent(stream_id, 6, "done", {"answer": "..."}), token)
    reader = buffer_for(redis, "gw-b")
    with pytest.raises(StreamGone, match="lost events 3 to 4"):
        _ = [e async for e in reader.tail(stream_id, 2)]
    with pytest.raises(StreamGone, match="lost events 1 to 4"):  # from the start, too
        _ = [e async for e in reader.tail(stream_id, 0)]


async def test_a_resume_of_a_buffer_evicted_whole_is_not_taken_over_but_gone(redis: Redis) -> None:
    writer = buffer_for(redis)
    stream_id, token = await open_stream(writer)
    for seq in (1, 2, 3):
        await writer.append(StreamEvent(stream_id, seq, "token", {"text": f"w{seq}"}), token)
    await redis.delete(f"gw:stream:{stream_id}", f"gw:stream:{stream_id}:lease")
    taken_over: list[Claim] = []

    async def take_over(claim: Claim) -> bool:
        taken_over.append(claim)
        return True

    with pytest.raises(StreamGone, match="lost its events after 0"):
        _ = [e async for e in buffer_for(redis, "gw-b").tail(stream_id, 3, take_over)]
    assert not taken_over  # a takeover would have written seq 1, 2... under the reader's seq 3
    # Its meta gone as well: the resume is refused up front, 410.
    await redis.delete(f"gw:stream:{stream_id}:meta")
    with pytest.raises(StreamGone) as refused:
        await buffer_for(redis, "gw-b").require_owned(stream_id, "acme", "k1")
    assert refused.value.status_code == 410


async def test_a_live_stream_serves_its_readers_from_memory_in_order() -> None:
    live = LiveStream("s" * 32, "acme", "k1", idle_s=0.05)

    async def produce() -> None:
        for seq in range(1, 6):
            await asyncio.sleep(0.02)
            live.publish(StreamEvent(live.stream_id, seq, "token", {"text": str(seq)}))
        await asyncio.sleep(0.12)  # readers wait idle meanwhile (None: a keep-alive tick)
        live.publish(StreamEvent(live.stream_id, 6, "done", {}))

    async def read(after: int) -> list[StreamEvent | None]:
        return [e async for e in live.tail(after)]

    producer = asyncio.create_task(produce())
    whole, late = await asyncio.gather(read(0), read(3))
    await producer
    assert [e.seq for e in whole if e is not None] == [1, 2, 3, 4, 5, 6]
    assert None in whole  # the idle wait before `done`
    assert [e.seq for e in late if e is not None] == [4, 5, 6]
    assert live.readers == 0 and live.ended
    assert [e async for e in live.tail(6)] == []  # resumed after the end: nothing more
