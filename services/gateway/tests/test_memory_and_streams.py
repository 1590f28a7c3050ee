"""Conversation memory and the stream buffer, against a real Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from ragfleet.gateway.memory import ConversationStore
from ragfleet.gateway.streams import StreamBuffer, StreamEvent, parse_event_id

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


async def test_a_reader_resumes_after_its_last_event(redis: Redis) -> None:
    writer, reader = buffer_for(redis, "gw-a"), buffer_for(redis, "gw-b")
    stream_id = uuid.uuid4().hex
    await writer.open(stream_id, "acme", "k1", "s1")
    words = ["Paris", " is", " the", " capital", "."]
    await writer.append(StreamEvent(stream_id, 1, "sources", {"sources": []}))
    for seq, word in enumerate(words, start=2):
        await writer.append(StreamEvent(stream_id, seq, "token", {"text": word}))
    await writer.append(StreamEvent(stream_id, 7, "done", {"answer": "".join(words)}))

    stream, seq = parse_event_id(f"{stream_id}:3")
    rest = [event async for event in reader.tail(stream, seq) if event is not None]
    assert [e.seq for e in rest] == [4, 5, 6, 7]
    assert "".join(e.data["text"] for e in rest if e.event == "token") == " the capital."
    await reader.require_owned(stream_id, "acme")


async def test_readers_of_a_stream_whose_writer_died_get_one_clean_error(redis: Redis) -> None:
    writer = buffer_for(redis)
    stream_id = uuid.uuid4().hex
    await writer.open(stream_id, "acme", "k1", "s1")
    await writer.append(StreamEvent(stream_id, 1, "sources", {"sources": []}))
    await writer.append(StreamEvent(stream_id, 2, "token", {"text": "half"}))
    # The writer never refreshes its lease (as if its replica was killed): it lapses.
    first = [e async for e in buffer_for(redis, "gw-b").tail(stream_id, 1) if e is not None]
    second = [e async for e in buffer_for(redis, "gw-c").tail(stream_id, 2) if e is not None]
    assert [(e.seq, e.event) for e in first] == [(2, "token"), (3, "error")]
    assert first[-1].data["code"] == "stream_interrupted"
    assert second == [first[-1]]
