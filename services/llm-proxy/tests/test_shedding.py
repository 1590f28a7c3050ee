"""Load shedding: while the event loop lags past the bound, new completions get a fast 503 in the
error model; other paths, and everything when the loop keeps up, pass through."""

from __future__ import annotations

import httpx
from starlette.types import Receive, Scope, Send

from ragfleet.llm_proxy.shedding import LoadShedder, LoopLag


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def client(lag: LoopLag, max_lag_s: float) -> httpx.AsyncClient:
    app = LoadShedder(ok_app, lag=lag, max_lag_s=max_lag_s)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://proxy")


async def test_a_lagging_loop_refuses_new_completions_fast_with_the_error_model() -> None:
    lag = LoopLag()
    lag.lag_s = 2.0
    async with client(lag, max_lag_s=0.5) as http:
        refused = await http.post("/v1/chat/completions", json={}, headers={"X-Request-Id": "req-1"})
        health = await http.get("/healthz")
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert (
        refused.json()["error"]["code"] == "overloaded" and refused.json()["error"]["request_id"] == "req-1"
    )
    assert health.status_code == 200


async def test_a_loop_that_keeps_up_or_a_disabled_bound_passes_everything() -> None:
    lag = LoopLag()
    lag.lag_s = 0.1
    async with client(lag, max_lag_s=0.5) as http:
        assert (await http.post("/v1/embeddings", json={})).status_code == 200
    lag.lag_s = 9.0
    async with client(lag, max_lag_s=0) as http:
        assert (await http.post("/v1/chat/completions", json={})).status_code == 200
