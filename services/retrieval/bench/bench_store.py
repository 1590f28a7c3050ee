"""Retrieval core benchmark: the embedded store and the embedder, in process (no HTTP).

Loads >= 100k chunks of realistic sizes (synthetic vectors shaped like embeddings, see
synthetic.py), then measures build/snapshot/load time, recall@10 against exact search, search
QPS (1 and 2 threads; vector, filtered, bm25, hybrid) and raw embedding throughput, and writes
docs/benchmarks/retrieval.md plus a plot next to it.

    uv run python services/retrieval/bench/bench_store.py [--n 100000] [--queries 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from bench_http import HttpRun, results_table
from synthetic import clustered_vectors, exact_top_k, recall_at_k, texts

from ragfleet.bench.calibration import HNSW_QPS, ONNX_TEXTS_PER_S, HnswWorkload, OnnxWorkload
from ragfleet.bench.rounds import ROUND_S, ROUNDS, median_of_rounds, rate_for, rate_for_async
from ragfleet.common.embeddings import Embedder, MicroBatcher
from ragfleet.retrieval.store.base import Chunk, SearchQuery
from ragfleet.retrieval.store.embedded import EmbeddedVectorStore

ROOT = Path(__file__).resolve().parents[3]
TENANT, COLLECTION = "bench", "corpus"
LANGS = ("en", "fr", "de")


def cpu_busy_share(seconds: float = 1.0) -> float:
    """The share of the machine's CPU time spent busy over ``seconds`` (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), idle

    total_a, idle_a = sample()
    time.sleep(seconds)
    total_b, idle_b = sample()
    return 1.0 - (idle_b - idle_a) / max(1, total_b - total_a)


# Taken when the benchmark starts, before it loads the machine itself: what else was running.
# (The load average lags by minutes, so a quiet box just after another run would look busy.)
BUSY_AT_START = cpu_busy_share()
BUSY_SHARE = 0.15


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "commit": commit or "unknown",
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def quiet_note(busy_at_start: float) -> str:
    if busy_at_start > BUSY_SHARE:
        return (
            "**The CPU was shared with other jobs when this started, so absolute numbers are noisy "
            "(lower than on a quiet box); re-run the command for clean figures.**"
        )
    return "Nothing else ran on the machine: these are this box's figures."


def make_chunks(n: int) -> tuple[list[Chunk], np.ndarray]:
    vectors = clustered_vectors(n, seed=1)
    bodies = texts(n, seed=1)
    chunks = [
        Chunk(
            id=f"doc-{i // 8}:{i % 8}",
            document_id=f"doc-{i // 8}",
            text=bodies[i],
            vector=vectors[i],
            position=i % 8,
            metadata={"lang": LANGS[i % 3], "year": 1990 + i % 35, "published": f"20{10 + i % 15}-06-01"},
        )
        for i in range(n)
    ]
    return chunks, vectors


