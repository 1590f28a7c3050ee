"""The embedder's queue is bounded: past it a text is refused at once with 503 + Retry-After."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from ragfleet.common.embeddings import EmbedderBusy, MicroBatcher
from ragfleet.common.errors import ServiceUnavailable


class BlockedModel:
    """A provider whose batches wait for a gate: the queue behind it fills up."""

    model_name = "blocked"
    dim = 4

    def __init__(self) -> None:
        self.gate = threading.Event()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.gate.wait(10)
        return np.ones((len(texts), self.dim), dtype=np.float32)


async def test_a_full_queue_refuses_fast_and_the_accepted_texts_still_answer() -> None:
    model = BlockedModel()
    batcher = MicroBatcher(model, max_batch=2, max_wait_ms=0, max_queue=3)  # type: ignore[arg-type]
    try:
        running = [asyncio.ensure_future(batcher.embed_one("first"))]
        await asyncio.sleep(0.05)  # the first batch is now in the (blocked) model
        running += [asyncio.ensure_future(batcher.embed_one(f"t{i}")) for i in range(3)]
        await asyncio.sleep(0)
        with pytest.raises(ServiceUnavailable) as refused:
            await batcher.embed_one("one too many")
        assert refused.value.headers["Retry-After"] == "1"
        assert refused.value.code == "embedder_busy"
        model.gate.set()
        vectors = await asyncio.wait_for(asyncio.gather(*running), 10)
        assert all(v.shape == (4,) for v in vectors)
    finally:
        model.gate.set()
        await batcher.close()


class SlowModel:
    """Each text takes 50 ms: the time bound, not the count, is what refuses."""

    model_name = "slow"
    dim = 4

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        time.sleep(0.05 * len(texts))
        return np.ones((len(texts), self.dim), dtype=np.float32)


async def test_a_text_expected_to_wait_longer_than_the_bound_is_refused_fast() -> None:
    batcher = MicroBatcher(SlowModel(), max_batch=1, max_wait_ms=0, max_queue=256)  # type: ignore[arg-type]
    try:
        await batcher.embed_one("measures the speed")  # >= 50 ms a text, more on a busy machine
        # Room for four texts ahead of a new one, not five, at the speed just measured.
        batcher.max_queue_s = 3.5 * batcher.seconds_per_text
        accepted = [asyncio.ensure_future(batcher.embed_one(f"t{i}")) for i in range(4)]
        await asyncio.sleep(0)
        started = time.perf_counter()
        with pytest.raises(ServiceUnavailable) as refused:
            await batcher.embed_one("the fifth would wait for four")
        assert time.perf_counter() - started < 0.05  # refused at once, not after waiting
        assert refused.value.code == "embedder_busy"
        assert refused.value.details["expected_wait_s"] > batcher.max_queue_s
        assert len(await asyncio.wait_for(asyncio.gather(*accepted), 10)) == 4
    finally:
        await batcher.close()


async def test_a_text_that_opens_the_next_batch_is_never_refused_however_slow_the_last_batch() -> None:
    model = BlockedModel()
    batcher = MicroBatcher(model, max_batch=2, max_wait_ms=0, max_queue=256, max_queue_s=0.5)  # type: ignore[arg-type]
    try:
        running = [asyncio.ensure_future(batcher.embed_one("in flight"))]
        await asyncio.sleep(0.05)  # that batch is now in the (blocked) model
        batcher.seconds_per_text = 2.0  # the last batches were slow: one text ahead is "2 s of work"
        # Nothing waits: this text opens the next batch, and refusing it would shed nothing.
        running.append(asyncio.ensure_future(batcher.embed_one("opens the next batch")))
        await asyncio.sleep(0)
        # Behind it, the same estimate is a queue of 4 s: refused at once.
        with pytest.raises(ServiceUnavailable) as refused:
            await batcher.embed_one("would queue behind it")
        assert refused.value.code == "embedder_busy"
        model.gate.set()
        vectors = await asyncio.wait_for(asyncio.gather(*running), 10)
        assert len(vectors) == 2
    finally:
        model.gate.set()
        await batcher.close()


class RecordingBlockedModel(BlockedModel):
    """A blocked model that also records the texts of every batch it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        return super().embed(texts)


