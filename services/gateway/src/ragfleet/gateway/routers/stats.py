"""``GET /v1/stats`` and its WebSocket feed ``/v1/stats/ws``."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, WebSocket
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect

from ragfleet.common.errors import RateLimited
from ragfleet.common.responses import OrjsonResponse
from ragfleet.gateway.auth import (
    WS_RATE_LIMITED,
    accept_websocket,
    authenticate_websocket,
    client_address,
    get_authenticator,
    require_key,
)
from ragfleet.gateway.dependencies import (
    RetrievalCacheStatsDep,
    SettingsDep,
    StatsDep,
)
from ragfleet.gateway.frames import close_if_open, receive_frame

router = APIRouter(prefix="/v1/stats", tags=["stats"])


async def _snapshot(stats: StatsDep, retrieval_cache: RetrievalCacheStatsDep) -> dict[str, Any]:
    return stats.snapshot(await retrieval_cache.get())


async def stats_access(connection: HTTPConnection, settings: SettingsDep) -> None:
    """Any valid key when ``stats_require_key`` is set; otherwise open, within the per-address limit."""
    if settings.stats_require_key:
        await require_key(connection)
    else:
        await get_authenticator(connection).enforce_anonymous_limit(client_address(connection))


@router.get(
    "",
    summary="This replica's latency percentiles per route, in-flight work and cache hit rates",
    dependencies=[Depends(stats_access)],
)
async def get_stats(stats: StatsDep, retrieval_cache: RetrievalCacheStatsDep) -> OrjsonResponse:
    return OrjsonResponse(await _snapshot(stats, retrieval_cache), headers={"Cache-Control": "no-store"})


@router.websocket("/ws")
async def stats_feed(
    websocket: WebSocket,
    settings: SettingsDep,
    stats: StatsDep,
    retrieval_cache: RetrievalCacheStatsDep,
    interval_s: float | None = Query(None, ge=0.2, le=60, description="period; the setting when absent"),
) -> None:
    """Sends the same JSON as ``GET /v1/stats`` at once, then every ``interval_s`` seconds.

    Messages from the client are ignored, up to ``max_ws_message_bytes`` each (a larger one closes
    the feed with 1009); a close from either side ends the feed.
    """
    if settings.stats_require_key:
        if await authenticate_websocket(websocket) is None:
            return
    else:
        try:
            await get_authenticator(websocket).enforce_anonymous_limit(client_address(websocket))
        except RateLimited as exc:
            await websocket.close(code=WS_RATE_LIMITED, reason=exc.message[:120])
            return
    await accept_websocket(websocket)
    period = interval_s or settings.stats_interval_s
    loop = asyncio.get_running_loop()
    try:
        while True:
            body = await _snapshot(stats, retrieval_cache)
            await websocket.send_text(orjson.dumps(body).decode())
            next_at = loop.time() + period
            # Waiting on receive (not sleep) notices a client that left without a close frame.
            while (remaining := next_at - loop.time()) > 0:
                try:
                    await asyncio.wait_for(
                        receive_frame(websocket, settings.max_ws_message_bytes), timeout=remaining
                    )
                except TimeoutError:
                    break
    except WebSocketDisconnect:
        return
    finally:
        with contextlib.suppress(RuntimeError):
            await close_if_open(websocket)
