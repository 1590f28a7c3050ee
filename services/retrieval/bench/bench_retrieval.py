"""`make bench-retrieval`: the whole retrieval benchmark in one command, written to
docs/benchmarks/retrieval.md (+ retrieval.png).

1. In process (bench_store.py): builds >= 100k generated chunks of realistic sizes in a temporary
   data directory; build, snapshot and load times (BM25 from the snapshot vs rebuilt); recall@10
   against exact search; vector, filtered, BM25 and hybrid QPS; raw embedding throughput at
   batch sizes 1, 8 and 32.
2. Over HTTP (bench_http.py): starts its own Redis and `python -m ragfleet.retrieval` on free ports
   over that data directory (a stack running on the usual ports is left alone), then measures
   vector and text queries, cached and uncached, with wrk when it is installed.

    uv run python services/retrieval/bench/bench_retrieval.py [--n 100000] [--seconds 10] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_http import HttpRun, load_generator, run_scenarios, scenarios
from bench_store import COLLECTION, ROOT, TENANT, machine, measure_in_process, write_report
from synthetic import clustered_vectors, texts

from ragfleet.devstack.processes import free_port, start_redis, start_service


def bench_http(data_dir: Path, work_dir: Path, args: argparse.Namespace) -> HttpRun:
    redis_port, port = free_port(), free_port()
    redis = start_redis(redis_port, work_dir / "redis")
    service = None
    try:
        started = time.perf_counter()
        service = start_service(
            "retrieval",
            "ragfleet.retrieval",
            port=port,
            env={
                "RAGFLEET_RETRIEVAL_PORT": str(port),
                "RAGFLEET_RETRIEVAL_DATA_DIR": str(data_dir),
                "RAGFLEET_RETRIEVAL_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                "RAGFLEET_RETRIEVAL_WORKERS": str(args.workers),
                "RAGFLEET_RETRIEVAL_ACCESS_LOG": "false",
                "RAGFLEET_RETRIEVAL_LOG_LEVEL": "WARNING",
            },
            log_dir=work_dir / "logs",
            timeout_s=300,
        )
        start_s = time.perf_counter() - started
        vectors = clustered_vectors(500, seed=2)  # the in-process queries' distribution
        words = texts(500, seed=3, min_words=2, max_words=5)
        results = run_scenarios(
            f"http://127.0.0.1:{port}",
            scenarios(COLLECTION, vectors, words),
            seconds=args.seconds,
            concurrency=args.concurrency,
            tenant=TENANT,
        )
    finally:
        if service is not None:
            service.stop()
        redis.stop()
    return HttpRun(
        results=results,
        generator=load_generator(args.concurrency),
        workers=args.workers,
        seconds=args.seconds,
        chunks=args.n,
        start_s=start_s,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="chunks in the collection")
    parser.add_argument("--queries", type=int, default=1000, help="queries per in-process measure")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each HTTP scenario")
    parser.add_argument("--concurrency", type=int, default=32, help="HTTP connections")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers of the retrieval process")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "retrieval.md")
    args = parser.parse_args()
    options = " ".join(sys.argv[1:])
    command = "make bench-retrieval" + (f" BENCH_RETRIEVAL_ARGS='{options}'" if options else "")
    with tempfile.TemporaryDirectory(prefix="ragfleet-bench-retrieval-") as tmp:
        data_dir = Path(tmp) / "data"
        sys.stdout.write(f"building and measuring {args.n:,} chunks in process, then the embedder...\n")
        measured = asyncio.run(measure_in_process(args.n, args.queries, data_dir))
        sys.stdout.write("HTTP...\n")
        http = bench_http(data_dir, Path(tmp), args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_report(measured, machine(), command, args.out, http)
    sys.stdout.write(f"wrote {args.out}\n")


if __name__ == "__main__":
    main()
