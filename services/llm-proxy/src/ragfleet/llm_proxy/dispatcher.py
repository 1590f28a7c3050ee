"""Getting an answer despite upstream trouble: retries, the breaker, fallbacks, per-model timeouts.

For each model in the chain (the requested one, then its fallbacks) and each of its deployments
(weighted order), call while the breaker allows: a retryable failure (429, 5xx, timeout, connection
error, malformed answer) is retried after an exponential backoff with full jitter — at least the
upstream's ``Retry-After`` — up to ``retry_max_attempts`` per deployment and never starting a retry
past ``retry_budget_s``; then the next deployment, then the next model. A non-retryable failure (a 4xx
that says the request itself is wrong) ends the request at once with the upstream's status.

A stream counts as "answered" once its first output chunk arrived (with the chunks that came in
the same read): up to then it is retried like
any call; after that nothing can be retried (the client already has tokens), and a failure becomes
an error event at the end of the stream.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ragfleet.common.errors import (
    RagfleetError,
    RateLimited,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
)
from ragfleet.llm_proxy import metrics
from ragfleet.llm_proxy.breaker import BreakerBoard, Permit
from ragfleet.llm_proxy.config import LlmProxySettings
from ragfleet.llm_proxy.providers.base import Chunk, UpstreamFailure
from ragfleet.llm_proxy.registry import Deployment, ModelRegistry

T = TypeVar("T")


class UpstreamRejected(RagfleetError):
    """The upstream refused the request itself (a 4xx other than 429): relayed with its status."""

    code = "upstream_rejected"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status


@dataclass
class Dispatched(Generic[T]):
    deployment: Deployment
    permit: Permit
    result: T
    upstream_s: float  # time spent waiting on upstreams and in backoff: not the proxy's overhead


def full_jitter_backoff(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """AWS's "full jitter": uniform in [0, min(cap, base * 2^(attempt-1))]."""
    return rng.uniform(0.0, min(cap_s, base_s * 2 ** (attempt - 1)))


def client_error(failure: UpstreamFailure | None, model: str, breaker_wait_s: float) -> RagfleetError:
    """What the caller sees when every deployment of every model in the chain failed."""
    if failure is None:
        return ServiceUnavailable(
            f"every upstream for model {model!r} is unavailable (circuit open); retry later",
            code="upstream_unavailable",
            headers={"Retry-After": str(max(1, round(breaker_wait_s)))},
        )
    if not failure.retryable:
        return UpstreamRejected(failure.status or 502, failure.message)
    if failure.reason == "timeout":
        return UpstreamTimeout(f"model {model!r}: {failure.message}")
    if failure.reason == "http_429":
        return RateLimited(
            f"model {model!r}: upstream rate limit: {failure.message}",
            code="upstream_rate_limited",
            retry_after_s=failure.retry_after_s or 1.0,
        )
    return UpstreamError(f"model {model!r}: {failure.message}")


