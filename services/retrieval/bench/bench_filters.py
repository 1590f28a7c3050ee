"""Per-request cost of metadata filters in the embedded store at 100k chunks: the metadata index
(store/metadata_index.py) against the linear matcher it replaced (one `MetadataFilter.matches`
per chunk, kept here as the reference), both against an unfiltered search in the same run.

Every request carries a filter the store has not seen (the mask cache is off), the case that
cost ~2 s per request before. CPU time is the calling thread's (`time.thread_time`), so other
jobs on a shared machine stretch wall time but not these figures much. Writes the report to
docs/benchmarks/retrieval-filters.md.

    uv run python services/retrieval/bench/bench_filters.py [--n 100000] [--queries 200] [--linear-queries 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_store import BUSY_AT_START, ROOT, machine, quiet_note
from synthetic import clustered_vectors, texts

from ragfleet.retrieval.store.base import Chunk, MetadataFilter, SearchQuery
from ragfleet.retrieval.store.collection_index import CollectionIndex
from ragfleet.retrieval.store.index_settings import IndexSettings
from ragfleet.retrieval.store.metadata_index import MetadataIndex

DIM = 384
LANGS = ("en", "fr", "de")
CHUNKS_PER_DOC = 8


def metadata(i: int) -> dict[str, Any]:
    """What ingestion stores on a chunk (its user metadata, title, heading, format, hash)."""
    doc = i // CHUNKS_PER_DOC
    return {
        "lang": LANGS[doc % 3],
        "team": f"team-{doc % 50}",
        "year": 1990 + doc % 35,
        "published": f"20{10 + doc % 15}-{1 + doc % 12:02d}-{1 + doc % 28:02d}T08:00:00Z",
        "source": f"docs/page-{doc}.md",
        "title": f"Page {doc}",
        "heading": f"Section {i % CHUNKS_PER_DOC}",
        "format": "markdown",
        "_content_hash": f"{doc:016x}",
    }


# Each request's filter differs from the others (new values), as when clients filter by user input.
SCENARIOS: dict[str, Callable[[int], dict[str, Any]]] = {
    "eq, 1/3 match (lang)": lambda q: {"lang": LANGS[q % 3]},
    "eq, one document (source)": lambda q: {"source": f"docs/page-{(q * 7919) % 12_500}.md"},
    "in, 5 values (team, 10 %)": lambda q: {"team": {"in": [f"team-{(q + k) % 50}" for k in range(5)]}},
    "number range (year, ~14 %)": lambda q: {"year": {"gte": 1990 + q % 30, "lt": 1995 + q % 30}},
    "date range (published, ~2 %)": lambda q: {
        "published": {"gte": f"20{10 + q % 15}-03-01", "lt": f"20{10 + q % 15}-06-01T00:00:00+02:00"}
    },
    "3 fields (lang + year range + team in)": lambda q: {
        "lang": LANGS[q % 3],
        "year": {"gte": 1990 + q % 20},
        "team": {"in": [f"team-{(q + k) % 50}" for k in range(10)]},
    },
}


def linear_mask(index: CollectionIndex, metadata_filter: MetadataFilter | None) -> np.ndarray | None:
    """The filter evaluation the metadata index replaced, verbatim (without its mask cache)."""
    if not metadata_filter:
        return None
    mask = np.zeros(len(index._chunk_ids), dtype=bool)
    for label, meta in enumerate(index._metadata):
        if meta is not None and metadata_filter.matches(meta):
            mask[label] = True
    return mask


def cpu_ms(fn: Callable[[int], Any], count: int) -> list[float]:
    times = []
    for q in range(count):
        started = time.thread_time()
        fn(q)
        times.append((time.thread_time() - started) * 1000)
    return times


def build(directory: Path, n: int) -> tuple[CollectionIndex, float]:
    vectors = clustered_vectors(n, seed=1)
    bodies = texts(n, seed=1, min_words=20, max_words=40)
    index = CollectionIndex.open(directory, DIM, IndexSettings(filter_cache_size=0))
    started = time.perf_counter()
    for start in range(0, n, 5000):
        index.upsert(
            [
                Chunk(
                    id=f"c{i}",
                    document_id=f"d{i // CHUNKS_PER_DOC}",
                    text=bodies[i],
                    vector=vectors[i],
                    position=i % CHUNKS_PER_DOC,
                    metadata=metadata(i),
                )
                for i in range(start, min(n, start + 5000))
            ]
        )
    return index, time.perf_counter() - started


def index_memory(n: int) -> float:
    """MB that Python allocates for the metadata index of n chunks (tracemalloc)."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = MetadataIndex()
    for i in range(n):
        index.add(i, metadata(i))
    index.compact(force=True)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del index
    return (after - before) / 1e6


