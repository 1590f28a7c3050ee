"""The embedder: shape, normalisation, determinism, semantic sanity; the async micro-batcher."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from ragfleet.common.embeddings import DIM, Embedder, MicroBatcher


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    model = Embedder(batch_size=4)
    model.load()
    return model


def test_vectors_are_384_d_float32_and_unit_length(embedder: Embedder) -> None:
    vectors = embedder.embed(["hello world", "a somewhat longer sentence about search engines"])
    assert vectors.shape == (2, DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, DIM)
    assert embedder.dim == DIM and embedder.model_name


def test_embeddings_are_deterministic_and_independent_of_batching(embedder: Embedder) -> None:
    texts = [f"sentence number {i} about {'cats' if i % 2 else 'databases'}" * (1 + i % 3) for i in range(9)]
    batched = embedder.embed(texts)  # several batches of 4, sorted by length inside
    one_by_one = np.stack([embedder.embed([t])[0] for t in texts])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-4)
    np.testing.assert_array_equal(embedder.embed(texts), batched)


def test_paraphrases_are_closer_than_unrelated_sentences(embedder: Embedder) -> None:
    a, b, c, d = embedder.embed(
        [
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The stock market fell sharply today.",
            "Shares tumbled on Wall Street this afternoon.",
        ]
    )
    assert a @ b > 0.6 and c @ d > 0.5
    assert max(a @ c, a @ d, b @ c, b @ d) < 0.2


def test_long_texts_are_truncated_not_rejected(embedder: Embedder) -> None:
    long_text = "retrieval " * 2000
    (vector,) = embedder.embed([long_text])
    (prefix,) = embedder.embed(["retrieval " * 300])  # also past 256 tokens: the same truncation
    assert float(vector @ prefix) == pytest.approx(1.0, abs=1e-4)


def test_a_single_string_is_refused(embedder: Embedder) -> None:
    with pytest.raises(TypeError):
        embedder.embed("not a list")


class CountingEmbedder(Embedder):
    """The real model, counting how many calls (batches) reach it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        return super().embed(texts)


async def test_micro_batcher_gathers_concurrent_requests(embedder: Embedder) -> None:
    counting = CountingEmbedder()
    batcher = MicroBatcher(counting, max_batch=16, max_wait_ms=5)
    texts = [f"query {i}" for i in range(40)]
    vectors = await asyncio.gather(*(batcher.embed_one(t) for t in texts))
    assert len(counting.calls) < len(texts) / 4  # gathered, not one call per request
    assert max(counting.calls) <= 16 and sum(counting.calls) == 40
    np.testing.assert_allclose(np.stack(vectors), embedder.embed(texts), atol=1e-4)
    lone = await batcher.embed_one("alone")
    np.testing.assert_allclose(lone, embedder.embed(["alone"])[0], atol=1e-4)
    await batcher.close()
    with pytest.raises(RuntimeError):
        await batcher.embed_one("after close")
