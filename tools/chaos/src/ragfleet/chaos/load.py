"""A steady, light, mixed load on the public API while faults are injected.

One loop per kind of request (searches, REST chat, SSE chat, small ingests), each with its own
client and a pause between calls: a few requests per second in all, enough to see every fault
from a client's side without drowning two shared cores. Each loop records every outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from ragfleet.chaos.client import ApiClient
from ragfleet.chaos.verdicts import Outcome

QUERIES = (
    "how many vacation days do employees get",
    "how often are API keys rotated",
    "when is the office closed",
    "what does the retrieval service cache",
    "how are documents ingested",
    "what happens when redis is down",
)
# What the load's searches and chats find, in the chaos tenant's ``default`` collection.
SEED_DOCUMENTS = (
    (
        "handbook",
        "Employees get twenty-five vacation days per year. The office is closed on public holidays.",
    ),
    ("security", "API keys are rotated every ninety days. Lost keys must be revoked at once."),
    ("platform", "The retrieval service caches search results in process and in Redis."),
    ("ingestion", "Documents are ingested by a Celery worker: parsed, chunked, embedded and upserted."),
    ("outages", "When Redis is down, searches are served from the in-process cache and the index."),
)
LOAD_KINDS = ("search", "chat", "chat-sse", "ingest")
LOAD_COLLECTION = "chaos-load"


@dataclass
class LoadDriver:
    base_url: str
    api_key: str
    pause_s: float = 0.25
    ingest_pause_s: float = 1.0
    outcomes: list[Outcome] = field(default_factory=list)
    accepted_documents: list[tuple[float, str]] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _clients: list[ApiClient] = field(default_factory=list)

    def _client(self) -> ApiClient:
        client = ApiClient(self.base_url, self.api_key)
        self._clients.append(client)
        return client

    async def _search_loop(self) -> None:
        client = self._client()
        for query in itertools.cycle(QUERIES):
            outcome, _ = await client.search(query)
            self.outcomes.append(outcome)
            await asyncio.sleep(self.pause_s)

    async def _chat_loop(self) -> None:
        client = self._client()
        for query in itertools.cycle(QUERIES):
            outcome, _ = await client.chat(query + "?")
            self.outcomes.append(outcome)
            await asyncio.sleep(self.pause_s * 2)

    async def _sse_loop(self) -> None:
        client = self._client()
        for query in itertools.cycle(QUERIES):
            result = await client.chat_stream(query + "?")
            self.outcomes.append(result.outcome)
            await asyncio.sleep(self.pause_s * 2)

    async def _ingest_loop(self) -> None:
        """One small new document at a time; every one accepted (202) must end up indexed."""
        client = self._client()
        for n in itertools.count():
            document_id = f"load-{uuid.uuid4().hex[:10]}"
            text = f"Load document {n}. It exists to prove that accepted documents are never lost."
            outcome, _ = await client.ingest(LOAD_COLLECTION, [{"id": document_id, "text": text}])
            self.outcomes.append(outcome)
            if outcome.status == "202":
                self.accepted_documents.append((outcome.started, document_id))
            await asyncio.sleep(self.ingest_pause_s)

    def start(self, kinds: Sequence[str] = LOAD_KINDS) -> None:
        loops = {
            "search": self._search_loop,
            "chat": self._chat_loop,
            "chat-sse": self._sse_loop,
            "ingest": self._ingest_loop,
        }
        self._tasks = [asyncio.create_task(loops[kind](), name=f"load-{kind}") for kind in kinds]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for client in self._clients:
            await client.aclose()
        self._tasks, self._clients = [], []

    def since(self, start: float) -> list[Outcome]:
        return [o for o in self.outcomes if o.started >= start]

    @staticmethod
    def now() -> float:
        return time.monotonic()