def scenario(
    index: CollectionIndex,
    name: str,
    make: Callable[[int], dict[str, Any]],
    search: Callable[[int, dict[str, Any] | None], None],
    args: argparse.Namespace,
) -> dict[str, float]:
    indexed_mask = index._filter_mask
    parsed = [SearchQuery(vector=[1.0] * DIM, filters=make(q)).metadata_filter for q in range(args.queries)]
    row = {
        "matches": statistics.median(int(indexed_mask(f).sum()) for f in parsed[:20]),  # type: ignore[union-attr]
        "index_mask_ms": statistics.median(cpu_ms(lambda q: indexed_mask(parsed[q]), args.queries)),
        "index_search_ms": statistics.median(cpu_ms(lambda q: search(q, make(q)), args.queries)),
    }
    for f in parsed[: args.linear_queries]:  # the same answer, the old way
        assert np.array_equal(linear_mask(index, f), indexed_mask(f)), name  # type: ignore[arg-type]
    index._filter_mask = lambda f: linear_mask(index, f)  # type: ignore[method-assign]
    try:
        row["linear_search_ms"] = statistics.median(cpu_ms(lambda q: search(q, make(q)), args.linear_queries))
    finally:
        del index._filter_mask  # back to the class's method (the index)
    return row


def run(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    index, build_s = build(directory, args.n)
    index.close()
    started = time.perf_counter()
    index = CollectionIndex.open(directory, DIM, IndexSettings(filter_cache_size=0))
    load_s = time.perf_counter() - started
    queries = clustered_vectors(args.queries, seed=2)

    def search(q: int, filters: dict[str, Any] | None) -> None:
        index.search(SearchQuery(vector=queries[q % len(queries)], top_k=10, filters=filters))

    for q in range(20):  # warm up numpy, hnswlib and the caches of the metadata index
        search(q, None)
    results: dict[str, Any] = {
        "n": args.n,
        "build_s": build_s,
        "load_s": load_s,
        "unfiltered_ms": statistics.median(cpu_ms(lambda q: search(q, None), args.queries)),
        "index_mb": index_memory(args.n),
        "scenarios": {},
    }
    for name, make in SCENARIOS.items():
        results["scenarios"][name] = scenario(index, name, make, search, args)
        sys.stdout.write(f"{name}: {results['scenarios'][name]}\n")
    index.close()
    return results


def report(results: dict[str, Any], command: str) -> str:
    info = machine()
    base = results["unfiltered_ms"]
    rows = "\n".join(
        f"| {name} | {r['matches']:,.0f} | {r['index_mask_ms']:.3f} | {r['index_search_ms']:.2f} "
        f"({r['index_search_ms'] / base:.1f}x) | {r['linear_search_ms']:,.0f} ({r['linear_search_ms'] / base:,.0f}x) "
        f"| {r['linear_search_ms'] / r['index_search_ms']:,.0f}x |"
        for name, r in results["scenarios"].items()
    )
    return f"""# Metadata filters in the embedded store: per-request cost

Written by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit `{info["commit"]}`.
Machine: {info["nproc"]} CPUs, {info["cpu"]}, Python {info["python"]}; CPU {BUSY_AT_START:.0%} busy
when it started, load average {info["load"]} at the end.
{quiet_note(BUSY_AT_START)}

{results["n"]:,} chunks (384-d clustered vectors, {CHUNKS_PER_DOC} chunks per document), each with the
metadata ingestion stores (`lang`, `team`, `year`, `published`, `source`, `title`, `heading`,
`format`, `_content_hash`). Vector search, top_k=10, one thread. Every request has a filter the
store has not seen before (the mask cache is off). Figures are the median CPU time of the calling
thread per request; the ratio in brackets is against an **unfiltered search measured in the same
run: {base:.2f} ms**.

| filter | matching chunks | index: filter only (ms) | index: whole search (ms) | linear matcher: whole search (ms) | linear / index |
| --- | ---: | ---: | ---: | ---: | ---: |
{rows}

- "index": `store/metadata_index.py` (value → labels for eq/in, sorted arrays for ranges);
  "linear matcher": the code it replaced, one `MetadataFilter.matches` per chunk (in this
  script as the reference; both give the same masks, which the script checks).
- The whole-search figure includes the search strategy the mask picks (an exact scan of up to
  20,000 matches, or an HNSW walk): a filter matching many chunks costs more than the lookup.
- Build (upserts of 5,000): {results["build_s"]:.1f} s; load from the snapshot: {results["load_s"]:.1f} s
  (both include the metadata index); the index's own memory: {results["index_mb"]:.0f} MB (tracemalloc).
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--linear-queries", type=int, default=5, help="the linear matcher takes ~1-2 s each")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "retrieval-filters.md")
    args = parser.parse_args()
    command = "uv run python services/retrieval/bench/bench_filters.py" + (
        f" --n {args.n}" if args.n != 100_000 else ""
    )
    with tempfile.TemporaryDirectory(prefix="ragfleet-bench-filters-") as tmp:
        results = run(args, Path(tmp))
    args.out.write_text(report(results, command))
    sys.stdout.write(f"wrote {args.out}\n")


if __name__ == "__main__":
    main()
