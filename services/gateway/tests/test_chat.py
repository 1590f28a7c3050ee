"""Chat over JSON, SSE and WebSocket, and resumption on another replica, against the real
retrieval (embedded backend) and llm-proxy (built-in ``extractive`` model)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis as sync_redis
import websockets

from ragfleet.testkit.pytest_plugin import RunningService

pytestmark = pytest.mark.integration

CHUNKS = [
    {
        "id": "paris:0",
        "document_id": "paris",
        "text": "Paris is the capital of France. It lies on the Seine and is known for the Eiffel Tower.",
        "position": 0,
        "metadata": {},
    },
    {
        "id": "rome:0",
        "document_id": "rome",
        "text": "Rome is the capital of Italy. The Colosseum stands in its centre.",
        "position": 0,
        "metadata": {},
    },
]


def start_chat_stack(
    run_service,
    start_gateway,
    redis_url: str,
    tmp_path: Path,
    llm_proxy_env: dict[str, str] | None = None,
    gateway_env: dict[str, str] | None = None,
) -> dict[str, RunningService]:
    retrieval = run_service(
        "retrieval",
        "ragfleet.retrieval",
        "RAGFLEET_RETRIEVAL_",
        {"REDIS_URL": redis_url, "DATA_DIR": str(tmp_path / "index"), "ACCESS_LOG": "false"},
        ready_path="/readyz",
    )
    llm_proxy = run_service(
        "llm-proxy",
        "ragfleet.llm_proxy",
        "RAGFLEET_LLM_PROXY_",
        {"REDIS_URL": redis_url, **(llm_proxy_env or {})},
    )
    upserted = httpx.post(
        f"{retrieval.url}/internal/v1/collections/handbook/upsert",
        json={"chunks": CHUNKS},
        headers={"X-Ragfleet-Tenant": "acme"},
        timeout=60,
    )
    assert upserted.status_code == 200, upserted.text
    env = {"RETRIEVAL_URL": retrieval.url, "LLM_PROXY_URL": llm_proxy.url, **(gateway_env or {})}
    return {"a": start_gateway("gw-a", env), "b": start_gateway("gw-b", env)}


@pytest.fixture
def stack(run_service, start_gateway, redis_url: str, tmp_path: Path) -> Iterator[dict[str, RunningService]]:
    yield start_chat_stack(run_service, start_gateway, redis_url, tmp_path)


SLOW_WORDS = 30


@pytest.fixture
def slow_stack(
    run_service, start_gateway, redis_url: str, tmp_path: Path
) -> Iterator[dict[str, RunningService]]:
    """Answers of the ``slow`` model take ~3 s (a fake upstream streaming a word every 100 ms)."""
    fake = run_service("fake-upstream", "ragfleet.testkit.fake_llm", "RAGFLEET_FAKE_UPSTREAM_")
    content = " ".join(f"word{i}" for i in range(SLOW_WORDS))
    httpx.post(
        f"{fake.url}/_control/default", json={"token_interval_ms": 100, "content": content}
    ).raise_for_status()
    models = [{"name": "slow", "upstream_model": "slow", "base_url": f"{fake.url}/v1"}]
    yield start_chat_stack(
        run_service,
        start_gateway,
        redis_url,
        tmp_path,
        llm_proxy_env={"MODELS": orjson.dumps(models).decode(), "CACHE_ENABLED": "false"},
        gateway_env={"STREAM_LEASE_S": "1"},
    )


def parse_sse(text: str) -> list[dict[str, str]]:
    events = []
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":")
        )
        if "event" in fields:
            events.append(fields)
    return events


async def test_json_chat_answers_with_sources_and_remembers(stack, make_key) -> None:
    headers = {"X-API-Key": await make_key("acme", ["handbook"])}
    async with httpx.AsyncClient(base_url=stack["a"].url, headers=headers, timeout=30) as client:
        first = await client.post(
            "/v1/chat", json={"message": "What is the capital of France?", "collection": "handbook"}
        )
        assert first.status_code == 200, first.text
        answer = first.json()
        assert "Paris" in answer["answer"]
        assert answer["sources"][0]["document_id"] == "paris"

        search = await client.post("/v1/search", json={"query": "capital of Italy", "collection": "handbook"})
        assert search.status_code == 200, search.text
        assert search.json()["results"][0]["document_id"] == "rome"

        session = (await client.get(f"/v1/sessions/{answer['session_id']}")).json()
        assert [m["role"] for m in session["messages"]] == ["user", "assistant"]
        assert (await client.delete(f"/v1/sessions/{answer['session_id']}")).status_code == 204


async def test_sse_chat_resumes_on_the_other_replica_after_the_first_dies(stack, make_key, redis_url) -> None:
    headers = {"X-API-Key": await make_key("acme", ["handbook"]), "Accept": "text/event-stream"}
    question = {"message": "What is the capital of France?", "collection": "handbook"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        seen: list[str] = []
        async with client.stream("POST", f"{stack['a'].url}/v1/chat", json=question) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            stream_id = response.headers["x-ragfleet-stream-id"]
            async for line in response.aiter_lines():
                if line.startswith("id: "):
                    seen.append(line[4:])
                if len(seen) == 3:  # sources and two tokens, then the replica dies
                    break
            # The answer lands in the shared buffer whether or not anyone reads it.
            buffer = sync_redis.Redis.from_url(redis_url)
            for _ in range(100):
                if buffer.xrevrange(f"gw:stream:{stream_id}", count=1)[0][1][b"event"] == b"done":
                    break
                await asyncio.sleep(0.05)
            stack["a"].process.kill()

        resumed = await client.post(f"{stack['b'].url}/v1/chat", headers={"Last-Event-ID": seen[-1]})
        assert resumed.headers["x-ragfleet-replica"] == "gw-b"
        events = parse_sse(resumed.text)
        done = orjson.loads(events[-1]["data"])
        session = (await client.get(f"{stack['b'].url}/v1/sessions/{done['session_id']}")).json()
    assert events[0]["id"] == f"{stream_id}:4"
    assert events[-1]["event"] == "done"
    done = orjson.loads(events[-1]["data"])
    assert "Paris" in done["answer"]
    tokens_after = "".join(orjson.loads(e["data"])["text"] for e in events if e["event"] == "token")
    assert done["answer"].endswith(tokens_after)
    # Generated once: one assistant message in the conversation.
    assert [m["role"] for m in session["messages"]] == ["user", "assistant"]


async def test_websocket_chat_streams_turns_and_answers_pings(stack, make_key) -> None:
    api_key = await make_key("acme", ["handbook"])
    url = stack["a"].url.replace("http://", "ws://") + f"/v1/chat/ws?api_key={api_key}"
    async with websockets.connect(url) as ws:
        await ws.send(orjson.dumps({"type": "ping", "data": 7}).decode())
        assert orjson.loads(await ws.recv()) == {"type": "pong", "data": 7}
        session_id = None
        for question in ("What is the capital of France?", "And of Italy?"):
            await ws.send(
                orjson.dumps(
                    {"message": question, "collection": "handbook", "session_id": session_id}
                ).decode()
            )
            events = []
            while not events or events[-1]["type"] not in ("done", "error"):
                events.append(orjson.loads(await ws.recv()))
            kinds = [e["type"] for e in events]
            assert kinds[0] == "sources" and kinds[-1] == "done" and "token" in kinds, events
            session_id = events[-1]["session_id"]
        await ws.send(orjson.dumps({"message": "x", "collection": "payroll"}).decode())
        forbidden = orjson.loads(await ws.recv())
        assert forbidden["type"] == "error" and forbidden["code"] == "collection_forbidden"
    assert "Rome" in events[-1]["answer"] or "Italy" in events[-1]["answer"]

    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with websockets.connect(url.replace(api_key, "rfk_bad")):
            pass


async def test_an_answer_whose_replica_dies_mid_generation_is_finished_by_the_other(
    slow_stack, make_key
) -> None:
    api_key = await make_key("acme", ["handbook"])
    question = {"message": "Tell me slowly.", "collection": "handbook", "model": "slow"}
    url_a, url_b = (
        slow_stack[r].url.replace("http://", "ws://") + f"/v1/chat/ws?api_key={api_key}" for r in "ab"
    )
    async with websockets.connect(url_a) as ws:
        await ws.send(orjson.dumps(question).decode())
        seen = [orjson.loads(await ws.recv()) for _ in range(3)]  # sources and two tokens
        slow_stack["a"].process.kill()
    assert [e["type"] for e in seen] == ["sources", "token", "token"]

    async with websockets.connect(url_b) as ws:
        await ws.send(orjson.dumps({"type": "resume", "last_event_id": seen[-1]["id"]}).decode())
        events = []
        while not events or events[-1]["type"] not in ("done", "error"):
            events.append(orjson.loads(await asyncio.wait_for(ws.recv(), timeout=30)))
    stream_id = seen[0]["stream_id"]
    # Events the dead replica wrote after the client's last one come first, then the takeover.
    restart = next(i for i, e in enumerate(events) if e["type"] == "restart")
    assert all(e["type"] == "token" for e in events[:restart])
    assert events[restart]["reason"] == "generator_lost" and events[restart]["attempt"] == 1
    assert [e["type"] for e in events[restart + 1 :]][:2] == ["sources", "token"]
    assert events[-1]["type"] == "done", events[-1]
    ids = [int(e["id"].split(":")[1]) for e in seen + events]
    assert ids == list(range(1, len(ids) + 1)) and all(e["id"].startswith(stream_id) for e in events)
    tokens = "".join(e["text"] for e in events[restart + 1 :] if e["type"] == "token")
    assert tokens == events[-1]["answer"] and events[-1]["answer"].count("word") == SLOW_WORDS

    async with httpx.AsyncClient(base_url=slow_stack["b"].url, headers={"X-API-Key": api_key}) as client:
        session = (await client.get(f"/v1/sessions/{events[-1]['session_id']}")).json()
        stats = (await client.get("/v1/stats")).json()
    assert [m["role"] for m in session["messages"]] == ["user", "assistant"]  # remembered once
    assert stats["stream_takeovers"] == 1


async def test_a_live_answer_is_whole_though_its_buffer_is_evicted_mid_answer(
    slow_stack, make_key, redis_url
) -> None:
    """The cache Redis evicts the stream's events, meta and lease while the answer streams (what
    allkeys-lru did to 1 chat in 43 under chaos): the client reading it live still gets every token,
    and a resume of it afterwards is told the buffer is gone instead of being handed a part."""
    headers = {"X-API-Key": await make_key("acme", ["handbook"]), "Accept": "text/event-stream"}
    question = {"message": "What is the capital of France?", "collection": "handbook", "model": "slow"}
    cache = sync_redis.Redis.from_url(redis_url)
    events: list[dict[str, str]] = []
    async with (
        httpx.AsyncClient(base_url=slow_stack["a"].url, headers=headers, timeout=60) as client,
        client.stream("POST", "/v1/chat", json=question) as response,
    ):
        assert response.status_code == 200
        stream_id = response.headers["x-ragfleet-stream-id"]
        block: list[str] = []
        async for line in response.aiter_lines():
            if line:
                block.append(line)
                continue
            if block and not block[0].startswith(":"):
                events.extend(parse_sse("\n".join(block) + "\n\n"))
                # Not asserted to exist: on a busy machine the 1 s lease may already have lapsed,
                # which stops the Redis writes just the same (and must not cut the answer either).
                if len(events) == 3:  # the events evicted: writing goes on into a fresh key
                    cache.delete(f"gw:stream:{stream_id}")
                if len(events) == 12:  # then everything: the lease too, so writing to Redis stops
                    cache.delete(*(f"gw:stream:{stream_id}{suffix}" for suffix in ("", ":meta", ":lease")))
            block = []
    assert events[-1]["event"] == "done", events[-1]
    done = orjson.loads(events[-1]["data"])
    tokens = "".join(orjson.loads(e["data"])["text"] for e in events if e["event"] == "token")
    assert tokens == done["answer"] and done["answer"].count("word") == SLOW_WORDS
    assert [int(e["id"].rsplit(":", 1)[1]) for e in events] == list(range(1, len(events) + 1))

    async with httpx.AsyncClient(base_url=slow_stack["b"].url, headers=headers, timeout=30) as client:
        resumed = await client.post("/v1/chat", headers={"Last-Event-ID": events[5]["id"]})
    assert resumed.status_code == 410, resumed.text  # its meta went with the rest
    assert resumed.json()["error"]["code"] == "stream_gone"
    stats = (await httpx.AsyncClient().get(f"{slow_stack['a'].url}/v1/stats", headers=headers)).json()
    assert stats["stream_buffer_losses"] >= 1
