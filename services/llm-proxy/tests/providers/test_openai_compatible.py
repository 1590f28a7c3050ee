"""The OpenAI-compatible provider's stream against a real HTTP server that controls how the events
are split across writes: what arrived together is one batch, and nothing waits for more."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiohttp import web

from ragfleet.devstack.processes import free_port
from ragfleet.llm_proxy.config import ModelDeployment
from ragfleet.llm_proxy.providers.base import UpstreamFailure
from ragfleet.llm_proxy.providers.openai_compatible import OpenAICompatibleProvider
from ragfleet.llm_proxy.schemas import ChatCompletionRequest
from ragfleet.llm_proxy.upstream_http import UpstreamClient

pytestmark = pytest.mark.integration  # a real HTTP server, in this process

# What the server writes, piece by piece; between two pieces it waits until the test has seen a batch.
Script = list[bytes]


def event(content: str) -> bytes:
    return b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {"content": content}}]}) + b"\n\n"


async def batches_of(script: Script) -> tuple[list[list[str]], Exception | None]:
    """Stream ``script`` from a real server; the words of each batch, and the failure that ended it."""
    next_piece = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index, piece in enumerate(script):
            if index:
                await next_piece.wait()  # the client has handed on what it had: a new read
                next_piece.clear()
            await response.write(piece)
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    session = UpstreamClient(4, max_response_bytes=1 << 20)
    provider = OpenAICompatibleProvider(
        ModelDeployment(name="m", base_url=f"http://127.0.0.1:{port}/v1"), session
    )
    request = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    )
    seen: list[list[str]] = []
    failure: Exception | None = None
    try:
        async for batch in provider.stream(request, {"model": "m", "stream": True}):
            seen.append([c.parsed["choices"][0]["delta"]["content"] for c in batch])
            next_piece.set()
    except UpstreamFailure as exc:
        failure = exc
    finally:
        await session.close()
        await runner.cleanup()
    return seen, failure


async def test_events_that_arrive_together_are_one_batch_and_a_lone_one_is_not_held() -> None:
    seen, failure = await batches_of([event("a") + event("b"), event("c"), b"data: [DONE]\n\n"])
    assert seen == [["a", "b"], ["c"]] and failure is None


async def test_a_line_split_across_reads_waits_for_its_end() -> None:
    whole = event("split")
    seen, failure = await batches_of([event("a") + whole[:9], whole[9:] + b"data: [DONE]"])
    # The [DONE] with no newline at the end of the body still finishes the stream.
    assert seen == [["a"], ["split"]] and failure is None


async def test_chunks_before_a_failure_in_the_same_read_still_count() -> None:
    seen, failure = await batches_of([event("a") + b'data: {"error": {"message": "boom"}}\n\n'])
    assert seen == [["a"]]
    assert isinstance(failure, UpstreamFailure) and failure.reason == "stream_error"
    seen, failure = await batches_of([event("a") + event("b")])  # no [DONE]: the upstream dropped it
    assert seen == [["a", "b"]]
    assert isinstance(failure, UpstreamFailure) and failure.reason == "dropped"
