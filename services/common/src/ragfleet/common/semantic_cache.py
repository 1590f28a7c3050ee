"""The semantic cache: a question close enough in meaning to one already answered gets that answer.

The exact cache (`cache`) only matches a question typed the same way. Here each answered question
leaves its embedding in a *scope* — tenant, collection, **collection version** and every request
parameter but the text — and a new question whose cosine with one of them reaches `threshold`
reuses that question's cache key (``X-Cache: hit-semantic``). The version in the scope is what
keeps it correct: ingestion bumps it on every write, so after a document changes no question
asked before the change is matched again. Scopes of other tenants or collections are never
searched, so nothing crosses them.

Each replica (and each worker process of one) keeps its own index, at most `max_entries` vectors
per scope, oldest dropped first. Every answered question is also published on the cache Redis
(`share` / `add_shared`, over the cache's listener), so every replica learns it: a paraphrase
hits whichever replica or worker it reaches. The answers are in the shared L2 under their exact
keys, so a replica's semantic hit serves the answer another replica computed. A share lost while
Redis is away costs only misses.

False hits — a paraphrase that was not one — cannot be seen from inside a request, so a share
`verify_rate` of semantic hits is checked after answering: the real answer is computed and
compared (`record_check`), and disagreements are counted as false hits. The default threshold is
the one `make eval` measured (docs/eval.md).
"""

from __future__ import annotations

import base64
import logging
import random
import uuid
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ragfleet.common.cache.stats import SEMANTIC_CHECKS, SEMANTIC_REQUESTS

log = logging.getLogger("ragfleet.semantic_cache")

# make eval (docs/eval.md): at 0.80, 14 of 24 paraphrases hit and no distinct question of 64 does;
# at 0.70 every paraphrase hits but 2 distinct questions do (false hits).
DEFAULT_THRESHOLD = 0.8


@dataclass(frozen=True)
class SemanticHit:
    request: Any  # the cache key request of the question that was answered
    similarity: float


class _Scope:
    __slots__ = ("matrix", "requests", "size")

    def __init__(self, dim: int, capacity: int) -> None:
        self.matrix = np.zeros((capacity, dim), dtype=np.float32)
        self.requests: list[Any] = [None] * capacity
        self.size = 0  # filled rows; once full, rows are overwritten oldest first

    def add(self, vector: np.ndarray, request: Any, index: int) -> None:
        self.matrix[index] = vector
        self.requests[index] = request
        self.size = max(self.size, index + 1)


class SemanticIndex:
    """Question vectors per scope, in this process. Thread-unsafe by design: call it from the loop."""

    def __init__(
        self,
        name: str,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        max_entries: int = 1000,
        max_scopes: int = 1000,
        verify_rate: float = 0.02,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.name = name
        self.threshold = threshold
        self.max_entries = max_entries
        self.max_scopes = max_scopes
        self.verify_rate = verify_rate
        # Who shared a question: one id per index, so per worker process (a pod's hostname is
        # shared by its uvicorn workers, and by every replica when they run on one machine).
        self.origin = uuid.uuid4().hex
        self._scopes: OrderedDict[Hashable, _Scope] = OrderedDict()
        self._next: dict[Hashable, int] = {}
        self._hit = SEMANTIC_REQUESTS.labels(name, "hit")
        self._miss = SEMANTIC_REQUESTS.labels(name, "miss")

    def lookup(self, scope: Hashable, vector: np.ndarray) -> SemanticHit | None:
        """The closest answered question in the scope at or above the threshold, if any."""
        entries = self._scopes.get(scope)
        if entries is None or entries.size == 0:
            self._miss.inc()
            return None
        self._scopes.move_to_end(scope)
        similarities = entries.matrix[: entries.size] @ _unit(vector)
        best = int(np.argmax(similarities))
        if similarities[best] < self.threshold:
            self._miss.inc()
            return None
        self._hit.inc()
        return SemanticHit(entries.requests[best], float(similarities[best]))

    def add(self, scope: Hashable, vector: np.ndarray, request: Any) -> None:
        """Remember an answered question (its vector and the cache key request of its answer)."""
        unit = _unit(vector)
        entries = self._scopes.get(scope)
        if entries is None:
            entries = self._scopes[scope] = _Scope(unit.shape[0], self.max_entries)
            while len(self._scopes) > self.max_scopes:
                dropped, _ = self._scopes.popitem(last=False)
                self._next.pop(dropped, None)
        self._scopes.move_to_end(scope)
        index = self._next.get(scope, 0)
        entries.add(unit, request, index)
        self._next[scope] = (index + 1) % self.max_entries

    @property
    def channel(self) -> str:
        """Where replicas share the questions they answered (on the cache Redis)."""
        return f"ragfleet:semantic:{self.name}"

    def share(self, scope: tuple[Any, ...], vector: np.ndarray, request: Any) -> bytes:
        """The message telling other replicas of a question ``add``-ed here (JSON scope and request;
        the vector as base64 float32: 2 KB for MiniLM's 384 dimensions)."""
        raw = base64.b64encode(_unit(vector).tobytes()).decode()
        return orjson.dumps({"origin": self.origin, "scope": scope, "vector": raw, "request": request})

    def add_shared(self, data: bytes) -> None:
        """Add a question another process shared (this one's own shares are already in)."""
        message = orjson.loads(data)
        if message["origin"] == self.origin:
            return
        vector = np.frombuffer(base64.b64decode(message["vector"]), dtype=np.float32)
        scope = tuple(message["scope"])
        if self._scopes and vector.shape[0] != next(iter(self._scopes.values())).matrix.shape[1]:
            log.warning("ignoring a shared question of another dimension (%d)", vector.shape[0])
            return
        self.add(scope, vector, message["request"])

    def should_verify(self) -> bool:
        return self.verify_rate > 0 and random.random() < self.verify_rate

    def record_check(self, agreed: bool) -> None:
        SEMANTIC_CHECKS.labels(self.name, "agree" if agreed else "false_hit").inc()

    def drop_older(self, tenant: str, collection: str, version: int) -> None:
        """Forget scopes of this collection at versions before `version` (they can never match again)."""
        stale = [
            s for s in self._scopes
            if isinstance(s, tuple) and s[:2] == (tenant, collection) and s[2] < version
        ]  # fmt: skip
        for scope in stale:
            del self._scopes[scope]
            self._next.pop(scope, None)


def _unit(vector: np.ndarray) -> np.ndarray:
    array = np.asarray(vector, dtype=np.float32).reshape(-1)
    return array / max(float(np.linalg.norm(array)), 1e-12)
