"""What one HTTP hop costs in CPU here, per client library and per server stack: the numbers the proxy's stack was chosen on.

The proxy is one server hop plus one client hop per request, so its CPU floor is what those two
cost. This measures, in one run so the figures are comparable on a shared machine:

- clients: the same N requests (closed loop, fixed concurrency; or open loop at ``--rate``, as
  the proxy meets them) sent with httpx, with aiohttp and with the proxy's own upstream client
  (``ragfleet.llm_proxy.upstream_http``) to the bare benchmark upstream; the CPU per request of
  this process, from getrusage.
- servers: the same load (sent with aiohttp) to the bare ASGI upstream, to the scripted fake
  upstream of the tests (the full service chassis: middleware, spans, metrics) and to the llm-proxy
  itself in front of the bare upstream; each server's CPU per request from /proc.

CPU time, not latency: on a CPU shared with other jobs it is what stays comparable.

    uv run python services/llm-proxy/bench/bench_stack.py --requests 3000
    uv run python services/llm-proxy/bench/bench_stack.py --requests 2000 --rate 200
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
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
from bench_overhead import machine, start_proxy, start_upstream

from ragfleet.bench.calibration import process_tree_cpu_ms as cpu_ms
from ragfleet.devstack.processes import ManagedProcess, free_port, start_redis
from ragfleet.llm_proxy.upstream_http import Origin, UpstreamClient

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


async def open_loop(send: Callable[[], Awaitable[None]], requests: int, rate: float) -> None:
    """Request i leaves at start + i/rate: every request pays its own wake-ups, as in the proxy."""
    loop = asyncio.get_running_loop()
    start, tasks = loop.time(), []
    for i in range(requests):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send()))
    await asyncio.gather(*tasks)


def load(
    send: Callable[[], Awaitable[None]], requests: int, concurrency: int, rate: float
) -> Awaitable[None]:
    return open_loop(send, requests, rate) if rate else closed_loop(send, requests, concurrency)


async def with_httpx(url: str, requests: int, concurrency: int, rate: float = 0) -> None:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as client:

        async def send() -> None:
            (await client.post(url, content=BODY, headers=HEADERS)).raise_for_status()

        await load(send, requests, concurrency, rate)


async def with_aiohttp(url: str, requests: int, concurrency: int, rate: float = 0) -> None:
    # Many callers, as behind a gateway: one key alone meets the proxy's per-key concurrency
    # limit (max_concurrent_per_key, 8) and the row would measure 429s.
    keys = itertools.cycle([{**HEADERS, "X-Ragfleet-Key-Id": f"stack-{i}"} for i in range(64)])
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def send() -> None:
            async with session.post(url, data=BODY, headers=next(keys)) as response:
                response.raise_for_status()
                await response.read()

        await load(send, requests, concurrency, rate)


async def with_lean(url: str, requests: int, concurrency: int, rate: float = 0) -> None:
    """The proxy's upstream client, called as its provider calls it."""
    client = UpstreamClient(max(concurrency, 64), max_response_bytes=1 << 20)
    origin = Origin.parse(url.removesuffix("/chat/completions"))

    async def send() -> None:
        response = await client.post(
            origin, "/chat/completions", HEADERS, BODY, connect_timeout_s=3, total_timeout_s=30
        )
        if response.status != 200:
            raise RuntimeError(f"upstream answered {response.status}")

    try:
        await load(send, requests, concurrency, rate)
    finally:
        await client.close()


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
    parser.add_argument("--rate", type=float, default=0, help="client rows open loop at this rate (req/s)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
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
        for name, client in (("httpx", with_httpx), ("aiohttp", with_aiohttp), ("lean", with_lean)):
            asyncio.run(client(bare, 200, c))  # warm-up: connections, imports, caches
            rows[f"client {name} -> bare upstream"] = measure(
                functools.partial(client, bare, n, c, args.rate), n, {"server": upstream.pid}
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
    client_load = f"open loop at {args.rate:g} req/s" if args.rate else f"{c} concurrent, closed loop"
    lines = [f"Machine: {machine()}", f"{n} requests per row; clients {client_load}", ""]
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
