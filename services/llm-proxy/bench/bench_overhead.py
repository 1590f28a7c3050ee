"""The llm-proxy's own overhead: the same requests, at the same fixed rate, direct to an upstream and through the proxy.

Starts a Redis, the fake upstream (answering at once, so all the latency measured is HTTP and
proxy work) and one proxy replica as real processes on loopback, then sends an open-loop load:
requests leave on a fixed schedule whether or not earlier ones finished, and each latency is
measured from its scheduled time, so a stall shows up in the tail instead of hiding it
(no coordinated omission). Non-streaming requests are timed to the full answer, streaming ones
to the first content chunk (what a chat user waits for). Requests are non-deterministic
(temperature 1), so the cache is bypassed and every request goes upstream.

    uv run python services/llm-proxy/bench/bench_overhead.py --rate 100 --duration 20 \
        --output docs/benchmarks/llm-proxy.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

from ragfleet.bench import calibration
from ragfleet.devstack.processes import (
    ManagedProcess,
    free_port,
    http_ok,
    start_redis,
    start_service,
    wait_until,
)

log = logging.getLogger("bench_overhead")
JSON_HEADERS = {"Content-Type": "application/json"}
CALLERS = 64  # distinct X-Ragfleet-Key-Id values, round robin
HERE = Path(__file__).resolve().parent


@dataclass
class Result:
    target: str
    mode: str
    latencies_ms: list[float]
    errors: int
    header_overhead_ms: list[float]
    cpu_ms_per_request: dict[str, float] | None = None  # process name -> CPU time per request
    error_kinds: Counter[str] = field(default_factory=Counter)  # "503", "TimeoutError", ...

    def pct(self, values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def one_request(
    session: aiohttp.ClientSession, url: str, model: str, stream: bool, result: Result, due: float, key: int
) -> None:
    # Many callers, as behind a gateway: one key alone would meet the proxy's per-key concurrency
    # limit (max_concurrent_per_key) at the first stall, and the benchmark would measure 429s.
    headers = {**JSON_HEADERS, "X-Ragfleet-Key-Id": f"bench-{key % CALLERS}"}
    body = orjson.dumps({
        "model": model,
        "messages": [{"role": "user", "content": f"benchmark question {due}"}],
        "temperature": 1,
        "stream": stream,
    })  # fmt: skip
    try:
        async with session.post(url, data=body, headers=headers) as response:
            if response.status != 200:
                result.errors += 1
                result.error_kinds[str(response.status)] += 1
                return
            if not stream:
                await response.read()
                result.latencies_ms.append((time.perf_counter() - due) * 1000)
            else:
                first = None
                async for line in response.content:
                    if first is None and b'"content":"' in line and b'"content":""' not in line:
                        first = (time.perf_counter() - due) * 1000
                if first is None:
                    raise RuntimeError("no content chunk")
                result.latencies_ms.append(first)
            if "x-proxy-overhead-ms" in response.headers:
                result.header_overhead_ms.append(float(response.headers["x-proxy-overhead-ms"]))
    except Exception as exc:
        result.errors += 1
        result.error_kinds[type(exc).__name__] += 1
        log.debug("request failed: %s", exc)


async def run_load(
    url: str, model: str, stream: bool, rate: float, duration_s: float, result: Result
) -> None:
    """Open loop: request i leaves at start + i/rate whether or not the earlier ones are done.

    aiohttp, not httpx, as the load generator: measured here, an httpx client costs several times
    the CPU per request, and a load generator short of CPU delays the schedule it is measuring.
    """
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = []
        start = time.perf_counter() + 0.05
        for i in range(int(rate * duration_s)):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one_request(session, url, model, stream, result, due, i)))
        await asyncio.gather(*tasks)


def machine() -> str:
    m = calibration.machine()
    return f"{calibration.describe(m)}, {m['platform']}, Python {m['python']}"


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def figures(r: Result) -> dict[str, object]:
    """One row of the report as plain data."""
    return {
        "mode": r.mode,
        "target": r.target,
        "requests": len(r.latencies_ms),
        "errors": r.errors,
        "p50_ms": r.pct(r.latencies_ms, 50),
        "p99_ms": r.pct(r.latencies_ms, 99),
        "overhead_header_p50_ms": r.pct(r.header_overhead_ms, 50) if r.header_overhead_ms else None,
        "cpu_ms_per_request": r.cpu_ms_per_request or {},
    }


def _errors(r: Result) -> str:
    """The count, and what they were (a status such as 503 for a shed request, or an exception)."""
    kinds = ", ".join(f"{kind}: {n}" for kind, n in r.error_kinds.most_common())
    return f"{r.errors} ({kinds})" if kinds else str(r.errors)


def _cpu_ratio(r: Result) -> str:
    """The proxy's CPU per request in units of the bare upstream's, measured in the same row: the
    upstream is the same server stack with no framework, so the ratio travels between machines."""
    cpu = r.cpu_ms_per_request or {}
    return f"{cpu['proxy'] / cpu['upstream']:.1f}" if cpu.get("upstream") else "—"


def report(results: list[Result], args: argparse.Namespace, command: str) -> str:
    lines = [
        "# llm-proxy overhead benchmark",
        "",
        "The same requests at the same fixed rate (open loop), direct to the benchmark upstream and through",
        f"one llm-proxy replica ({args.workers} uvicorn worker(s), as the chart runs: components.default.workers),",
        "Redis on loopback, cache bypassed (temperature 1). The load generator is aiohttp; the upstream",
        "is bench/upstream.py (a bare ASGI app, canned answers, its CPU per request in its own column).",
        "Non-streaming requests are timed to the full answer; streaming ones to the first content chunk.",
        "The upstream answers at once, so the difference is what the proxy adds (validation, breaker",
        "read in Redis, a second HTTP hop, relaying the chunks, accounting).",
        "",
        f"- Machine: {machine()}",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {git_commit()}",
        f"- Load: {args.rate:g} requests/s for {args.duration:g} s per row, after {args.warmup:g} s of warm-up",
        f"- Load average (1, 5, 15 min) at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}",
        f"- Command: `{command}`",
        "",
        "| mode | target | requests | errors | p50 ms | p90 ms | p99 ms | CPU ms/request: upstream | proxy |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    by_key = {(r.mode, r.target): r for r in results}
    for r in results:
        lines.append(
            f"| {r.mode} | {r.target} | {len(r.latencies_ms)} | {_errors(r)} | "
            f"{r.pct(r.latencies_ms, 50):.2f} | {r.pct(r.latencies_ms, 90):.2f} | {r.pct(r.latencies_ms, 99):.2f} | "
            f"{(r.cpu_ms_per_request or {}).get('upstream', 0):.2f} | {(r.cpu_ms_per_request or {}).get('proxy', 0):.2f} |"
        )
    lines += [
        "",
        "| mode | added p50 ms | added p99 ms | X-Proxy-Overhead-Ms p50 | X-Proxy-Overhead-Ms p99 "
        "| proxy CPU ÷ bare upstream CPU, per request |",
    ]
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for mode in ("json", "stream"):
        direct, proxied = by_key.get((mode, "direct")), by_key.get((mode, "proxy"))
        if direct is None or proxied is None:
            continue
        lines.append(
            f"| {mode} | {proxied.pct(proxied.latencies_ms, 50) - direct.pct(direct.latencies_ms, 50):.2f} | "
            f"{proxied.pct(proxied.latencies_ms, 99) - direct.pct(direct.latencies_ms, 99):.2f} | "
            f"{proxied.pct(proxied.header_overhead_ms, 50):.3f} | {proxied.pct(proxied.header_overhead_ms, 99):.3f} | "
            f"{_cpu_ratio(proxied)} |"
        )
    lines += [
        "",
        "`X-Proxy-Overhead-Ms` is the proxy's own measure: time from receiving the request to starting",
        "the response, minus the time spent waiting on the upstream; it excludes the extra network hop",
        "and the load generator's share of the CPU, which the end-to-end difference includes.",
        "CPU ms/request is each server process's user + system CPU time over the row divided by its",
        "answered requests (from /proc, the process and its workers; errors add CPU, not requests): the",
        "cost per request, less sensitive to a shared CPU than latency is. Errors: a 503 is a request the",
        "proxy shed for event-loop lag (shedding.py); an exception name is a client-side failure.",
        "",
    ]
    if args.note:
        lines += [args.note, ""]
    return "\n".join(lines)


async def measure(
    args: argparse.Namespace, direct_url: str, proxy_url: str, pids: dict[str, int]
) -> list[Result]:
    results = []
    for mode, stream in (("json", False), ("stream", True)):
        for target, url, model in (("direct", direct_url, "bench"), ("proxy", proxy_url, "bench")):
            warm = Result(target, mode, [], 0, [])
            await run_load(url, model, stream, args.rate, args.warmup, warm)
            result = Result(target, mode, [], 0, [])
            before = {name: calibration.process_tree_cpu_ms(pid) for name, pid in pids.items()}
            await run_load(url, model, stream, args.rate, args.duration, result)
            # Per answered request: the CPU spent on refusing or failing the others is charged to
            # them, so a row with errors never looks cheaper than it was.
            answered = max(1, len(result.latencies_ms))
            result.cpu_ms_per_request = {
                name: (calibration.process_tree_cpu_ms(pid) - before[name]) / answered
                for name, pid in pids.items()
            }
            log.info(
                "%s %s: p50 %.2f ms, p99 %.2f ms, %d errors %s",
                mode, target, result.pct(result.latencies_ms, 50), result.pct(result.latencies_ms, 99), result.errors,
                dict(result.error_kinds),
            )  # fmt: skip
            results.append(result)
    return results


def start_upstream(port: int, workdir: Path, *, scripted: bool = False) -> ManagedProcess:
    """The bare benchmark upstream (bench/upstream.py), or the tests' scripted fake (to measure it)."""
    if scripted:
        return start_service(
            "fake-upstream", "ragfleet.testkit.fake_llm", port=port, log_dir=workdir,
            env={"RAGFLEET_FAKE_UPSTREAM_PORT": str(port), "RAGFLEET_FAKE_UPSTREAM_LOG_LEVEL": "WARNING"},
        )  # fmt: skip
    process = ManagedProcess(
        f"bench-upstream:{port}", [sys.executable, str(HERE / "upstream.py"), "--port", str(port)],
        workdir / f"bench-upstream-{port}.log",
    ).start()  # fmt: skip
    wait_until(
        lambda: http_ok(f"http://127.0.0.1:{port}/healthz"),
        timeout_s=30,
        what="bench upstream",
        process=process,
    )
    return process


