"""A small corpus on the query pool's topics, for a stack that has none loaded.

``make run`` loads the project's sample corpus; a bare stack (the smoke test, a fresh kind cluster)
has an empty ``default`` collection, and searching it answers 404. ``seed`` writes these passages
through retrieval's internal upsert (retrieval embeds them), the same call the ingestion worker makes.
"""

from __future__ import annotations

import httpx

from ragfleet.common.contracts import TENANT_HEADER

PASSAGES: dict[str, str] = {
    "deploy": "Deploy ragfleet on Kubernetes with the Helm chart: helm install ragfleet charts/ragfleet. "
    "Every service gets probes, resource requests and limits, and a horizontal pod autoscaler.",
    "rag": "Retrieval augmented generation answers a question from passages retrieved from your own "
    "documents: the gateway searches, builds a prompt with the sources and streams the model's answer.",
    "cache": "The two-tier cache keeps an in-process LRU (L1) in front of Redis (L2). Ingestion bumps the "
    "collection version so stale entries are never read; pub/sub tells replicas to drop their L1.",
    "keys": "Create an API key with python -m ragfleet.gateway.keys create --tenant acme --collections '*'. "
    "Send it as Authorization: Bearer <key>. Rate limits apply per key.",
    "search": "Vector search embeds the query with MiniLM and walks an HNSW graph; BM25 scores terms; "
    "hybrid search fuses both with relative-score fusion or reciprocal rank fusion, weighted by alpha.",
    "ingest": "Upload a document with POST /v1/documents; the API answers 202 with a job id. The Celery "
    "worker parses, chunks, embeds and upserts it, idempotent by content hash, with acks late.",
    "chat": "Chat over REST, server-sent events or WebSocket. Streams can be resumed after a reconnect "
    "with Last-Event-ID. Conversation memory keeps a sliding window of recent messages.",
    "llm": "llm-proxy speaks the OpenAI API in front of any compatible upstream, with retries, backoff "
    "honouring Retry-After, a circuit breaker and fallback models. The extractive model needs no LLM.",
    "observe": "Every service exports Prometheus metrics named ragfleet_*, JSON logs with trace ids and "
    "OpenTelemetry traces propagated with W3C traceparent and baggage. Load tests are marked synthetic.",
    "local": "Run ragfleet on one machine with make run: Redis, every service, a Celery worker and NGINX "
    "with cookie affinity start on loopback; make test runs the tests.",
    "loadtest": "Load-test ragfleet with Locust: make loadtest runs a scenario headless and writes a report "
    "with p95 latency, queries per second, the cache hit rate and the gates' verdicts.",
    "tenancy": "A tenant owns collections; API keys are bound to a tenant and its collections, and cache "
    "entries are scoped by tenant so nothing leaks between tenants.",
}


def seed(
    retrieval_url: str, collection: str = "default", tenant: str = "default", timeout_s: float = 120
) -> int:
    """Upsert the passages (replacing earlier copies); returns the number of chunks written."""
    chunks = [
        {
            "id": f"loadtest-{topic}:0",
            "document_id": f"loadtest-{topic}",
            "text": text,
            "position": 0,
            "metadata": {"content_type": "text/markdown", "topic": topic, "source": "ragfleet-loadtests"},
        }
        for topic, text in PASSAGES.items()
    ]
    response = httpx.post(
        f"{retrieval_url.rstrip('/')}/internal/v1/collections/{collection}/upsert",
        json={"chunks": chunks},
        headers={TENANT_HEADER: tenant},
        timeout=timeout_s,
    )
    response.raise_for_status()
    return int(response.json()["written"])
