"""Synthetic corpora for the retrieval benchmarks: vectors shaped like sentence embeddings.

Uniform random vectors in 384 dimensions are a worst case no real corpus looks like (every
point is nearly equidistant from every other); real embeddings cluster by topic. So vectors are
drawn around topic centroids, with noise, and L2-normalised; queries come from the same
distribution. Texts are built from a small vocabulary with sentence-sized lengths.
"""

from __future__ import annotations

import numpy as np

DIM = 384

_WORDS = [
    "index",
    "vector",
    "search",
    "cluster",
    "replica",
    "cache",
    "tenant",
    "collection",
    "document",
    "chunk",
    "query",
    "latency",
    "throughput",
    "kubernetes",
    "helm",
    "ingress",
    "gateway",
    "worker",
    "celery",
    "redis",
    "embedding",
    "model",
    "token",
    "stream",
    "retrieval",
    "hybrid",
    "ranking",
    "fusion",
    "score",
    "filter",
    "metadata",
    "date",
    "price",
    "region",
    "language",
    "author",
    "invoice",
    "contract",
    "policy",
    "report",
    "meeting",
    "budget",
    "revenue",
    "customer",
    "product",
    "release",
    "incident",
    "database",
    "backup",
    "network",
    "storage",
    "security",
    "audit",
    "compliance",
    "deploy",
    "rollout",
    "canary",
    "scale",
    "memory",
    "cpu",
    "disk",
    "queue",
    "batch",
    "schedule",
    "alert",
    "dashboard",
    "metric",
    "trace",
    "log",
    "error",
    "retry",
    "timeout",
]


def clustered_vectors(
    n: int,
    *,
    seed: int,
    dim: int = DIM,
    latent: int = 48,
    topics: int = 2000,
    spread: float = 0.75,
    noise: float = 0.15,
) -> np.ndarray:
    """Normalised vectors around `topics` centroids in a `latent`-dimensional subspace, plus a
    little isotropic noise. The structure (topics, a low intrinsic dimension) is shared by every
    call; `seed` picks the points, so data and queries come from the same distribution.

    With the defaults the nearest neighbour's cosine is ~0.75 and the median pair's ~0, close
    to what MiniLM gives on a real corpus; uniform random vectors would be far harder for any
    ANN index than real embeddings are.
    """
    shared = np.random.default_rng(0)
    projection = shared.standard_normal((latent, dim)).astype(np.float32) / np.sqrt(latent)
    centroids = shared.standard_normal((topics, latent)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    step = 50_000
    for start in range(0, n, step):
        m = min(step, n - start)
        z = centroids[rng.integers(0, topics, m)] + spread * rng.standard_normal((m, latent)).astype(
            np.float32
        )
        out[start : start + m] = z @ projection + noise * rng.standard_normal((m, dim)).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


_FUNCTION_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "they",
    "you",
    "were",
    "her",
    "she",
    "there",
    "been",
    "one",
    "all",
    "we",
    "their",
    "has",
    "would",
    "when",
    "if",
    "so",
    "no",
    "will",
]


def _vocabulary(size: int = 30_000) -> np.ndarray:
    """Function words first (the most frequent, dropped by the BM25 tokenizer), then domain words,
    then pronounceable pseudo-words: a vocabulary with a realistic long tail."""
    rng = np.random.default_rng(12345)
    consonants, vowels = list("bcdfghklmnprstvz"), list("aeiou")
    pseudo: set[str] = set()
    while len(pseudo) < size - len(_FUNCTION_WORDS) - len(_WORDS):
        syllables = rng.integers(2, 5)
        pseudo.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(syllables)))
    return np.array([*_FUNCTION_WORDS, *_WORDS, *sorted(pseudo)])


def texts(n: int, *, seed: int = 0, min_words: int = 60, max_words: int = 200) -> list[str]:
    """Chunk-sized texts (60-200 words: about 400-1300 characters, like a 256-token chunk), words
    drawn from a 30,000-word vocabulary with Zipf-like frequencies, as in real text."""
    rng = np.random.default_rng(seed)
    vocab = _vocabulary()
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 1.05
    weights /= weights.sum()
    lengths = rng.integers(min_words, max_words, n)
    words = vocab[rng.choice(len(vocab), size=int(lengths.sum()), p=weights)]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return [" ".join(words[bounds[i] : bounds[i + 1]]) for i in range(n)]


def exact_top_k(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Ground truth: exact cosine top-k (vectors are normalised, so a dot product)."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 256):
        scores = queries[start : start + 256] @ data.T
        part = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)[:, ::-1]
        out[start : start + 256] = np.take_along_axis(part, order, axis=1)
    return out


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    hits = sum(len(set(f[:k].tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / (len(truth) * k)
