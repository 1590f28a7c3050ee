"""HTTP QPS of a retrieval service: vector and text queries, cached and uncached.

Against a service that is already running (it seeds a small collection of its own):

    uv run python services/retrieval/bench/bench_http.py --url http://127.0.0.1:8010 --seconds 10

and appends its figures to docs/benchmarks/retrieval.md under "## HTTP". `make bench-retrieval`
(bench_retrieval.py) uses the same scenarios against a 100k-chunk collection.

Load generator: wrk (C, one thread, keep-alive) when it is on the PATH, otherwise one asyncio
process with httpx. On a 2-core box the generator competes with the service for the CPU: wrk
costs a few microseconds per request, httpx ~100-200 us, enough to cap the figure — the report
names the generator used.

The reference is measured in the same run: the same store code on the same data, in this
process, one thread, right before and right after each row it divides. The service's CPU per
request (its process and its uvicorn workers, from /proc) is reported beside each rate when the
service runs on this machine: it says what a request costs whatever else the machine was doing,
where req/s and latency depend on it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from ragfleet.bench.calibration import parent_pid, process_tree_cpu_ms
from ragfleet.common.contracts import TENANT_HEADER

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
# Where a scenario's bodies take a number unique to the request, so that no two are alike.
UNIQUE = "@N@"

# wrk cycles through the bodies of a file; in "unique" mode each request splices a fresh counter
# (offset per run and thread, so a warm-up never pre-fills the measured run's keys) into one.
WRK_SCRIPT = """
local bodies, counter, mode, tenant = {}, 0, "cycle", "default"
local next_id, threads = 0, {}
hits, answered = 0, 0  -- globals: done() reads them from each thread
function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
  threads[#threads + 1] = thread
end
function init(args)
  mode, tenant = args[2], args[4]
  counter = tonumber(args[3]) + (id - 1) * 1000000
  for line in io.lines(args[1]) do
    local pieces = {}
    for piece in (line .. "@N@"):gmatch("(.-)@N@") do pieces[#pieces + 1] = piece end
    bodies[#bodies + 1] = pieces
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-Ragfleet-Tenant"] = tenant
end
function request()
  counter = counter + 1
  local body = bodies[counter % #bodies + 1]
  if #body == 2 then
    return wrk.format(nil, nil, nil, body[1] .. string.format("%d1", counter) .. body[2])
  end
  if #body > 2 then  -- two digits at each marker (digits are valid base64 characters too)
    local digits, out = string.format("%010d", counter % 10000000000), body[1]
    for j = 2, #body do out = out .. digits:sub(2 * j - 3, 2 * j - 2) .. body[j] end
    return wrk.format(nil, nil, nil, out)
  end
  return wrk.format(nil, nil, nil, body[1])
end
function response(status, headers, body)
  answered = answered + 1
  if (headers["x-cache"] or headers["X-Cache"] or ""):sub(1, 3) == "hit" then hits = hits + 1 end
end
function done(summary, latency, requests)
  local e, all_hits, all_answered = summary.errors, 0, 0
  for _, thread in ipairs(threads) do
    all_hits, all_answered = all_hits + thread:get("hits"), all_answered + thread:get("answered")
  end
  io.write(string.format(
    '\\nRESULT {"requests": %d, "duration_us": %d, "errors": %d, "p50_us": %d, "p99_us": %d, '
    .. '"hits": %d, "answered": %d}\\n',
    summary.requests, summary.duration, e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), all_hits, all_answered))
end
"""


@dataclass
class Scenario:
    """Request bodies (JSON text); with `UNIQUE` in them, every request is a new one (uncached)."""

    name: str
    bodies: list[str]

    def body(self, counter: int) -> str:
        template = self.bodies[counter % len(self.bodies)]
        pieces = template.split(UNIQUE)
        if len(pieces) <= 2:
            return template.replace(UNIQUE, f"{counter}1")  # the trailing 1: "12" and "120" differ
        digits = f"{counter % 10**10:010d}"  # two digits at each marker, as the Lua does
        return pieces[0] + "".join(digits[2 * j : 2 * j + 2] + piece for j, piece in enumerate(pieces[1:]))


def vector_json(vector: np.ndarray, *, unique: bool) -> str:
    """The vector as a JSON list; `unique` leaves markers where the request's digits go: two
    digits after the 4th decimal of five components spread over the vector (a change below 1e-4,
    so the query stays realistic). The digits must land within float32's ~7 significant digits:
    retrieval keys a vector by its float32 bytes, and digits appended after the 6th decimal (as
    until session 5) were rounded away, so 90-96 % of the "uncached" JSON requests were cache hits."""
    if not unique:
        return "[" + ",".join(f"{x:.6f}" for x in vector) + "]"
    marked = {len(vector) * group // UNIQUE_MARKERS for group in range(UNIQUE_MARKERS)}
    parts = [f"{x:.4f}{UNIQUE}" if i in marked else f"{x:.6f}" for i, x in enumerate(vector)]
    return "[" + ",".join(parts) + "]"


UNCACHED_B64 = "vector base64, uncached (a new vector each time)"
UNCACHED_B64_CHUNK = "vector base64, uncached, rank chunk (the reference's search)"
UNIQUE_MARKERS = 5  # ten digits of the request number, two per marker


def vector_b64(vector: np.ndarray, *, unique: bool) -> str:
    """The vector as base64 of its little-endian float32 bytes; `unique` leaves markers where the
    request's digits go: the first two characters of five 16-character groups, which encode only
    the two low mantissa bytes of a float (a relative change below 1 %, never the exponent)."""
    text = base64.b64encode(vector.astype("<f4").tobytes()).decode()
    if not unique:
        return text
    for group in reversed(range(UNIQUE_MARKERS)):
        at = 16 * group * 7  # spread over the vector
        text = text[:at] + UNIQUE + text[at + 2 :]
    return text


def scenarios(collection: str, vectors: np.ndarray, texts: list[str]) -> list[Scenario]:
    base = f'"collection": "{collection}", "top_k": 10'
    return [
        Scenario(
            "vector, cached (one query repeated)",
            [f'{{{base}, "vector": {vector_json(vectors[0], unique=False)}}}'],
        ),
        Scenario(
            "vector, uncached (a new vector each time)",
            [f'{{{base}, "vector": {vector_json(v, unique=True)}}}' for v in vectors[:500]],
        ),
        Scenario(
            UNCACHED_B64,
            [f'{{{base}, "vector": "{vector_b64(v, unique=True)}"}}' for v in vectors[:500]],
        ),
        # The same search as the in-process reference (top 10 chunks): the like-for-like ratio.
        # The default request above ranks documents: 50 candidates, their centroids, ranking.
        Scenario(
            UNCACHED_B64_CHUNK,
            [f'{{{base}, "rank": "chunk", "vector": "{vector_b64(v, unique=True)}"}}' for v in vectors[:500]],
        ),
        Scenario(
            "text, cached (one query repeated)",
            [json.dumps({"collection": collection, "top_k": 10, "query": texts[0]})],
        ),
        Scenario(
            "text, uncached (a new text each time: embedding + search)",
            [
                json.dumps({"collection": collection, "top_k": 10, "query": f"{t} q{UNIQUE}"})
                for t in texts[:500]
            ],
        ),
    ]


@dataclass
class Figures:
    qps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cache_hits: float  # the share of responses with X-Cache: hit-*
    cpu_ms: float | None = None  # the service's CPU (all its processes) per request


@dataclass
class HttpRun:
    """One HTTP benchmark run, for the report."""

    results: dict[str, Figures]
    generator: str
    workers: int
    seconds: float
    chunks: int
    start_s: float  # launch of the service to its first 200 on /healthz

    @property
    def generator_short(self) -> str:
        return self.generator.split(" ")[0]


def run_wrk(
    wrk: str, url: str, scenario: Scenario, *, seconds: float, concurrency: int, tenant: str, offset: int
) -> Figures:
    with tempfile.TemporaryDirectory(prefix="ragfleet-wrk-") as tmp:
        script, bodies = Path(tmp) / "search.lua", Path(tmp) / "bodies.txt"
        script.write_text(WRK_SCRIPT)
        bodies.write_text("\n".join(scenario.bodies) + "\n")
        mode = "unique" if UNIQUE in scenario.bodies[0] else "cycle"
        argv = [
            wrk, "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
            "-s", str(script), f"{url}/v1/search", "--", str(bodies), mode, str(offset), tenant,
        ]  # fmt: skip
        output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    raw = json.loads(line.removeprefix("RESULT "))
    return Figures(
        qps=raw["requests"] / (raw["duration_us"] / 1e6),
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        errors=raw["errors"],
        requests=raw["requests"],
        cache_hits=raw["hits"] / max(1, raw["answered"]),
    )


async def run_httpx(
    url: str, scenario: Scenario, *, seconds: float, concurrency: int, tenant: str, offset: int
) -> Figures:
    counter = itertools.count(offset)
    latencies: list[float] = []
    errors = hits = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Content-Type": "application/json", TENANT_HEADER: tenant}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30, headers=headers) as client:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors, hits
            while time.perf_counter() < deadline:
                body = scenario.body(next(counter))
                started = time.perf_counter()
                response = await client.post("/v1/search", content=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors += 1
                hits += response.headers.get("x-cache", "").startswith("hit")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return Figures(
        qps=len(latencies) / elapsed,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000,
        errors=errors,
        requests=len(latencies),
        cache_hits=hits / max(1, len(latencies)),
    )


def listening_processes(url: str) -> list[int]:
    """The pids holding the service's listening sockets (its uvicorn workers, each with a socket
    of its own, or one process), from `ss`; empty when the service is elsewhere or `ss` cannot say."""
    port = httpx.URL(url).port or 80
    try:
        output = subprocess.run(
            ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return sorted({int(pid) for pid in re.findall(r"pid=(\d+)", output)})


def service_root(pids: list[int]) -> int | None:
    """The process whose tree's CPU is counted: the one listener when there is one, else the
    parent the listeners share (uvicorn's supervisor, which holds no socket since the workers
    bind their own), else the one listener whose parent is not a listener (a supervisor that
    shares its socket with its workers, as uvicorn's own does)."""
    if len(pids) == 1:
        return pids[0]
    parents = {parent_pid(pid) for pid in pids}
    if len(parents) == 1 and None not in parents:
        return parents.pop()
    tops = [pid for pid in pids if parent_pid(pid) not in pids]
    return tops[0] if len(tops) == 1 else None


def service_workers(pids: list[int], root: int | None) -> int | None:
    """How many processes serve: the listeners other than a supervisor among them."""
    if root is None:
        return None
    return max(1, len([pid for pid in pids if pid != root]))


def load_generator(concurrency: int) -> str:
    if shutil.which("wrk"):
        return f"wrk (1 thread, {concurrency} keep-alive connections)"
    return f"one asyncio process with httpx, {concurrency} connections (wrk not found: it limits the figure)"


def run_scenarios(
    url: str, runs: list[Scenario], *, seconds: float, concurrency: int, tenant: str, pid: int | None
) -> dict[str, Figures]:
    """Each scenario: a 1 s warm-up (which also fills the cache for the cached ones), then the run."""
    wrk = shutil.which("wrk")
    results: dict[str, Figures] = {}
    for scenario in runs:
        # Request numbers stay below 1e8: spliced into a vector component's 6 decimals, 9 more
        # digits keep every value distinct in a double. The warm-up and the run use apart ranges.
        base = random.randrange(1, 9) * 10_000_000
        for phase, duration in enumerate((1.0, seconds)):
            offset = base + phase * 5_000_000
            cpu_before = process_tree_cpu_ms(pid) if pid else 0.0
            if wrk:
                figures = run_wrk(
                    wrk,
                    url,
                    scenario,
                    seconds=duration,
                    concurrency=concurrency,
                    tenant=tenant,
                    offset=offset,
                )
            else:
                figures = asyncio.run(
                    run_httpx(
                        url, scenario, seconds=duration, concurrency=concurrency, tenant=tenant, offset=offset
                    )
                )
            if pid and figures.requests:
                figures.cpu_ms = (process_tree_cpu_ms(pid) - cpu_before) / figures.requests
        results[scenario.name] = figures
        cpu = f"{figures.cpu_ms:5.2f} ms CPU/req" if figures.cpu_ms is not None else ""
        sys.stdout.write(
            f"{scenario.name:60s} {figures.qps:8.0f} req/s  p50 {figures.p50_ms:7.2f} ms  "
            f"p99 {figures.p99_ms:7.2f} ms  errors {figures.errors}  hits {figures.cache_hits:.0%}  {cpu}\n"
        )
    return results


def results_table(results: dict[str, Figures]) -> str:
    rows = [
        "| scenario | req/s | p50 ms | p99 ms | errors | cache hits | service CPU ms/req |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {name} | {f.qps:,.0f} | {f.p50_ms:.2f} | {f.p99_ms:.2f} | {f.errors} | {f.cache_hits:.0%} "
            f"| {'-' if f.cpu_ms is None else f'{f.cpu_ms:.2f}'} |"
            for name, f in results.items()
        ),
    ]
    return "\n".join(rows)


async def seed(client: httpx.AsyncClient, collection: str, chunks: int, batch: int = 500) -> None:
    """`chunks` chunks of random unit vectors (no embedding cost at seed time)."""
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


def seeded_vectors(chunks: int, batch: int = 500) -> np.ndarray:
    """The vectors `seed` sends, in order (the same generator and draws)."""
    rng = np.random.default_rng(7)
    parts = [
        rng.standard_normal((min(batch, chunks - s), 384)).astype(np.float32) for s in range(0, chunks, batch)
    ]
    return np.concatenate(parts) if parts else np.empty((0, 384), dtype=np.float32)


class InProcessReference:
    """The same store code on the same data, in this process, one thread: the reference the
    HTTP figures are divided by (same machine, same run). Built once; `rate` searches for a
    while. The ratio rows are bracketed by a reference measure just before and just after each
    (`run_with_references`): this VM's speed drifts by 10-30 % within a minute, and one reference
    taken at the end of the run, up to a minute after the row it divided, moved the ratio by as
    much (0.38 and 0.54 on one machine in one session)."""

    def __init__(self, chunks: int, queries: np.ndarray) -> None:
        from ragfleet.retrieval.store import Chunk
        from ragfleet.retrieval.store.embedded import EmbeddedVectorStore

        self._queries = queries
        self._tmp = tempfile.TemporaryDirectory(prefix="ragfleet-inproc-")
        self._store = EmbeddedVectorStore(self._tmp.name, threads=1)
        rows = [
            Chunk(
                id=f"c{i}",
                document_id=f"d{i // 4}",
                text="x",
                position=i % 4,
                metadata={"n": i},
                vector=v.tolist(),
            )
            for i, v in enumerate(seeded_vectors(chunks))
        ]
        asyncio.run(self._store.upsert("default", "bench", rows))
        self.samples: list[float] = []

    def rate(self, seconds: float) -> float:
        """Searches per second for `seconds` (top 10 chunks, the queries in turn); kept in `samples`."""
        from ragfleet.retrieval.store import SearchQuery

        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            query = self._queries[done % len(self._queries)]
            self._store.search_sync("default", "bench", SearchQuery(vector=query, mode="vector", top_k=10))
            done += 1
        rate = done / (time.perf_counter() - started)
        self.samples.append(rate)
        return rate

    def close(self) -> None:
        asyncio.run(self._store.close())
        self._tmp.cleanup()


# The rows divided by the reference, each bracketed by a reference measure of this many seconds.
RATIO_ROWS = (UNCACHED_B64, UNCACHED_B64_CHUNK)
REFERENCE_SECONDS = 3.0


def run_with_references(
    url: str,
    runs: list[Scenario],
    reference: InProcessReference,
    *,
    seconds: float,
    concurrency: int,
    tenant: str,
    pid: int | None,
) -> tuple[dict[str, Figures], dict[str, float]]:
    """`run_scenarios`, with a reference measure right before and right after each ratio row;
    returns the figures and, per ratio row, the mean of its two brackets."""
    results: dict[str, Figures] = {}
    brackets: dict[str, float] = {}
    last: float | None = None
    for scenario in runs:
        ratio_row = scenario.name in RATIO_ROWS
        if ratio_row and last is None:
            last = reference.rate(REFERENCE_SECONDS)
        results.update(
            run_scenarios(url, [scenario], seconds=seconds, concurrency=concurrency, tenant=tenant, pid=pid)
        )
        if ratio_row:
            assert last is not None
            after = reference.rate(REFERENCE_SECONDS)
            brackets[scenario.name] = (last + after) / 2
            last = after
        else:
            last = None  # a reference taken before another row brackets nothing
    return results, brackets


def main() -> None:
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

    async def seed_collection() -> None:
        async with httpx.AsyncClient(base_url=args.url, timeout=30) as client:
            await seed(client, args.collection, args.chunks)

    if args.chunks:
        asyncio.run(seed_collection())
    pids = listening_processes(args.url)
    pid = service_root(pids)
    workers = service_workers(pids, pid)
    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((500, 384)).astype(np.float32)
    texts = [f"{random.choice(WORDS)} {random.choice(WORDS)} query" for _ in range(500)]
    reference = InProcessReference(args.chunks or 5000, vectors)
    try:
        results, brackets = run_with_references(
            args.url,
            scenarios(args.collection, vectors, texts),
            reference,
            seconds=args.seconds,
            concurrency=args.concurrency,
            tenant="default",
            pid=pid,
        )
    finally:
        reference.close()
    ratio = results[UNCACHED_B64_CHUNK].qps / brackets[UNCACHED_B64_CHUNK]
    default_ratio = results[UNCACHED_B64].qps / brackets[UNCACHED_B64]
    samples = reference.samples
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    sys.stdout.write(
        f"{'store in process, same data, 1 thread (reference)':60s} "
        f"{' '.join(f'{x:.0f}' for x in samples)} q/s (before and after each ratio row)\n"
        f"verdict (issue #18's acceptance ratio, both rates from this run): row {UNCACHED_B64_CHUNK!r} / "
        f"the reference around it ({brackets[UNCACHED_B64_CHUNK]:.0f} q/s) = {ratio:.2f} "
        f"(target >= 0.5: {'met' if ratio >= 0.5 else 'NOT met'}); "
        f"for information, row {UNCACHED_B64!r} (the default request, document ranking: more store "
        f"work than the reference) / the reference around it = {default_ratio:.2f}; "
        f"service workers: {workers or 'unknown'}; load average at the end: {load}\n"
    )
    if not args.no_report:
        append_report(args, results, samples, (ratio, default_ratio), workers, load)


def append_report(
    args: argparse.Namespace,
    results: dict[str, Figures],
    reference: list[float],
    ratios: tuple[float, float],
    workers: int | None,
    load: str,
) -> None:
    lines = [
        f"\n### HTTP run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"load generator on the same machine: {load_generator(args.concurrency)}; service workers: "
        f"{workers or 'unknown (not on this machine)'}; load average at the end: {load}.\n",
        f"Command: `uv run python services/retrieval/bench/bench_http.py --url {args.url} "
        f"--chunks {args.chunks} --seconds {args.seconds:g} --concurrency {args.concurrency}`\n",
        results_table(results),
        f"\nReference in the same run: the store in process on the same data, one thread, top 10 "
        f"chunks, measured {REFERENCE_SECONDS:g} s right before and right after each ratio row: "
        f"{', '.join(f'{x:,.0f}' for x in reference)} q/s. Acceptance ratio (issue #18), both rates "
        f'from this run: row "{UNCACHED_B64_CHUNK}" / the mean of the two references around it = '
        f"**{ratios[0]:.2f}** (target >= 0.5). "
        f'For information, the default request (row "{UNCACHED_B64}": document ranking, 50 '
        f"candidates, their centroids, the ranking) / the reference = {ratios[1]:.2f}.\n",
    ]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    text = REPORT.read_text() if REPORT.exists() else "# Retrieval benchmarks\n"
    if "## HTTP" not in text:
        text += "\n## HTTP\n\nQPS of `POST /v1/search` over HTTP, measured by `services/retrieval/bench/bench_http.py`.\n"
    REPORT.write_text(text.rstrip("\n") + "\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
