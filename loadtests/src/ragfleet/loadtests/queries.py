"""What load-test users ask: a realistic query pool sampled with a Zipf law, plus search parameters.

Real search traffic is heavy-tailed: a few questions are asked over and over, most only now and
then. Sampling the pool by rank with weight ``1 / rank**s`` reproduces that, and with it a realistic
cache hit rate — uniform sampling would understate it, a single repeated query would overstate it.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

SEARCH_MODES = ("vector", "bm25", "hybrid")


def load_pool(path: Path | None = None) -> list[str]:
    """Queries one a line, most popular first; ``#`` lines and blank lines are skipped."""
    text = (
        path.read_text(encoding="utf-8")
        if path
        else resources.files("ragfleet.loadtests").joinpath("queries.txt").read_text(encoding="utf-8")
    )
    pool = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not pool:
        raise ValueError(f"the query pool {path or 'queries.txt'} is empty")
    return pool


# Ways people narrow a question; each (context, audience) pair turns one base query into another
# distinct question, so a pool of any size up to len(base) * (1 + 24 * 12) can be drawn.
_CONTEXTS = (
    "in production", "on kind", "on a single node", "with helm", "behind an ingress", "on arm64",
    "with two replicas", "after an upgrade", "with weaviate", "with the embedded index",
    "for a large corpus", "with tls", "in a private network", "with autoscaling", "under load",
    "with redis sentinel", "on a laptop", "in ci", "with gpu nodes", "for many tenants",
    "with read-only root filesystems", "with network policies", "offline", "at night",
)  # fmt: skip
_AUDIENCES = (
    "", "as an sre", "as a developer", "as a platform team", "for beginners", "step by step",
    "quickly", "safely", "with an example", "and why", "for version 0.1", "in detail",
)  # fmt: skip


def widened_pool(base: Sequence[str], size: int) -> list[str]:
    """``size`` distinct questions, the base pool first (most popular), then its narrowed variants.

    A load test of the cache's tail needs many more distinct questions than a person writes down
    (20,000 for the miss-heavy scenario): each variant is a new cache key and a new embedding,
    and reads like something a user would ask. Deterministic, so two runs ask the same pool.
    """
    if size <= len(base):
        return list(base[:size])
    pool = list(base)
    seen = set(pool)
    for audience in _AUDIENCES:
        for context in _CONTEXTS:
            for query in base:
                question = " ".join(part for part in (query, context, audience) if part)
                if question not in seen:
                    seen.add(question)
                    pool.append(question)
                    if len(pool) == size:
                        return pool
    raise ValueError(f"a pool of {size} questions is more than {len(pool)} this base can make")


class ZipfSampler:
    """Draws items by rank with probability proportional to ``1 / rank**exponent``."""

    def __init__(self, items: Sequence[str], exponent: float = 1.1, rng: random.Random | None = None) -> None:
        if not items:
            raise ValueError("ZipfSampler needs at least one item")
        if exponent < 0:
            raise ValueError(f"the Zipf exponent must be >= 0, got {exponent}")
        self.items = list(items)
        self.rng = rng or random.Random()
        self.cum_weights = list(
            itertools.accumulate(1.0 / rank**exponent for rank in range(1, len(items) + 1))
        )

    def probability(self, rank: int) -> float:
        """The chance of drawing the item at 1-based ``rank``."""
        previous = self.cum_weights[rank - 2] if rank > 1 else 0.0
        return (self.cum_weights[rank - 1] - previous) / self.cum_weights[-1]

    def sample(self) -> str:
        return self.rng.choices(self.items, cum_weights=self.cum_weights, k=1)[0]


def parse_weights(spec: str, allowed: Sequence[str]) -> dict[str, float]:
    """``"vector:6,hybrid:2,bm25:2"`` (or just ``"vector"``) → ``{"vector": 6.0, ...}``."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, weight = part.partition(":")
        name = name.strip()
        if name not in allowed:
            raise ValueError(f"unknown name {name!r} in {spec!r}; expected one of {', '.join(allowed)}")
        try:
            weights[name] = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"weight of {name!r} in {spec!r} is not a number") from None
        if weights[name] < 0:
            raise ValueError(f"weight of {name!r} in {spec!r} is negative")
    if not weights or sum(weights.values()) <= 0:
        raise ValueError(f"{spec!r} gives no positive weight to any of {', '.join(allowed)}")
    return weights


@dataclass
class SearchRequestFactory:
    """Builds ``POST /v1/search`` bodies: Zipf query, weighted mode, sometimes a metadata filter."""

    sampler: ZipfSampler
    mode_weights: Mapping[str, float]
    filter_ratio: float = 0.1
    collection: str = "default"
    top_k: int = 5

    def build(self) -> dict[str, Any]:
        rng = self.sampler.rng
        mode = rng.choices(list(self.mode_weights), weights=list(self.mode_weights.values()), k=1)[0]
        body: dict[str, Any] = {
            "query": self.sampler.sample(),
            "collection": self.collection,
            "top_k": self.top_k,
            "mode": mode,
        }
        if mode == "hybrid":
            body["alpha"] = 0.5
        if rng.random() < self.filter_ratio:
            # Markdown is what the sample corpus is written in, so the filter narrows without emptying.
            body["filters"] = {"content_type": "text/markdown"}
        return body
