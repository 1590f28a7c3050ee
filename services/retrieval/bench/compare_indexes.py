"""hnswlib vs usearch on this machine: build time, QPS, recall@10, filtered search, delete, persistence.

Run: uv run python services/retrieval/bench/compare_indexes.py [--n 100000]
Prints one JSON object; docs/retrieval-index.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import hnswlib
import numpy as np
from usearch.index import Index as UsearchIndex

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import DIM, clustered_vectors, exact_top_k, recall_at_k


def qps(fn, queries: np.ndarray) -> float:
    start = time.perf_counter()
    for q in queries:
        fn(q)
    return len(queries) / (time.perf_counter() - start)


SWEEP = (16, 32, 64, 128)


def bench_hnswlib(data: np.ndarray, queries: np.ndarray, truth: np.ndarray, ef: int) -> dict:
    n = len(data)
    index = hnswlib.Index(space="cosine", dim=DIM)
    index.init_index(max_elements=n, M=16, ef_construction=100)
    start = time.perf_counter()
    index.add_items(data, np.arange(n), num_threads=os.cpu_count() or 1)
    build = time.perf_counter() - start
    result: dict = {"params": f"M=16 ef_construction=100, filtered at ef={ef}", "build_s": round(build, 1)}
    for sweep_ef in SWEEP:
        index.set_ef(sweep_ef)
        found = index.knn_query(queries, k=10, num_threads=1)[0]
        result[f"ef={sweep_ef}"] = {
            "recall@10": round(recall_at_k(found, truth), 4),
            "qps_1thread": round(qps(lambda q: index.knn_query(q, k=10, num_threads=1), queries)),
        }
    index.set_ef(ef)
    # Filtered search: the predicate runs inside the graph walk, so results stay top-k.
    allowed = np.zeros(n, dtype=bool)
    allowed[::10] = True  # 10 % of the corpus passes
    subset = np.flatnonzero(allowed)
    sub_truth = subset[exact_top_k(data[subset], queries, 10)]
    pred = lambda label: bool(allowed[label])  # noqa: E731
    found_f = np.stack([index.knn_query(q, k=10, num_threads=1, filter=pred)[0][0] for q in queries])
    result["filtered_10pct_recall@10"] = round(recall_at_k(found_f, sub_truth), 4)
    result["filtered_10pct_qps"] = round(
        qps(lambda q: index.knn_query(q, k=10, num_threads=1, filter=pred), queries)
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "index.bin")
        start = time.perf_counter()
        index.save_index(path)
        result["save_s"] = round(time.perf_counter() - start, 2)
        result["file_mb"] = round(os.path.getsize(path) / 1e6, 1)
        start = time.perf_counter()
        loaded = hnswlib.Index(space="cosine", dim=DIM)
        loaded.load_index(path, max_elements=n)
        result["load_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    for label in range(0, n, 100):
        index.mark_deleted(label)
    result["delete_1k_s"] = round(time.perf_counter() - start, 3)
    result["delete"] = "mark_deleted (tombstone; the slot is reused by a later add of the same label)"
    return result


def bench_usearch(data: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict:
    n = len(data)
    index = UsearchIndex(ndim=DIM, metric="cos", dtype="f32")
    start = time.perf_counter()
    index.add(np.arange(n), data, threads=os.cpu_count() or 1)
    build = time.perf_counter() - start
    result: dict = {
        "params": f"defaults: connectivity={index.connectivity} expansion_add={index.expansion_add} "
        f"expansion_search={index.expansion_search}",
        "build_s": round(build, 1),
        "filtered": "no predicate in the Python API: post-filter an over-fetch, or exact scan",
    }
    for expansion in SWEEP:
        index.expansion_search = expansion
        found = index.search(queries, 10, threads=1).keys
        result[f"expansion_search={expansion}"] = {
            "recall@10": round(recall_at_k(found, truth), 4),
            "qps_1thread": round(qps(lambda q: index.search(q, 10, threads=1), queries)),
        }
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "index.usearch")
        start = time.perf_counter()
        index.save(path)
        result["save_s"] = round(time.perf_counter() - start, 2)
        result["file_mb"] = round(os.path.getsize(path) / 1e6, 1)
        start = time.perf_counter()
        loaded = UsearchIndex(ndim=DIM, metric="cos", dtype="f32")
        loaded.load(path)
        result["load_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    index.remove(np.arange(0, n, 100))
    result["delete_1k_s"] = round(time.perf_counter() - start, 3)
    result["delete"] = "remove (real removal)"
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    data = clustered_vectors(args.n, seed=1)
    queries = clustered_vectors(args.queries, seed=2)
    truth = exact_top_k(data, queries, 10)
    start = time.perf_counter()
    for q in queries[:200]:
        np.argpartition(-(data @ q), 10)[:10]
    exact_qps = 200 / (time.perf_counter() - start)
    report = {
        "n": args.n,
        "dim": DIM,
        "nproc": os.cpu_count(),
        "exact_numpy_qps": round(exact_qps),
        "load_average_before": os.getloadavg(),
        "hnswlib": bench_hnswlib(data, queries, truth, ef=64),
        "usearch": bench_usearch(data, queries, truth),
    }
    report["load_average_after"] = os.getloadavg()
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
