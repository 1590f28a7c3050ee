from __future__ import annotations

import httpx
import orjson
import pytest
import websockets

pytestmark = pytest.mark.integration


async def test_stats_report_latency_per_route_and_feed_streams_them(start_gateway) -> None:
    gateway = start_gateway("gw-stats")
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        for _ in range(3):
            await client.get("/v1/no-such-route")
            await client.get("/v1/stats")
        stats = (await client.get("/v1/stats")).json()
    assert stats["replica"] == "gw-stats"
    route = stats["routes"]["GET /v1/stats"]
    assert route["count"] == 3
    assert 0 < route["p50_ms"] <= route["p95_ms"] <= route["p99_ms"] <= route["max_ms"]

    ws_url = gateway.url.replace("http://", "ws://") + "/v1/stats/ws?interval_s=0.2"
    async with websockets.connect(ws_url) as feed:
        first = orjson.loads(await feed.recv())
        second = orjson.loads(await feed.recv())
    assert first["in_flight"]["websockets"] == 1
    assert second["time"] > first["time"]
    assert "GET /v1/stats" in second["routes"]