def disk_usage(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def timed_qps(fn: Callable[[int], Any], count: int, threads: int) -> float:
    """Queries per second running `fn(i)` for i in range(count), again and again for ROUND_S, on
    `threads` threads."""
    if threads == 1:

        def one_pass() -> int:
            for i in range(count):
                fn(i)
            return count

        return rate_for(ROUND_S, one_pass)
    with ThreadPoolExecutor(threads) as pool:
        return rate_for(ROUND_S, lambda: len(list(pool.map(fn, range(count), chunksize=64))))


# Two quiet runs of this benchmark on one machine (a 2 vCPU Intel Xeon, minutes apart, same code)
# measured single passes 25-37 % apart (vector 1,695 vs 2,320 q/s, hybrid 600 vs 449): one pass per
# figure caught whichever stretch of the VM's drifting speed it ran in. So every figure is the
# median of ROUNDS rounds (ragfleet.bench.rounds), each figure and the calibration reference (raw
# hnswlib or ONNX work) running ROUND_S in each round, so that the reference sees the machine the
# figures saw, over stretches of the same length.


async def timed_load(data_dir: Path, *, expect_bm25: str) -> tuple[float, EmbeddedVectorStore]:
    """Seconds to open the store and load its collection (what a retrieval start pays)."""
    start = time.perf_counter()
    store = EmbeddedVectorStore(data_dir)
    await store.warm()
    seconds = time.perf_counter() - start
    assert store.search_sync(TENANT, COLLECTION, SearchQuery(text="index", mode="bm25"))
    source = store._require(TENANT, COLLECTION).bm25_source
    assert source == expect_bm25, f"BM25 was {source} on load, expected {expect_bm25}"
    if expect_bm25 != "snapshot":
        await store.close()
    return seconds, store


@contextlib.contextmanager
def bm25_rebuilt_on_load(data_dir: Path) -> Iterator[None]:
    """Mark the snapshot's postings as another tokenizer's, so a load rebuilds them; undo after."""
    (meta_path,) = (data_dir / TENANT / COLLECTION).glob("snapshot-*/meta.json")
    original = meta_path.read_bytes()
    meta_path.write_bytes(orjson.dumps({**orjson.loads(original), "bm25_tokenizer": -1}))
    try:
        yield
    finally:
        meta_path.write_bytes(original)


async def bench_store(n: int, n_queries: int, data_dir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"n": n}
    started = time.perf_counter()
    chunks, vectors = make_chunks(n)
    results["text_chars_mean"] = round(float(np.mean([len(c.text) for c in chunks])))
    results["generate_s"] = time.perf_counter() - started

    store = EmbeddedVectorStore(data_dir)
    start = time.perf_counter()
    for offset in range(0, n, 5000):
        await store.upsert(TENANT, COLLECTION, chunks[offset : offset + 5000])
    results["build_s"] = time.perf_counter() - start
    start = time.perf_counter()
    await store.close()
    results["snapshot_s"] = time.perf_counter() - start
    del chunks

    # A start as before BM25 was persisted (postings rebuilt from the texts), then as now.
    with bm25_rebuilt_on_load(data_dir):
        results["load_rebuild_bm25_s"], _ = await timed_load(data_dir, expect_bm25="rebuilt")
    # The figure a retrieval start pays, so the median of three starts (each ~2 s here).
    load_times = []
    for attempt in range(3):
        seconds, store = await timed_load(data_dir, expect_bm25="snapshot")
        load_times.append(seconds)
        if attempt < 2:
            await store.close()
    results["load_s"] = statistics.median(load_times)
    results["disk_mb"] = disk_usage(data_dir) / 1e6

    queries = clustered_vectors(n_queries, seed=2)
    truth = exact_top_k(vectors, queries, 10)
    start = time.perf_counter()
    for q in queries[:100]:
        np.argpartition(-(vectors @ q), 10)[:10]
    results["exact_qps"] = rate(100, time.perf_counter() - start)

    def run(query: SearchQuery) -> list[int]:
        return [
            int(h.id.split(":")[0][4:]) * 8 + int(h.id.split(":")[1])
            for h in store.search_sync(TENANT, COLLECTION, query)
        ]

    found = np.array([run(SearchQuery(vector=q, top_k=10)) for q in queries])
    results["recall@10"] = recall_at_k(found, truth)

    words = texts(n_queries, seed=3, min_words=2, max_words=5)
    kinds: dict[str, Callable[[int], SearchQuery]] = {
        "vector": lambda i: SearchQuery(vector=queries[i], top_k=10),
        "vector + filter (1/3 match)": lambda i: SearchQuery(
            vector=queries[i], top_k=10, filters={"lang": "fr"}
        ),
        "vector + filter (~1 % match)": lambda i: SearchQuery(
            vector=queries[i], top_k=10, filters={"year": {"eq": 2001}, "lang": {"in": ["en", "de"]}}
        ),
        "bm25": lambda i: SearchQuery(text=words[i], mode="bm25", top_k=10),
        "hybrid (relative_score)": lambda i: SearchQuery(
            vector=queries[i], text=words[i], mode="hybrid", top_k=10, alpha=0.5
        ),
        "hybrid (rrf)": lambda i: SearchQuery(
            vector=queries[i], text=words[i], mode="hybrid", top_k=10, fusion="rrf"
        ),
    }
    measures: dict[str, Callable[[], float | Awaitable[float]]] = {}
    for name, make in kinds.items():
        count = n_queries if name.startswith("vector") else max(200, n_queries // 5)
        prepared = [make(i) for i in range(count)]
        store.search_sync(TENANT, COLLECTION, prepared[0])  # warm caches (filter masks, postings)

        def one_query(i: int, prepared: list[SearchQuery] = prepared) -> None:
            store.search_sync(TENANT, COLLECTION, prepared[i])

        for threads in (1, 2):
            measures[f"{name}|{threads}"] = functools.partial(timed_qps, one_query, count, threads)

    # The async path the HTTP layer uses: `await store.search` with 32 requests in flight.
    async def one(i: int) -> None:
        await store.search(TENANT, COLLECTION, SearchQuery(vector=queries[i % n_queries], top_k=10))

    async def async_pass() -> int:
        for offset in range(0, 2 * n_queries, 32):
            await asyncio.gather(*(one(i) for i in range(offset, offset + 32)))
        return 2 * n_queries

    measures["async"] = functools.partial(rate_for_async, ROUND_S, async_pass)
    measures[HNSW_QPS] = functools.partial(HnswWorkload().qps, ROUND_S)
    rounds = await median_of_rounds(measures)
    results["qps"] = {
        name: {threads: rounds.median[f"{name}|{threads}"] for threads in (1, 2)} for name in kinds
    }
    results["async_qps"] = rounds.median["async"]
    results["references"] = {HNSW_QPS: rounds.median[HNSW_QPS]}
    results["spread"] = rounds.spread
    await store.close()
    return results


async def bench_embeddings() -> tuple[dict[str, float], dict[str, float]]:
    """Texts per second of each embedding path (medians of rounds), and each one's spread across rounds."""
    embedder = Embedder()
    embedder.load()
    short = [
        f"how do I configure {w} for {v}?"
        for w, v in zip(
            texts(256, seed=4, min_words=1, max_words=3),
            texts(256, seed=5, min_words=2, max_words=4),
            strict=True,
        )
    ]
    passages = texts(64, seed=6, min_words=150, max_words=200)  # ~256 tokens each, truncated at 256
    embedder.embed(short[:8])

    def in_batches(texts: Sequence[str], batch: int) -> float:
        def one_pass() -> int:
            for offset in range(0, len(texts), batch):
                embedder.embed(texts[offset : offset + batch])
            return len(texts)

        return rate_for(ROUND_S, one_pass)

    rounds = await median_of_rounds(
        {
            "query_single_per_s": functools.partial(in_batches, short[:32], 1),
            "query_batch_8_per_s": functools.partial(in_batches, short, 8),
            "query_batch_32_per_s": functools.partial(in_batches, short, 32),
            "query_batched_per_s": functools.partial(in_batches, short, len(short)),
            # One batch of 32 passages a pass: ~3 s here, so one pass a round (longer than ROUND_S).
            "passage_batched_per_s": functools.partial(in_batches, passages[:32], 32),
            ONNX_TEXTS_PER_S: functools.partial(OnnxWorkload().texts_per_s, ROUND_S),
        }
    )
    out = dict(rounds.median)
    # A throughput measurement sends 64 texts at once: the service's 0.5 s queue bound (refuse
    # rather than queue for seconds) refused them on a loaded machine and ended the whole benchmark.
    batcher = MicroBatcher(embedder, max_queue_s=0)  # 0: no time bound
    start = time.perf_counter()
    for offset in range(0, 256, 64):
        await asyncio.gather(*(batcher.embed_one(t) for t in short[offset : offset + 64]))
    out["query_microbatched_per_s"] = rate(256, time.perf_counter() - start)
    await batcher.close()
    return out, rounds.spread


@dataclasses.dataclass(frozen=True)
class InProcess:
    """What the in-process part measured: the store's figures, the embedding paths', the calibration
    references measured in the same rounds (make bench normalises by these), every round's spread."""

    store: dict[str, Any]
    embeddings: dict[str, float]
    references: dict[str, float]
    spread: dict[str, float]


async def measure_in_process(n: int, n_queries: int, data_dir: Path) -> InProcess:
    store = await bench_store(n, n_queries, data_dir)
    embeddings, embedding_spread = await bench_embeddings()
    return InProcess(
        store,
        embeddings,
        {**store.pop("references"), ONNX_TEXTS_PER_S: embeddings.pop(ONNX_TEXTS_PER_S)},
        {**store.pop("spread"), **embedding_spread},
    )


def plot(results: dict[str, Any], emb: dict[str, float], http: HttpRun | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if http else 2
    fig, axes = plt.subplots(
        1, panels, figsize=(6 * panels, 4.8), gridspec_kw={"width_ratios": [3, 2, 3][:panels]}
    )
    left, middle = axes[0], axes[1]
    names = list(results["qps"])
    x = np.arange(len(names))
    for offset, threads in ((-0.2, 1), (0.2, 2)):
        left.bar(x + offset, [results["qps"][k][threads] for k in names], 0.4, label=f"{threads} thread(s)")
    left.set_xticks(x, [k.replace(" (", "\n(") for k in names], fontsize=7)
    left.set_ylabel("queries / s (in process)")
    left.set_yscale("log")
    left.set_title(
        f"embedded store, {results['n']:,} chunks, recall@10 = {results['recall@10']:.3f}", fontsize=9
    )
    left.legend(fontsize=8)
    labels = [
        "query\nbatch 1",
        "query\nbatch 8",
        "query\nbatch 32",
        "query\nmicro-batched",
        "passage\nbatched",
    ]
    keys = [
        "query_single_per_s",
        "query_batch_8_per_s",
        "query_batch_32_per_s",
        "query_microbatched_per_s",
        "passage_batched_per_s",
    ]
    middle.bar(labels, [emb[k] for k in keys], color="tab:green")
    middle.tick_params(axis="x", labelsize=7)
    middle.set_ylabel("texts / s")
    middle.set_title("MiniLM-L6 int8 ONNX embedding", fontsize=9)
    if http:
        right = axes[2]
        http_names = list(http.results)
        right.bar(
            [n.split(" (")[0].replace(", ", "\n") for n in http_names],
            [http.results[n].qps for n in http_names],
            color="tab:purple",
        )
        right.axhline(1000, color="grey", linestyle="--", linewidth=1, label="1,000 req/s (the issue's bar)")
        right.legend(fontsize=8)
        right.set_ylabel("requests / s over HTTP")
        right.set_yscale("log")
        right.set_title(
            f"POST /v1/search, {http.workers} uvicorn workers, {http.generator_short}", fontsize=9
        )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


HTTP_SECTION = """## HTTP numbers (retrieval API)

QPS of `POST /v1/search` over HTTP (cached, uncached, text queries), measured by
`services/retrieval/bench/bench_http.py`, which appends its runs below; regenerating the
in-process part above keeps them.
"""


def http_section(http: HttpRun) -> str:
    return f"""## HTTP numbers (retrieval API, same {http.chunks:,}-chunk collection)

A retrieval process (`python -m ragfleet.retrieval`, {http.workers} uvicorn workers, Redis for
L2) started on free ports over the data directory built above: **ready {http.start_s:.1f} s after
launch** (model load + index load in every worker). Load generator on the same machine:
{http.generator}; each scenario runs {http.seconds:g} s after a 1 s warm-up. Vector queries come
from the corpus's distribution; "uncached" splices a request number into every body (the last
vector component's decimals, or a word of the text), so every request misses both cache tiers.

{results_table(http.results)}

`bench_http.py --url URL` runs the same scenarios against a service that is already running.
"""


def write_report(
    measured: InProcess, info: dict[str, str], command: str, out: Path, http: HttpRun | None = None
) -> None:
    results, emb, spread, references = (
        measured.store, measured.embeddings, measured.spread, measured.references
    )  # fmt: skip
    png = out.with_suffix(".png")
    plot(results, emb, http, png)
    if http is not None:
        http_text = http_section(http)
    else:
        old = out.read_text() if out.exists() else ""
        http_text = HTTP_SECTION
        heading = re.search(r"^## HTTP", old, flags=re.MULTILINE)
        if heading:  # keep what the HTTP benchmark (bench_http.py) wrote: it appends its runs
            http_text = old[heading.start() :].rstrip() + "\n"
    qps_rows = "\n".join(
        f"| {name} | {v[1]:,.0f} | {v[2]:,.0f} | {spread[f'{name}|1']:.0%} / {spread[f'{name}|2']:.0%} |"
        for name, v in results["qps"].items()
    )

    def emb_row(label: str, key: str) -> str:
        return f"| {label} | {emb[key]:,.0f} | {f'{spread[key]:.0%}' if key in spread else 'one pass'} |"

    text = f"""# Retrieval benchmark

Written by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit `{info["commit"]}`.
Machine: {info["nproc"]} CPUs, {info["cpu"]}, Python {info["python"]}; CPU {BUSY_AT_START:.0%} busy
when it started, load average {info["load"]} at the end (the benchmark's own load: the load generator shares the machine).
{quiet_note(BUSY_AT_START)}

![in-process QPS, embedding throughput and HTTP QPS]({png.name})

## Corpus and index

- {results["n"]:,} chunks, texts of ~{results["text_chars_mean"]} characters (60-200 words, like
  256-token chunks), 384-d vectors drawn around 2,000 topics in a 48-d subspace plus noise
  (see `services/retrieval/bench/synthetic.py` for why not uniform random), metadata
  `lang`, `year`, `published`.
- Embedded store defaults: hnswlib HNSW cosine, M=16, ef_construction=100, ef_search=64.

| measure | value |
| --- | --- |
| build (upsert in batches of 5,000, WAL fsync per batch) | {results["build_s"]:.1f} s |
| snapshot on close | {results["snapshot_s"]:.1f} s |
| load on start (snapshot, BM25 postings read from it; median of 3) | {results["load_s"]:.1f} s |
| load on start with BM25 rebuilt from the texts (as before it was persisted) | {results["load_rebuild_bm25_s"]:.1f} s |
| on disk | {results["disk_mb"]:.0f} MB |
| **recall@10 vs exact search** | **{results["recall@10"]:.4f}** |
| exact numpy search (for scale) | {results["exact_qps"]:,.0f} q/s |

## Search QPS, in process (`search_sync`, top_k=10)

Every figure below is the **median of {ROUNDS} rounds**, each round running every figure's workload
for {ROUND_S:g} s (or one pass of it, if longer), one after the other, with the calibration reference
among them for as long (raw hnswlib search: {references[HNSW_QPS]:,.0f} q/s; raw ONNX queries:
{references[ONNX_TEXTS_PER_S]:,.0f} texts/s, both medians of their rounds); the spread is
(max - min) / median over the rounds: how much this machine drifted meanwhile.

| query | 1 thread | 2 threads | spread across rounds (1 / 2 threads) |
| --- | ---: | ---: | ---: |
{qps_rows}
| async `await store.search` (32 in flight, thread pool) | {results["async_qps"]:,.0f} | | {spread["async"]:.0%} |

Filtered searches: with at most 20,000 matches, an exact scan of just those chunks; with more
(and at least 10 % of the collection), an over-fetching unfiltered HNSW walk, post-filtered;
otherwise the HNSW walk with the filter inside it (docs/retrieval-index.md). Filter masks are
cached per index version, so only the first query with a new filter pays a pass over the
metadata. BM25 and hybrid queries are 2-5 words drawn from the corpus's Zipf vocabulary.

## Embedding throughput (all-MiniLM-L6-v2 int8 ONNX, onnxruntime, {info["nproc"]} intra-op threads)

| path | texts / s | spread across rounds |
| --- | ---: | ---: |
{emb_row("short queries, batch of 1 (one per call)", "query_single_per_s")}
{emb_row("short queries, batches of 8", "query_batch_8_per_s")}
{emb_row("short queries, batches of 32", "query_batch_32_per_s")}
{emb_row("short queries, all 256 in one call", "query_batched_per_s")}
{emb_row("short queries through `MicroBatcher` (64 concurrent)", "query_microbatched_per_s")}
{emb_row("chunk-sized passages (~256 tokens), 32 in one call", "passage_batched_per_s")}

{http_text}"""
    out.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "retrieval.md")
    parser.add_argument("--json", type=Path, help="also write the raw results here (for `make bench`)")
    args = parser.parse_args()
    command = "uv run python services/retrieval/bench/bench_store.py" + (
        f" --n {args.n}" if args.n != 100_000 else ""
    )
    with tempfile.TemporaryDirectory(prefix="ragfleet-bench-") as tmp:
        measured = asyncio.run(measure_in_process(args.n, args.queries, Path(tmp)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_report(measured, machine(), command, args.out)
    sys.stdout.write(f"wrote {args.out}\n")
    if args.json:
        args.json.write_text(json.dumps({**dataclasses.asdict(measured), "report": str(args.out)}))


if __name__ == "__main__":
    main()
