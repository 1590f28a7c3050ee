"""Defaults that bound what one key can cost: a max_tokens cap on every model, and concurrent
generations per key. Process-free: the settings, and the middleware in front of a route that
holds its requests until the test lets them go."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from ragfleet.llm_proxy.config import EXTRACTIVE_MODEL, LlmProxySettings, ModelDeployment
from ragfleet.llm_proxy.main import create_app
from ragfleet.llm_proxy.quotas import ConcurrencyLimit
from ragfleet.llm_proxy.schemas import ChatCompletionRequest


def test_every_model_is_capped_at_4096_completion_tokens_unless_it_says_otherwise() -> None:
    settings = LlmProxySettings(
        models=[
            ModelDeployment(name="gpt", base_url="http://upstream/v1"),
            ModelDeployment(name="small", base_url="http://upstream/v1", max_tokens=256),
        ]
    )
    caps = {d.name: d.max_tokens for d in settings.deployments}
    assert caps == {"gpt": 4096, "small": 256, EXTRACTIVE_MODEL: 4096}
    greedy = ChatCompletionRequest.model_validate(
        {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 32_768}
    )
    assert greedy.upstream_body("gpt", caps["gpt"])["max_tokens"] == 4096
    silent = ChatCompletionRequest.model_validate(
        {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert silent.upstream_body("gpt", caps["gpt"])["max_tokens"] == 4096
    assert LlmProxySettings(max_tokens_cap=1000).deployments[0].max_tokens == 1000


def held_app(release: asyncio.Event) -> tuple[FastAPI, asyncio.Queue[str]]:
    app = FastAPI()
    started: asyncio.Queue[str] = asyncio.Queue()

    @app.post("/v1/chat/completions")
    async def generate() -> dict[str, str]:
        started.put_nowait("x")
        await release.wait()
        return {"ok": "yes"}

    return app, started


async def test_a_key_gets_429_beyond_its_concurrent_generations_and_others_are_unaffected() -> None:
    release = asyncio.Event()
    app, started = held_app(release)
    limited = ConcurrencyLimit(app, max_per_key=2)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=limited), base_url="http://proxy"
    ) as client:

        def ask(key_id: str) -> asyncio.Task[httpx.Response]:
            return asyncio.ensure_future(
                client.post("/v1/chat/completions", json={}, headers={"X-Ragfleet-Key-Id": key_id})
            )

        held = [ask("k1"), ask("k1")]
        for _ in held:
            await started.get()
        refused = await ask("k1")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "too_many_concurrent_requests"
        other = ask("k2")  # another key has slots of its own
        await started.get()
        release.set()
        assert [r.status_code for r in await asyncio.gather(*held, other)] == [200, 200, 200]
        assert (await ask("k1")).status_code == 200  # slots are given back when a generation ends
    assert limited.in_flight == {}


def test_the_limit_is_on_by_default_inside_the_request_context() -> None:
    app = create_app(LlmProxySettings(embeddings_builtin=False))
    assert [m.kwargs for m in app.user_middleware if m.cls is ConcurrencyLimit] == [{"max_per_key": 8}]
    assert not any(
        m.cls is ConcurrencyLimit
        for m in create_app(LlmProxySettings(max_concurrent_per_key=0)).user_middleware
    )
