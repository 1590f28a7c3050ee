"""HTTP QPS of a running retrieval service: vector and text queries, cached and uncached.

    uv run python services/retrieval/bench/bench_http.py --url http://127.0.0.1:8010 --seconds 10

Seeds a collection with generated chunks (random unit vectors, so no embedding cost at seed
time), then drives ``POST /v1/search`` from one asyncio process with keep-alive connections and
appends the figures to docs/benchmarks/retrieval.md under "## HTTP". The load generator shares
the machine with the service: the figures are a floor, not the service's ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPORT = Path(__file__).resolve().parents[3] / "docs" / "benchmarks" / "retrieval.md"
WORDS = [
    "vector",
    "index",
    "cache",
    "query",
    "embedding",
    "search",
    "cluster",
    "replica",
    "tenant",
    "document",
    "chunk",
    "latency",
]


async def seed(client: httpx.AsyncClient, collection: str, chunks: int, batch: int = 500) -> None:
    rng = np.random.default_rng(7)
    for start in range(0, chunks, batch):
        vectors = rng.standard_normal((min(batch, chunks - start), 384)).astype(np.float32)
        body = {
            "chunks": [
                {
                    "id": f"c{start + i}",
                    "document_id": f"d{(start + i) // 4}",
                    "text": " ".join(random.choices(WORDS, k=40)),
                    "position": (start + i) % 4,
                    "metadata": {"n": start + i},
                    "vector": vector.tolist(),
                }
                for i, vector in enumerate(vectors)
            ]
        }
        response = await client.post(f"/internal/v1/collections/{collection}/upsert", json=body, timeout=120)
        response.raise_for_status()


async def drive(
    client: httpx.AsyncClient, make_body: Callable[[int], dict[str, Any]], seconds: float, concurrency: int
) -> dict[str, float]:
    counter = itertools.count()
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            body = make_body(next(counter))
            started = time.perf_counter()
            response = await client.post("/v1/search", json=body)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "qps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "errors": errors,
        "requests": len(latencies),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8010")
    parser.add_argument("--collection", default="bench-http")
    parser.add_argument("--chunks", type=int, default=5000, help="chunks to seed (0: use what is there)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()

    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=args.url, limits=limits, timeout=30) as client:
        if args.chunks:
            await seed(client, args.collection, args.chunks)
        rng = np.random.default_rng(11)
        fixed_vector = rng.standard_normal(384).astype(np.float32).tolist()
        run = random.randrange(1_000_000_000)
        base = {"collection": args.collection, "top_k": 10}
        scenarios: dict[str, Callable[[int], dict[str, Any]]] = {
            "vector, cached (one query repeated)": lambda i: {**base, "vector": fixed_vector},
            "vector, uncached (a new vector each time)": lambda i: {
                **base,
                "vector": rng.standard_normal(384).astype(np.float32).tolist(),
            },
            "text, cached (one query repeated)": lambda i: {**base, "query": "cache latency of a replica"},
            "text, uncached (a new text each time: embedding + search)": lambda i: {
                **base,
                "query": f"{random.choice(WORDS)} {random.choice(WORDS)} query {run} {i}",
            },
        }
        results = {}
        for name, make_body in scenarios.items():
            await drive(client, make_body, 1.0, args.concurrency)  # warm-up (and fills the cache)
            results[name] = await drive(client, make_body, args.seconds, args.concurrency)
            figures = results[name]
            sys.stdout.write(
                f"{name:60s} {figures['qps']:8.0f} req/s  p50 {figures['p50_ms']:6.2f} ms  "
                f"p99 {figures['p99_ms']:6.2f} ms  errors {figures['errors']:.0f}\n"
            )
    if not args.no_report:
        write_report(args, results)


def write_report(args: argparse.Namespace, results: dict[str, dict[str, float]]) -> None:
    lines = [
        f"\n### HTTP run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"load generator on the same machine (one asyncio process, httpx, {args.concurrency} connections).\n",
        f"Command: `uv run python services/retrieval/bench/bench_http.py --url {args.url} "
        f"--chunks {args.chunks} --seconds {args.seconds:g} --concurrency {args.concurrency}`\n",
        "| scenario | req/s | p50 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, f in results.items():
        lines.append(
            f"| {name} | {f['qps']:.0f} | {f['p50_ms']:.2f} | {f['p99_ms']:.2f} | {f['errors']:.0f} |"
        )
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    text = REPORT.read_text() if REPORT.exists() else "# Retrieval benchmarks\n"
    if "## HTTP" not in text:
        text += "\n## HTTP\n\nQPS of `POST /v1/search` over HTTP, measured by `services/retrieval/bench/bench_http.py`.\n"
    REPORT.write_text(text.rstrip("\n") + "\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
