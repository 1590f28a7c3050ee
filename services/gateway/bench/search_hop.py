"""Does answering search cache hits in the gateway beat the hop to retrieval? Measure it.

Starts Redis, retrieval (embedded backend) and one gateway as real processes, warms retrieval's
cache with one query, then times, one request at a time over keep-alive connections:

- ``retrieval direct``: POST /v1/search on retrieval (an L1 hit) — what the hop costs retrieval;
- ``gateway → retrieval``: POST /v1/search on the gateway (auth, rate limit, hop, L1 hit);
- ``gateway, no hop``: GET /v1/sessions/<missing> on the gateway — auth, rate limit and one
  Redis round trip, i.e. what a gateway-side cache hit would cost at best (it needs one Redis
  read for the collection version to stay correct).

Writes docs/benchmarks/gateway.md (or --out). Run: ``uv run python services/gateway/bench/search_hop.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from redis.asyncio import Redis

from ragfleet.common.contracts import TENANT_HEADER
from ragfleet.devstack.processes import free_port, start_redis, start_service
from ragfleet.gateway.keys import KeyStore

ROOT = Path(__file__).resolve().parents[3]


def summarise(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return {
        "p50": pct(0.50),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "mean": statistics.fmean(ordered) * 1000,
        "rps": len(ordered) / sum(ordered),
    }


def time_requests(client: httpx.Client, method: str, url: str, n: int, **kwargs: object) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.request(method, url, **kwargs)  # type: ignore[arg-type]
        samples.append(time.perf_counter() - started)
        if response.status_code >= 500 or response.status_code == 429:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:200]}")
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks/gateway.md")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ragfleet-bench-gateway-"))
    redis_port, retrieval_port, gateway_port = free_port(), free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    processes = [start_redis(redis_port, work / "redis")]
    try:
        processes.append(
            start_service(
                "retrieval",
                "ragfleet.retrieval",
                port=retrieval_port,
                log_dir=work,
                ready_path="/readyz",
                env={
                    "RAGFLEET_RETRIEVAL_PORT": str(retrieval_port),
                    "RAGFLEET_RETRIEVAL_REDIS_URL": redis_url,
                    "RAGFLEET_RETRIEVAL_DATA_DIR": str(work / "index"),
                    "RAGFLEET_RETRIEVAL_ACCESS_LOG": "false",
                },
            )
        )
        retrieval = f"http://127.0.0.1:{retrieval_port}"
        processes.append(
            start_service(
                "gateway",
                "ragfleet.gateway",
                port=gateway_port,
                log_dir=work,
                env={
                    "RAGFLEET_GATEWAY_PORT": str(gateway_port),
                    "RAGFLEET_GATEWAY_REDIS_URL": redis_url,
                    "RAGFLEET_GATEWAY_RETRIEVAL_URL": retrieval,
                    "RAGFLEET_GATEWAY_ACCESS_LOG": "false",
                    "RAGFLEET_GATEWAY_RATE_LIMIT_PER_S": "1000000",
                    "RAGFLEET_GATEWAY_RATE_LIMIT_BURST": "1000000",
                },
            )
        )
        gateway = f"http://127.0.0.1:{gateway_port}"

        async def make_key() -> str:
            redis = Redis.from_url(redis_url)
            api_key, _ = await KeyStore(redis).create("bench", ["docs"])
            await redis.aclose()  # type: ignore[attr-defined]
            return api_key

        api_key = asyncio.run(make_key())
        tenant = {TENANT_HEADER: "bench"}
        chunks = [
            {
                "id": f"d{i}:0",
                "document_id": f"d{i}",
                "text": f"Document {i} talks about topic {i % 17}.",
                "position": 0,
            }
            for i in range(200)
        ]
        httpx.post(
            f"{retrieval}/internal/v1/collections/docs/upsert",
            json={"chunks": chunks},
            headers=tenant,
            timeout=120,
        ).raise_for_status()
        query = {"query": "what about topic 3", "collection": "docs", "top_k": 10}

        results = {}
        with httpx.Client(timeout=30) as client:
            for _ in range(200):  # warm up both processes and retrieval's L1
                client.post(f"{retrieval}/v1/search", json=query, headers=tenant)
                client.post(f"{gateway}/v1/search", json=query, headers={"X-API-Key": api_key})
            hit = client.post(f"{retrieval}/v1/search", json=query, headers=tenant).headers.get("x-cache")
            results["retrieval direct (cache hit)"] = time_requests(
                client, "POST", f"{retrieval}/v1/search", args.requests, json=query, headers=tenant
            )
            results["gateway → retrieval (cache hit)"] = time_requests(
                client,
                "POST",
                f"{gateway}/v1/search",
                args.requests,
                json=query,
                headers={"X-API-Key": api_key},
            )
            results["gateway → retrieval GET /v1/collections"] = time_requests(
                client, "GET", f"{gateway}/v1/collections", args.requests, headers={"X-API-Key": api_key}
            )
            results["gateway, no hop (auth + rate limit + 1 Redis read)"] = time_requests(
                client, "GET", f"{gateway}/v1/sessions/missing", args.requests, headers={"X-API-Key": api_key}
            )
    finally:
        for process in reversed(processes):
            process.stop()

    rows = [
        f"| {name} | {s['p50']:.2f} | {s['p95']:.2f} | {s['p99']:.2f} | {s['mean']:.2f} | {s['rps']:.0f} |"
        for name, s in ((name, summarise(samples)) for name, samples in results.items())
    ]
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    report = "\n".join(
        [
            "# Gateway benchmark: search cache hits, in the gateway or one hop away",
            "",
            f"Command: `uv run python services/gateway/bench/search_hop.py --requests {args.requests}`  ",
            f"Machine: {machine}; {time.strftime('%Y-%m-%d %H:%M')}; retrieval answered `X-Cache: {hit}`.  ",
            "One client, one request at a time, keep-alive; every process is single-worker uvicorn.",
            "",
            "| path | p50 ms | p95 ms | p99 ms | mean ms | req/s (1 client) |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            *rows,
            "",
        ]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    existing = args.out.read_text() if args.out.exists() else ""
    marker = "<!-- measurements -->"
    if marker in existing:
        head, _, _ = existing.partition(marker)
        args.out.write_text(f"{head}{marker}\n\n{report}")
    else:
        args.out.write_text(f"{marker}\n\n{report}")
    sys.stdout.write(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
