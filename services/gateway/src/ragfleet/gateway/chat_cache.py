"""The chat answer cache: a first turn asked before — or a paraphrase of one — is answered from the cache.

How a paraphrase is recognised without a model here: the gateway does not embed, retrieval does,
and retrieval's semantic cache already decides whether a question is close enough in meaning to
one it answered (same tenant, collection, collection version and search parameters; threshold
``RAGFLEET_RETRIEVAL_SEMANTIC_CACHE_THRESHOLD``). Its answer then carries that earlier question
in ``query``. So a chat answer is keyed by *the question retrieval answered*, plus everything
else that shapes an answer (model, system prompt, temperature, max_tokens, top_k, mode), in the
tenant's collection at its version: the same question again is an exact hit (``hit-l1``,
``hit-l2``), a paraphrase retrieval matched is ``hit-semantic``, and a write to the collection
(ingestion bumps its version) leaves every earlier answer unreachable. One threshold, one
embedding per question, and the sources shown with a cached answer are the ones it was made from.

Only first turns are cached: a later turn's answer depends on the conversation before it.

False hits cannot be seen while answering, so a share (`verify_rate`) of semantic hits is
checked afterwards: retrieval is asked the question itself (``semantic: false``), and if its
first source is another document than the served answer's, the hit was false
(``ragfleet_semantic_cache_checks_total{cache="chat"}``; hits and misses are
``ragfleet_semantic_cache_requests_total{cache="chat"}``).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

from ragfleet.common.background import BackgroundTasks
from ragfleet.common.cache import CacheResult, TwoTierCache, normalise_text
from ragfleet.common.cache.stats import SEMANTIC_CHECKS, SEMANTIC_REQUESTS

CACHE_NAME = "chat"


class ChatAnswerCache:
    def __init__(self, cache: TwoTierCache, *, verify_rate: float = 0.02) -> None:
        self.cache = cache
        self.namespace = cache.namespace(CACHE_NAME)
        self.verify_rate = verify_rate
        self._checks = BackgroundTasks()
        self._hit = SEMANTIC_REQUESTS.labels(CACHE_NAME, "hit")
        self._miss = SEMANTIC_REQUESTS.labels(CACHE_NAME, "miss")

    async def version(self, tenant: str, collection: str) -> int:
        """Read before retrieving: an answer is stored under the version its sources were read at."""
        return await self.cache.current_version(tenant, collection)

    def key(self, tenant: str, collection: str, version: int, question: str, shape: dict[str, Any]) -> str:
        return self.namespace.key_at(tenant, collection, version, {"q": question, **shape})

    async def lookup(
        self, key: str, tenant: str, collection: str, *, asked: str, matched: str
    ) -> tuple[dict[str, Any] | None, CacheResult]:
        """The cached answer and its X-Cache value; `matched` is the question retrieval answered."""
        value, tier = await self.namespace.lookup(key, (tenant, collection))
        semantic = matched != normalise_text(asked)
        if value is None:
            self._miss.inc()
            return None, "miss"
        if semantic:
            self._hit.inc()
            return value, "hit-semantic"
        return value, tier

    async def store(self, key: str, tenant: str, collection: str, answer: dict[str, Any]) -> None:
        await self.namespace.store(key, (tenant, collection), answer)

    def maybe_verify(self, served_first: str | None, recompute: Callable[[], Awaitable[str | None]]) -> None:
        """Sometimes, after answering: count a false hit if the question's own first source differs."""
        if self.verify_rate <= 0 or random.random() >= self.verify_rate:
            return

        async def check() -> None:
            try:
                real_first = await recompute()
            except Exception:  # a check must never hurt: the request was answered already
                return
            SEMANTIC_CHECKS.labels(CACHE_NAME, "agree" if real_first == served_first else "false_hit").inc()

        self._checks.start(check())
