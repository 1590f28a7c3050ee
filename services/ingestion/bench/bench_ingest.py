"""Ingestion throughput: chunks per second end to end against raw embedding throughput.

    uv run python services/ingestion/bench/bench_ingest.py [--documents 200] [--workers 1]

Starts a real Redis, retrieval (embedded index), the ingestion API and a Celery worker on
loopback, posts synthetic documents, and times from the first POST to the last job finished.
The raw figure embeds the very same chunk texts in-process with ``Embedder`` and nothing else,
so the ratio is what the pipeline (parsing, chunking, Redis, Celery, HTTP, index writes) costs.
Writes docs/benchmarks/ingestion.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx

from ragfleet.common.embeddings import Embedder
from ragfleet.devstack.processes import (
    ManagedProcess,
    free_port,
    python_module,
    start_redis,
    start_service,
    wait_until,
)
from ragfleet.ingestion.chunking import chunk_sections
from ragfleet.ingestion.config import IngestionSettings
from ragfleet.ingestion.parsers import DocumentFormat, parse

log = logging.getLogger("bench_ingest")
REPORT = Path(__file__).resolve().parents[3] / "docs" / "benchmarks" / "ingestion.md"
WORDS = [
    "cluster",
    "replica",
    "index",
    "vector",
    "cache",
    "tenant",
    "query",
    "latency",
    "worker",
    "queue",
    "document",
    "chunk",
    "embedding",
    "retrieval",
    "gateway",
    "redis",
    "kubernetes",
    "helm",
    "trace",
    "metric",
    "budget",
    "search",
    "ranking",
    "fusion",
    "token",
    "stream",
]


def synthetic_document(rng: random.Random, paragraphs: int) -> str:
    out = []
    for p in range(paragraphs):
        out.append(f"## Section {p}\n")
        for _ in range(6):
            words = rng.choices(WORDS, k=rng.randint(8, 20))
            out.append(" ".join(words).capitalize() + ".")
        out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--paragraphs", type=int, default=6, help="per document (about 1 KB each)")
    parser.add_argument("--workers", type=int, default=1, help="worker pool processes (concurrency)")
    parser.add_argument("--batch", type=int, default=50, help="documents per POST")
    parser.add_argument("--out", type=Path, default=REPORT, help="the Markdown report")
    parser.add_argument("--json", type=Path, help="also write the figures here (for `make bench`)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    rng = random.Random(7)
    texts = [synthetic_document(rng, args.paragraphs) for _ in range(args.documents)]
    settings = IngestionSettings()
    chunk_texts = [
        chunk.text
        for text in texts
        for chunk in chunk_sections(
            parse(text.encode(), DocumentFormat.MARKDOWN),
            size=settings.chunk_size_chars,
            overlap=settings.chunk_overlap_chars,
        )
    ]

    embedder = Embedder(batch_size=settings.embed_batch_size)
    embedder.embed(chunk_texts[:32])  # load the model and warm up
    started = time.perf_counter()
    embedder.embed(chunk_texts)
    raw_s = time.perf_counter() - started
    raw_rate = len(chunk_texts) / raw_s
    log.info("raw embedding: %d chunks in %.2fs = %.1f chunks/s", len(chunk_texts), raw_s, raw_rate)

    work = Path(tempfile.mkdtemp(prefix="ragfleet-bench-ingest-"))
    processes: list[ManagedProcess] = []
    try:
        redis_port = free_port()
        processes.append(start_redis(redis_port, work / "redis"))
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        retrieval_port, api_port = free_port(), free_port()
        processes.append(
            start_service(
                "retrieval",
                "ragfleet.retrieval",
                port=retrieval_port,
                env={
                    "RAGFLEET_RETRIEVAL_PORT": str(retrieval_port),
                    "RAGFLEET_RETRIEVAL_REDIS_URL": redis_url,
                    "RAGFLEET_RETRIEVAL_DATA_DIR": str(work / "index"),
                    "RAGFLEET_RETRIEVAL_ACCESS_LOG": "false",
                    "RAGFLEET_RETRIEVAL_EMBED_THREADS": "1",
                },
                log_dir=work,
            )
        )
        env = {
            "RAGFLEET_INGESTION_PORT": str(api_port),
            "RAGFLEET_INGESTION_REDIS_URL": redis_url,
            "RAGFLEET_INGESTION_RETRIEVAL_URL": f"http://127.0.0.1:{retrieval_port}",
            "RAGFLEET_INGESTION_ACCESS_LOG": "false",
            "RAGFLEET_INGESTION_LOG_LEVEL": "WARNING",
            "RAGFLEET_INGESTION_WORKER_CONCURRENCY": str(args.workers),
            "RAGFLEET_INGESTION_WORKER_METRICS_PORT": "0",
        }
        processes.append(
            start_service("ingestion", "ragfleet.ingestion", port=api_port, env=env, log_dir=work)
        )
        worker = ManagedProcess(
            "worker", python_module("ragfleet.ingestion.worker"), work / "worker.log", env=env
        )
        processes.append(worker.start())
        api = f"http://127.0.0.1:{api_port}"
        wait_until(
            lambda: httpx.post(f"{api}/v1/worker-check", timeout=15).status_code == 200,
            timeout_s=60,
            what="worker",
            process=worker,
        )
        # Warm the worker's model outside the measurement.
        with httpx.Client(base_url=api, timeout=60) as client:
            warm = client.post("/v1/documents", json={"documents": [{"id": "warm", "text": texts[0]}]}).json()
            while client.get(f"/v1/jobs/{warm['job_id']}").json()["state"] not in ("succeeded", "failed"):
                time.sleep(0.1)

            started = time.perf_counter()
            job_ids = []
            for start in range(0, len(texts), args.batch):
                documents = [
                    {"id": f"bench-{i}", "text": texts[i], "format": "markdown"}
                    for i in range(start, min(start + args.batch, len(texts)))
                ]
                job_ids.append(client.post("/v1/documents", json={"documents": documents}).json()["job_id"])
            chunks = 0
            for job_id in job_ids:
                while (job := client.get(f"/v1/jobs/{job_id}").json())["state"] not in (
                    "succeeded",
                    "failed",
                ):
                    time.sleep(0.1)
                chunks += job["chunks"]
            e2e_s = time.perf_counter() - started
    finally:
        for process in reversed(processes):
            process.stop()
    e2e_rate = chunks / e2e_s
    log.info("end to end: %d chunks in %.2fs = %.1f chunks/s", chunks, e2e_s, e2e_rate)

    command = "uv run python services/ingestion/bench/bench_ingest.py " + " ".join(sys.argv[1:])
    if args.json:
        figures = {
            "raw": {"chunks": len(chunk_texts), "seconds": raw_s, "per_s": raw_rate},
            "end_to_end": {"chunks": chunks, "seconds": e2e_s, "per_s": e2e_rate},
            "documents": args.documents,
            "workers": args.workers,
        }
        args.json.write_text(json.dumps(figures))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        f"""# Ingestion throughput

