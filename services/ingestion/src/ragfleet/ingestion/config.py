from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from ragfleet.common.config import ServiceSettings
from ragfleet.common.embedding_providers import EmbeddingProviderSettings


class IngestionSettings(ServiceSettings, EmbeddingProviderSettings):
    """Settings of the ingestion API and worker; every variable is ``RAGFLEET_INGESTION_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="RAGFLEET_INGESTION_", extra="ignore", frozen=True)

    service_name: str = "ingestion"
    port: int = 8030
    retrieval_url: str = Field("http://127.0.0.1:8010", description="retrieval's internal API")

    # Celery
    broker_url: str | None = Field(None, description="Celery broker; the state Redis when unset")
    result_backend_url: str | None = Field(
        None, description="Celery result backend; the state Redis when unset"
    )
    queue_name: str = Field(
        "ingestion",
        description="the Celery queue (and Redis list) of the bulk lane; the small-document lane's is "
        "`{queue_name}.small`, the worker check's `{queue_name}.control`",
    )
    worker_concurrency: int = Field(2, ge=1, le=64, description="pool processes of the bulk lane")
    small_lane_max_chunks: int = Field(
        64,
        ge=0,
        description="a document estimated at this many chunks or fewer (its bytes / (chunk_size_chars - "
        "chunk_overlap_chars)) goes through the small-document lane, which long documents cannot fill; "
        "0: one lane for every document",
    )
    small_lane_concurrency: int = Field(
        1,
        ge=0,
        le=16,
        description="pool processes each worker keeps for the small-document lane only (a second Celery "
        "worker, a child of the first); 0: none, small documents then wait with the others",
    )
    worker_lane: Literal["bulk", "small"] = Field(
        "bulk",
        description="which lane this worker process serves: the bulk worker sets `small` in the "
        "environment of the small-lane worker it starts; never set by hand",
    )
    worker_max_tasks_per_child: int = Field(200, ge=1, description="recycle a worker child after N tasks")
    worker_max_memory_per_child_kb: int = Field(
        1_500_000, ge=10_000, description="recycle a worker child above this resident memory"
    )
    visibility_timeout_s: int | None = Field(
        None,
        ge=1,
        description="an unacknowledged task (its worker died) is delivered again after this long. "
        "Unset: derived from the per-document budget (the task time limit + 10 %, at least 60 s more), "
        "so a lost task waits minutes, not an hour",
    )
    reconcile_interval_s: float = Field(30.0, gt=0, description="how often the API looks for lost tasks")
    reconcile_after_s: float | None = Field(
        None,
        gt=0,
        description="a document silent this long has lost its task and is sent again "
        "(default: visibility_timeout_s + 2 restore intervals + 60 s, after any redelivery)",
    )
    max_resubmits: int = Field(
        3, ge=0, description="times a lost task is sent again before the document fails"
    )
    unacked_restore_interval_s: int = Field(
        10, ge=1, description="how often a worker sweeps for unacknowledged tasks to redeliver"
    )
    worker_check_timeout_s: float = Field(10.0, gt=0)
    worker_metrics_port: int = Field(
        9031, ge=0, le=65535, description="the worker's Prometheus endpoint; 0 turns it off"
    )

    # Limits (checked by the API before anything is queued)
    max_document_bytes: int = Field(20 * 1024 * 1024, ge=1, description="one document, raw bytes")
    max_request_bytes: int = Field(64 * 1024 * 1024, ge=1, description="one POST /v1/documents body")
    max_json_request_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1,
        description="one JSON POST /v1/documents body: one JSON value cannot be validated before its end, "
        "so it is held whole while it is parsed (with its parsed copy, about 3x this per upload); larger "
        "uploads go as multipart, which is streamed to staging (the lower of this and max_request_bytes "
        "applies)",
    )
    max_documents_per_request: int = Field(500, ge=1)
    stage_chunk_bytes: int = Field(
        256 * 1024,
        ge=4096,
        le=16 * 1024 * 1024,
        description="uploads are staged in the state Redis, and read back by the worker, in pieces of at "
        "most this size: the API holds about one piece and one network chunk per upload, never a whole "
        "document (staging.py)",
    )
    max_metadata_bytes: int = Field(
        8192,
        ge=2,
        description="a document's metadata, as JSON: it is kept on every chunk, so 8 KiB x 1000 chunks "
        "is the most one document can add to the index's memory this way",
    )
    max_metadata_keys: int = Field(64, ge=1, description="keys in one document's metadata")
    max_html_depth: int = Field(
        1000, ge=10, description="deeper HTML is refused: parsing cost grows with the square of depth"
    )
    max_pdf_pages: int = Field(2000, ge=1)

    # The work one document may cost (enforced by the worker)
    parse_time_base_s: float = Field(
        5.0, gt=0, description="parsing + chunking budget of any document, in a child process killed at it"
    )
    parse_time_per_mb_s: float = Field(3.0, ge=0, description="added to the parse budget per MiB of document")
    max_chunks_per_document: int = Field(
        1000,
        ge=1,
        description="more is a per-document failure (too_many_chunks): embedding is the slow part, "
        "~1-2 min per 1000 chunks on 2 cores, and a worker process is busy for all of it",
    )
    parse_memory_mb: int = Field(
        2048,
        ge=0,
        description="address-space cap of the parsing child (0: none); over it, too_large_to_parse",
    )
    embed_time_per_chunk_s: float = Field(
        0.2,
        gt=0,
        description="embedding + upsert time budgeted per chunk: ~0.1 s measured with the int8 MiniLM on "
        "2 shared cores, doubled for a busy machine",
    )
    task_time_limit_s: int | None = Field(
        None,
        ge=2,
        description="hard limit on one document's task (the pool process is killed and the document "
        "failed); must stay below visibility_timeout_s so a running task is never redelivered. "
        "Unset: the document budget (document_budget_s), or 90% of visibility_timeout_s if that is lower",
    )

    # Chunking and embedding
    # 600/90 measured best on both `make eval` sets (docs/eval.md): a 1000-character chunk often
    # passes MiniLM's 256-token window (13-33 % of chunks did), and the text past it is never embedded.
    chunk_size_chars: int = Field(600, ge=100, description="target chunk length")
    chunk_overlap_chars: int = Field(90, ge=0, description="text repeated from the previous chunk")
    embed_batch_size: int = Field(32, ge=1, le=1024)
    upsert_batch_size: int = Field(128, ge=1, le=4096)

    # Reliability
    task_max_retries: int = Field(5, ge=0, description="retries of a transient failure before dead-lettering")
    retry_backoff_s: float = Field(2.0, gt=0, description="first retry delay; doubles each retry")
    retry_backoff_max_s: float = Field(60.0, gt=0)
    max_worker_crashes: int = Field(
        3, ge=1, description="a document that killed this many workers is dead-lettered, not retried"
    )
    document_lock_s: int = Field(
        600, ge=1, description="one task at a time per document; a dead holder's lock expires after this"
    )
    job_ttl_s: int = Field(7 * 24 * 3600, ge=60, description="how long job status stays readable")
    payload_ttl_s: int = Field(
        2 * 24 * 3600, ge=60, description="how long staged document bytes wait for a worker"
    )
    dead_letter_max: int = Field(10_000, ge=1, description="dead-letter records kept (newest)")
    queue_depth_interval_s: float = Field(5.0, gt=0, description="how often the API samples the queue")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> IngestionSettings:
        if self.chunk_overlap_chars >= self.chunk_size_chars:
            raise ValueError("chunk_overlap_chars must be smaller than chunk_size_chars")
        return self

    @model_validator(mode="after")
    def _time_limit_below_visibility(self) -> IngestionSettings:
        if self.task_time_limit_s is not None and self.task_time_limit_s >= self.visibility_timeout:
            raise ValueError(
                "task_time_limit_s must be below visibility_timeout_s: a task still running when its "
                "visibility timeout expires is delivered again, to another worker"
            )
        return self

    @property
    def document_budget_s(self) -> int:
        """The longest one document may take: the parse budget of the largest document allowed, its
        most chunks embedded and written, and 30 s for Redis and retrieval round trips."""
        parse = self.parse_budget_s(self.max_document_bytes)
        return math.ceil(parse + self.embed_time_per_chunk_s * self.max_chunks_per_document + 30)

    @property
    def hard_time_limit_s(self) -> int:
        """The Celery hard time limit of a document's task."""
        if self.task_time_limit_s is not None:
            return self.task_time_limit_s
        if self.visibility_timeout_s is not None:  # a short timeout chosen (tests, chaos) bounds it
            return min(self.document_budget_s, max(2, int(self.visibility_timeout_s * 0.9)))
        return self.document_budget_s

    @property
    def visibility_timeout(self) -> int:
        """When the broker delivers an unacknowledged task again: only after its time limit has
        surely ended it (a running task delivered twice would run twice at once)."""
        if self.visibility_timeout_s is not None:
            return self.visibility_timeout_s
        return self.hard_time_limit_s + max(60, self.hard_time_limit_s // 10)

    @property
    def soft_time_limit_s(self) -> int:
        """Raised inside the task first, so it can record the failure itself before the kill."""
        return max(1, self.hard_time_limit_s - max(1, min(30, self.hard_time_limit_s // 10)))

    def parse_budget_s(self, size_bytes: int) -> float:
        return self.parse_time_base_s + self.parse_time_per_mb_s * size_bytes / (1024 * 1024)

    @property
    def small_queue(self) -> str:
        """The small-document lane's queue: consumed by every worker, and alone by its reserved processes."""
        return f"{self.queue_name}.small"

    @property
    def document_queues(self) -> tuple[str, str]:
        """Every queue a document's task can wait in (queue depth, reconciliation)."""
        return (self.queue_name, self.small_queue)

    def estimated_chunks(self, size_bytes: int) -> int:
        return math.ceil(size_bytes / (self.chunk_size_chars - self.chunk_overlap_chars))

    def queue_for(self, size_bytes: int) -> str:
        """The lane a document of this size goes to: by its bytes, an estimate the worker checks once
        the document is parsed (a small-lane process moves a document that makes more texts to embed
        than the lane takes to the bulk queue)."""
        if self.estimated_chunks(size_bytes) <= self.small_lane_max_chunks:
            return self.small_queue
        return self.queue_name

    @property
    def control_queue(self) -> str:
        """Where the worker check goes: never behind a backlog of documents."""
        return f"{self.queue_name}.control"

    # Everything ingestion keeps in Redis must survive (queued tasks, job records, staged uploads):
    # the broker, the results and the jobs all live on the state Redis.
    @property
    def reconcile_after(self) -> float:
        return self.reconcile_after_s or self.visibility_timeout + 2 * self.unacked_restore_interval_s + 60

    @property
    def broker(self) -> str:
        return self.broker_url or self.state_redis

    @property
    def result_backend(self) -> str:
        return self.result_backend_url or self.state_redis
