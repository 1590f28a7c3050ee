"""What one HTTP hop costs in CPU here, per client library and per server stack: the numbers the proxy's stack was chosen on.

The proxy is one server hop plus one client hop per request, so its CPU floor is what those two
cost. This measures, in one run so the figures are comparable on a shared machine:

- clients: the same N requests (closed loop, fixed concurrency) sent with httpx and with aiohttp
  to the bare benchmark upstream; the CPU per request of this process, from getrusage.
- servers: the same load (sent with aiohttp) to the bare ASGI upstream, to the scripted fake
  upstream of the tests (the full service chassis: middleware, spans, metrics) and to the llm-proxy
  itself in front of the bare upstream; each server's CPU per request from /proc.

CPU time, not latency: on a CPU shared with other jobs it is what stays comparable.

    uv run python services/llm-proxy/bench/bench_stack.py --requests 3000
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import resource
import sys
import tempfile
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_overhead import cpu_ms, machine, start_proxy, start_upstream

from ragfleet.devstack.processes import ManagedProcess, free_port, start_redis

log = logging.getLogger("bench_stack")
BODY = orjson.dumps({"model": "bench", "messages": [{"role": "user", "content": "hi"}], "temperature": 1})
HEADERS = {"Content-Type": "application/json"}


def self_cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) * 1000


async def closed_loop(send: Callable[[], Awaitable[None]], requests: int, concurrency: int) -> None:
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await send()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def with_httpx(url: str, requests: int, concurrency: int) -> None:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as client:

        async def send() -> None:
            (await client.post(url, content=BODY, headers=HEADERS)).raise_for_status()

        await closed_loop(send, requests, concurrency)


async def with_aiohttp(url: str, requests: int, concurrency: int) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def send() -> None:
            async with session.post(url, data=BODY, headers=HEADERS) as response:
                response.raise_for_status()
                await response.read()

        await closed_loop(send, requests, concurrency)


def measure(
    run: Callable[[], Coroutine[Any, Any, None]], requests: int, pids: dict[str, int]
) -> dict[str, float]:
    """CPU ms per request of this process (the client) and of each named server process tree."""
    before_self, before = self_cpu_ms(), {name: cpu_ms(pid) for name, pid in pids.items()}
    asyncio.run(run())
    figures = {"client": (self_cpu_ms() - before_self) / requests}
    figures.update({name: (cpu_ms(pid) - before[name]) / requests for name, pid in pids.items()})
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    workdir = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    processes: list[ManagedProcess] = []
    n, c = args.requests, args.concurrency
    rows: dict[str, dict[str, float]] = {}
    try:
        upstream_port, fake_port, redis_port, proxy_port = free_port(), free_port(), free_port(), free_port()
        upstream = start_upstream(upstream_port, workdir)
        processes.append(upstream)
        fake = start_upstream(fake_port, workdir, scripted=True)
        processes.append(fake)
        processes.append(start_redis(redis_port, workdir / "redis"))
        proxy = start_proxy(proxy_port, redis_port, upstream_port, workdir, workers=1)
        processes.append(proxy)
        bare = f"http://127.0.0.1:{upstream_port}/v1/chat/completions"
        for name, client in (("httpx", with_httpx), ("aiohttp", with_aiohttp)):
            asyncio.run(client(bare, 200, c))  # warm-up: connections, imports, caches
            rows[f"client {name} -> bare upstream"] = measure(
                functools.partial(client, bare, n, c), n, {"server": upstream.pid}
            )
        targets = (
            ("bare ASGI upstream (uvicorn, uvloop, httptools)", bare, upstream.pid),
            (
                "scripted fake upstream (service chassis)",
                f"http://127.0.0.1:{fake_port}/v1/chat/completions",
                fake.pid,
            ),
            ("llm-proxy -> bare upstream", f"http://127.0.0.1:{proxy_port}/v1/chat/completions", proxy.pid),
        )
        for label, url, pid in targets:
            asyncio.run(with_aiohttp(url, 200, c))
            rows[f"server {label}"] = measure(
                functools.partial(with_aiohttp, url, n, c), n, {"server": pid, "upstream": upstream.pid}
            )
    finally:
        for process in reversed(processes):
            process.stop()
    lines = [f"Machine: {machine()}", f"{n} requests per row, {c} concurrent, closed loop", ""]
    lines += [
        "| row | client CPU ms/req | server CPU ms/req | bare upstream CPU ms/req |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row, figures in rows.items():
        lines.append(
            f"| {row} | {figures['client']:.3f} | {figures['server']:.3f} | {figures.get('upstream', figures['server']):.3f} |"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