Chunks per second from the first `POST /v1/documents` to the last job finished (API → Redis →
Celery worker: parse, chunk, embed, upsert through retrieval's internal API into the embedded
index), against the raw embedding throughput of the same chunk texts in one process.

| measure | chunks | seconds | chunks/s |
| --- | ---: | ---: | ---: |
| raw embedding (`Embedder.embed`, in-process, all cores) | {len(chunk_texts)} | {raw_s:.2f} | {raw_rate:.1f} |
| end to end ({args.workers} worker process{"es" if args.workers > 1 else ""}) | {chunks} | {e2e_s:.2f} | {e2e_rate:.1f} |

End to end reaches **{100 * e2e_rate / raw_rate:.0f}%** of raw embedding throughput.

- Workload: {args.documents} synthetic Markdown documents of {args.paragraphs} sections (~{sum(map(len, texts)) // len(texts)} bytes each),
  posted {args.batch} per request; chunk size {settings.chunk_size_chars}, overlap {settings.chunk_overlap_chars},
  embedding batch {settings.embed_batch_size}.
- Machine: {platform.machine()}, {os.cpu_count()} vCPU, Python {platform.python_version()}, {platform.platform()}.
- Date: {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}.
- Command: `{command}`

Caveat: measured while other engineers ran builds and tests on the same 2 cores, so both figures
are noisy and the ratio is the more meaningful number. The worker runs the model in the same
cores as retrieval and Redis, as it would on a one-box install; on a cluster the worker pods have
their own cores and scale out on `ragfleet_ingestion_queue_depth`.
"""
    )
    log.info("report written to %s", args.out)


if __name__ == "__main__":
    main()