def start_proxy(
    port: int, redis_port: int, upstream_port: int, workdir: Path, *, workers: int
) -> ManagedProcess:
    """One llm-proxy replica serving the model ``bench`` from the upstream, cache on, Redis on loopback."""
    models = [{"name": "bench", "base_url": f"http://127.0.0.1:{upstream_port}/v1"}]
    return start_service(
        "llm-proxy", "ragfleet.llm_proxy", port=port, log_dir=workdir,
        env={
            "RAGFLEET_LLM_PROXY_PORT": str(port),
            "RAGFLEET_LLM_PROXY_WORKERS": str(workers),
            "RAGFLEET_LLM_PROXY_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "RAGFLEET_LLM_PROXY_MODELS": json.dumps(models),
            "RAGFLEET_LLM_PROXY_ACCESS_LOG": "false",
            "RAGFLEET_LLM_PROXY_LOG_LEVEL": "WARNING",
            "RAGFLEET_LLM_PROXY_EMBEDDINGS_BUILTIN": "false",
        },
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured per row")
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of unmeasured load before each row"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="uvicorn workers of the proxy (the chart runs 1 per pod)"
    )
    parser.add_argument("--output", type=Path, help="write the Markdown report here")
    parser.add_argument("--note", default="", help="a line added to the report (e.g. about a shared CPU)")
    parser.add_argument("--json", type=Path, help="also write the figures here (for `make bench`)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    workdir = Path(tempfile.mkdtemp(prefix="bench-llm-proxy-"))
    processes: list[ManagedProcess] = []
    try:
        redis_port, upstream_port, proxy_port = free_port(), free_port(), free_port()
        processes.append(start_redis(redis_port, workdir / "redis"))
        upstream = start_upstream(upstream_port, workdir)
        processes.append(upstream)
        proxy = start_proxy(proxy_port, redis_port, upstream_port, workdir, workers=args.workers)
        processes.append(proxy)
        results = asyncio.run(
            measure(
                args,
                f"http://127.0.0.1:{upstream_port}/v1/chat/completions",
                f"http://127.0.0.1:{proxy_port}/v1/chat/completions",
                {"upstream": upstream.pid, "proxy": proxy.pid},
            )
        )
    finally:
        for process in reversed(processes):
            process.stop()
    command = "uv run python services/llm-proxy/bench/bench_overhead.py " + " ".join(
        a if " " not in a else json.dumps(a) for a in sys.argv[1:]
    )
    text = report(results, args, command)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        log.info("report written to %s", args.output)
    else:
        sys.stdout.write(text)
    if args.json:
        args.json.write_text(json.dumps({"rows": [figures(r) for r in results]}))
    if any(r.errors for r in results):
        log.warning("some requests failed; see the errors column")


if __name__ == "__main__":
    main()
