"""The console's files and the WebSocket key a browser can send, against a real gateway process."""

from __future__ import annotations

import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

pytestmark = pytest.mark.integration


async def test_console_is_served_with_a_strict_content_security_policy(start_gateway) -> None:
    gateway = start_gateway("gw-console")
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        page = await client.get("/console", follow_redirects=True)
        script = await client.get("/console/console.js")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script src="console.js" defer>' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert script.headers["x-content-type-options"] == "nosniff"


async def test_websocket_key_as_a_subprotocol_is_accepted_and_never_echoed(start_gateway, make_key) -> None:
    gateway = start_gateway("gw-ws-key")
    key = await make_key("acme", ["default"])
    url = gateway.url.replace("http://", "ws://") + "/v1/chat/ws"
    async with connect(url, subprotocols=["ragfleet", f"ragfleet.key.{key}"]) as websocket:
        assert websocket.subprotocol == "ragfleet"
        await websocket.send(json.dumps({"type": "ping", "data": "console"}))
        assert json.loads(await websocket.recv()) == {"type": "pong", "data": "console"}

    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, subprotocols=["ragfleet", "ragfleet.key.rfk_000000000000_wrong"]):
            pass
    assert refused.value.response.status_code == 403

    # The stats feed takes the same offer (and needs no key by default).
    async with connect(url.replace("/v1/chat/ws", "/v1/stats/ws"), subprotocols=["ragfleet"]) as feed:
        assert feed.subprotocol == "ragfleet"
        assert json.loads(await feed.recv())["service"] == "gateway"