async def test_a_text_not_embedded_within_its_deadline_is_refused_and_never_embedded() -> None:
    model = RecordingBlockedModel()
    batcher = MicroBatcher(model, max_batch=4, max_wait_ms=0, max_queue=256, max_queue_s=0)  # type: ignore[arg-type]
    try:
        running = asyncio.ensure_future(batcher.embed_one("in flight"))
        await asyncio.sleep(0.05)  # that batch is now in the (blocked) model
        # Admitted (nothing is known of the speed yet), then given up on at its deadline.
        with pytest.raises(EmbedderBusy) as late:
            await batcher.embed_one("in a hurry", within_s=0.05)
        assert late.value.code == "embedder_busy" and late.value.details["reason"] == "deadline"
        assert late.value.status_code == 503 and "Retry-After" in late.value.headers
        waiting = asyncio.ensure_future(batcher.embed_one("patient"))
        await asyncio.sleep(0)
        model.gate.set()
        assert (await asyncio.wait_for(running, 10)).shape == (4,)
        assert (await asyncio.wait_for(waiting, 10)).shape == (4,)
        # The late text was taken out of the queue: no batch spent time on it.
        assert model.batches == [["in flight"], ["patient"]]
    finally:
        model.gate.set()
        await batcher.close()


async def test_a_deadline_tightens_the_bound_at_arrival() -> None:
    model = BlockedModel()
    batcher = MicroBatcher(model, max_batch=2, max_wait_ms=0, max_queue=256, max_queue_s=10)  # type: ignore[arg-type]
    try:
        running = [asyncio.ensure_future(batcher.embed_one("in flight"))]
        await asyncio.sleep(0.05)
        batcher.seconds_per_text = 0.1  # two texts ahead: 0.2 s, inside 10 s but not inside 0.15 s
        running.append(asyncio.ensure_future(batcher.embed_one("opens the next batch")))
        await asyncio.sleep(0)
        with pytest.raises(EmbedderBusy) as refused:
            await batcher.embed_one("in a hurry", within_s=0.15)
        assert refused.value.details["reason"] == "expected_wait"
        running.append(asyncio.ensure_future(batcher.embed_one("no hurry")))  # the 10 s bound admits it
        await asyncio.sleep(0)
        model.gate.set()
        assert len(await asyncio.wait_for(asyncio.gather(*running), 10)) == 3
    finally:
        model.gate.set()
        await batcher.close()


class OnceSlowModel:
    """The first batch takes a second (a neighbour's burst), every later one is instant."""

    model_name = "once-slow"
    dim = 4

    def __init__(self) -> None:
        self.batches = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.batches += 1
        if self.batches == 1:
            time.sleep(1.0)
        return np.ones((len(texts), self.dim), dtype=np.float32)


async def test_one_slow_batch_does_not_stay_in_the_wait_estimate() -> None:
    batcher = MicroBatcher(OnceSlowModel(), max_batch=1, max_wait_ms=0)  # type: ignore[arg-type]
    try:
        await batcher.embed_one("the slow one")
        assert batcher.seconds_per_text >= 1.0  # all it knows so far
        for i in range(2):
            await batcher.embed_one(f"fast {i}")
        # The median of [1 s, ~0, ~0]: the outlier is gone after two batches. (A moving average
        # weighted 0.3 to the newest batch still said ~0.5 s, and refused a queue of two.)
        assert batcher.seconds_per_text < 0.5
    finally:
        await batcher.close()


class PriorityProbe:
    """Reports the niceness of the thread that embeds, and of a thread it starts (as
    onnxruntime starts its pool on the first embed)."""

    model_name = "probe"
    dim = 4

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        child: list[int] = []
        worker = threading.Thread(target=lambda: child.append(niceness_of_this_thread()))
        worker.start()
        worker.join()
        self.seen.append((niceness_of_this_thread(), child[0]))
        return np.ones((len(texts), self.dim), dtype=np.float32)


def niceness_of_this_thread() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="niceness per thread is Linux's")
@pytest.mark.parametrize("niceness", [0, 7])
async def test_the_embedder_threads_run_at_the_niceness_asked_for(niceness: int) -> None:
    base = niceness_of_this_thread()
    model = PriorityProbe()
    batcher = MicroBatcher(model, max_wait_ms=0, niceness=niceness)  # type: ignore[arg-type]
    try:
        await batcher.embed_one("a")
        await batcher.embed_many(["b", "c"])
    finally:
        await batcher.close()
    expected = min(19, base + niceness) if niceness else base
    assert model.seen == [(expected, expected)] * 2
    assert niceness_of_this_thread() == base  # the event loop's thread keeps its priority