class Dispatcher:
    def __init__(
        self,
        registry: ModelRegistry,
        breakers: BreakerBoard,
        settings: LlmProxySettings,
        rng: random.Random | None = None,
    ) -> None:
        self.registry = registry
        self.breakers = breakers
        self.settings = settings
        self.rng = rng or random.Random()

    async def dispatch(self, model: str, call: Callable[[Deployment], Awaitable[T]]) -> Dispatched[T]:
        settings = self.settings
        started = time.monotonic()
        retry_deadline = started + settings.retry_budget_s
        upstream_s = 0.0
        last_failure: UpstreamFailure | None = None
        breaker_wait_s = float("inf")
        for position, name in enumerate(self.registry.chain(model)):
            if position > 0:
                metrics.FALLBACKS.labels(model, name).inc()
            for deployment in self.registry.ordered(name, self.rng):
                attempt = 0
                while True:
                    if deployment.provider.uses_breaker:
                        permit = await self.breakers.acquire(deployment.upstream_id)
                    else:
                        permit = Permit(True)
                    if not permit.allowed:
                        metrics.BREAKER_REJECTIONS.labels(deployment.upstream_id).inc()
                        breaker_wait_s = min(breaker_wait_s, permit.retry_after_s)
                        break
                    attempt += 1
                    call_started = time.monotonic()
                    try:
                        result = await call(deployment)
                    except asyncio.CancelledError:  # the client left; the probe has no verdict
                        if permit.probe:
                            await asyncio.shield(self.breakers.release_probe(deployment.upstream_id, permit))
                        raise
                    except UpstreamFailure as failure:
                        upstream_s += time.monotonic() - call_started
                        metrics.UPSTREAM_ATTEMPTS.labels(deployment.upstream_id, failure.reason).inc()
                        if deployment.provider.uses_breaker:
                            # A request the upstream refused as invalid proves the upstream is up.
                            await self.breakers.record(
                                deployment.upstream_id, permit, ok=not failure.retryable
                            )
                        if not failure.retryable:
                            raise client_error(failure, name, 0) from None
                        last_failure = failure
                        delay = full_jitter_backoff(
                            attempt, settings.retry_base_delay_s, settings.retry_max_delay_s, self.rng
                        )
                        if failure.retry_after_s is not None:
                            delay = max(delay, failure.retry_after_s)
                        if (
                            attempt >= settings.retry_max_attempts
                            or time.monotonic() + delay > retry_deadline
                        ):
                            break
                        metrics.RETRIES.labels(deployment.upstream_id, failure.reason).inc()
                        await asyncio.sleep(delay)
                        upstream_s += delay
                        continue
                    upstream_s += time.monotonic() - call_started
                    metrics.UPSTREAM_ATTEMPTS.labels(deployment.upstream_id, "ok").inc()
                    if deployment.provider.uses_breaker:
                        await self.breakers.record(deployment.upstream_id, permit, ok=True)
                    return Dispatched(deployment, permit, result, upstream_s)
        raise client_error(last_failure, model, breaker_wait_s)


@dataclass
class OpenedStream:
    """A stream whose first output chunk has arrived: ``head`` holds the batches up to it."""

    head: list[list[Chunk]]
    rest: AsyncIterator[list[Chunk]]
    deadline: float  # monotonic: the model's total timeout
    total_timeout_s: float
    ttft_s: float = 0.0
    closed: bool = field(default=False)

    async def batches(self) -> AsyncIterator[list[Chunk]]:
        """The chunks in the batches they arrived in (``ChatProvider.stream``), within the total timeout."""
        for batch in self.head:
            yield batch
        while True:
            remaining = self.deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                async with asyncio.timeout(remaining):
                    batch = await anext(self.rest)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise UpstreamFailure(
                    "timeout", f"stream exceeded the model's total timeout of {self.total_timeout_s:g}s"
                ) from None
            yield batch

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            await self.rest.aclose()  # type: ignore[attr-defined]


async def open_stream(deployment: Deployment, stream: AsyncIterator[list[Chunk]]) -> OpenedStream:
    """Read until the first output chunk, within the first-token timeout (or the total, if shorter)."""
    config = deployment.config
    started = time.monotonic()
    deadline = started + config.total_timeout_s
    head: list[list[Chunk]] = []
    try:
        async with asyncio.timeout(min(config.first_token_timeout_s, config.total_timeout_s)):
            async for batch in stream:
                head.append(batch)
                if any(chunk.has_output for chunk in batch):
                    break
            else:
                raise UpstreamFailure("malformed", "upstream stream ended before any output")
    except TimeoutError:
        await stream.aclose()  # type: ignore[attr-defined]
        raise UpstreamFailure("timeout", f"no first token within {config.first_token_timeout_s:g}s") from None
    except BaseException:
        await stream.aclose()  # type: ignore[attr-defined]
        raise
    return OpenedStream(head, stream, deadline, config.total_timeout_s, ttft_s=time.monotonic() - started)
