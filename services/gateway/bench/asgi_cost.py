"""CPU per request of the gateway's app stack alone: no server, no socket, no load generator.

Drives the ASGI app directly (``await app(scope, receive, send)``) in one process and reads the
process's CPU time, so the figure is what the gateway's own Python costs per request — the part
this code can change — and barely moves when other jobs share the machine. A bare FastAPI echo
app is measured the same way in the same run, as the reference.

Needs Redis and a retrieval with data (a running ``make run``, or public_path.py --serve):

    uv run python services/gateway/bench/asgi_cost.py --redis-url redis://127.0.0.1:6390/0 \\
        --retrieval-url http://127.0.0.1:8010 --requests 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI
from redis.asyncio import Redis

from ragfleet.gateway.config import GatewaySettings
from ragfleet.gateway.keys import KeyStore
from ragfleet.gateway.main import create_app

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def scope_for(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def call(app: ASGIApp, scope: dict[str, Any], body: bytes) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(dict(scope), receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def cpu_per_request_us(app: ASGIApp, scope: dict[str, Any], body: bytes, requests: int) -> float:
    for _ in range(200):  # warm up
        await call(app, scope, body)
    started = time.process_time()
    for _ in range(requests):
        await call(app, scope, body)
    return (time.process_time() - started) / requests * 1e6


def echo_app() -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    return app


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    settings = GatewaySettings(
        redis_url=args.redis_url,
        retrieval_url=args.retrieval_url,
        replica_name="asgi-bench",
        log_level="WARNING",
    )
    redis = Redis.from_url(args.redis_url)
    api_key, _ = await KeyStore(redis).create("default", ["*"], rate_per_s=1e9, burst=10**9)
    await redis.aclose()  # type: ignore[attr-defined]
    app = create_app(settings)
    headers = [
        (b"host", b"127.0.0.1"),
        (b"authorization", f"Bearer {api_key}".encode()),
        (b"content-type", b"application/json"),
        (b"accept-encoding", b"gzip"),
    ]
    body = orjson.dumps({"query": args.query, "mode": "hybrid", "top_k": 5})
    figures: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        # With its Content-Length, as every client sends it: the edge fast path reads only a
        # declared body (without one the request is the ordinary route's, which was measured here
        # by mistake until session 5).
        search = scope_for("POST", "/v1/search", [*headers, (b"content-length", str(len(body)).encode())])
        for _ in range(3):  # miss, hit (the alias is filed), hit through the alias
            status, _ = await call(app, search, body)
            assert status == 200, status
        figures["search_edge_hit_us"] = await cpu_per_request_us(app, search, body, args.requests)
        figures["healthz_us"] = await cpu_per_request_us(
            app, scope_for("GET", "/healthz", headers), b"", args.requests
        )
    echo = echo_app()
    figures["fastapi_echo_us"] = await cpu_per_request_us(
        echo, scope_for("POST", "/echo", headers[2:3]), body, args.requests
    )
    figures["search_over_echo"] = round(figures["search_edge_hit_us"] / figures["fastapi_echo_us"], 2)
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in figures.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--retrieval-url", required=True)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--query", default="what is hybrid search")
    args = parser.parse_args()
    sys.stdout.write(json.dumps(asyncio.run(main_async(args)), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
