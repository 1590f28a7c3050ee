"""A per-upstream circuit breaker whose state lives in Redis, so every replica sees the same breaker.

closed ──N failures within the window──▶ open ──open_s elapsed──▶ half-open (one probe at a time)
half-open ──probe succeeds──▶ closed;  half-open ──probe fails──▶ open again.

The transitions are plain functions of a ``BreakerState`` and the time, applied either to a Redis
hash (read, then an optimistic WATCH/MULTI write when something changes) or, when Redis cannot be
reached, to this replica's own memory: a replica that loses Redis keeps protecting its upstreams
on its own rather than failing requests. The hot path of a healthy upstream is one HGETALL, and
none at all while the last read is younger than ``sync_interval_s``.
Times are wall-clock seconds, so replicas' clocks are assumed in sync to well under ``open_s``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError, WatchError

from ragfleet.llm_proxy import metrics

log = logging.getLogger("ragfleet.llm_proxy.breaker")

State = Literal["closed", "open", "half_open"]
STATE_VALUES: dict[State, int] = {"closed": 0, "half_open": 1, "open": 2}


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int
    window_s: float
    open_s: float
    probe_timeout_s: float


@dataclass(frozen=True)
class BreakerState:
    state: State = "closed"
    failures: tuple[float, ...] = ()  # times of recent failures, within the window
    opened_at: float = 0.0
    probe_until: float = 0.0  # while half-open: a probe is in flight until then

    def encode(self) -> dict[str | bytes, bytes | float | int | str]:
        return {
            "state": self.state,
            "failures": orjson.dumps(self.failures).decode(),
            "opened_at": repr(self.opened_at),
            "probe_until": repr(self.probe_until),
        }

    @classmethod
    def decode(cls, raw: dict[bytes, bytes]) -> BreakerState:
        if not raw:
            return cls()
        state = raw.get(b"state", b"closed").decode()
        return cls(
            state=state if state in STATE_VALUES else "closed",
            failures=tuple(orjson.loads(raw.get(b"failures", b"[]"))),
            opened_at=float(raw.get(b"opened_at", b"0")),
            probe_until=float(raw.get(b"probe_until", b"0")),
        )


@dataclass(frozen=True)
class Permit:
    """The answer to "may I call this upstream now?"."""

    allowed: bool
    probe: bool = False  # this call is the half-open probe
    retry_after_s: float = 0.0  # when rejected: time until a probe may be tried
    seen: State = "closed"


def decide(state: BreakerState, now: float, config: BreakerConfig) -> tuple[Permit, BreakerState | None]:
    """Whether a call may go ahead, and the new state if asking changed it (taking the probe)."""
    if state.state == "closed":
        return Permit(True, seen="closed"), None
    if state.state == "open":
        reopen_at = state.opened_at + config.open_s
        if now < reopen_at:
            return Permit(False, retry_after_s=reopen_at - now, seen="open"), None
        probing = replace(state, state="half_open", probe_until=now + config.probe_timeout_s)
        return Permit(True, probe=True, seen="half_open"), probing
    if now < state.probe_until:  # half-open with a probe in flight: everyone else waits for its verdict
        return Permit(
            False, retry_after_s=min(config.open_s, state.probe_until - now), seen="half_open"
        ), None
    return Permit(True, probe=True, seen="half_open"), replace(
        state, probe_until=now + config.probe_timeout_s
    )


def after_failure(state: BreakerState, now: float, config: BreakerConfig) -> BreakerState:
    if state.state == "half_open":
        return BreakerState("open", (), opened_at=now)
    if state.state == "open":
        return state
    failures = (*(t for t in state.failures if t > now - config.window_s), now)
    if len(failures) >= config.failure_threshold:
        return BreakerState("open", (), opened_at=now)
    return replace(state, failures=failures)


def after_success(state: BreakerState, probe: bool) -> BreakerState | None:
    """A successful probe closes the breaker; other successes change nothing (no write)."""
    if probe and state.state == "half_open":
        return BreakerState()
    return None


def release_probe(state: BreakerState) -> BreakerState | None:
    if state.state == "half_open" and state.probe_until:
        return replace(state, probe_until=0.0)
    return None


@dataclass
class LocalBreakers:
    """This replica's breakers, used when Redis is unreachable."""

    states: dict[str, BreakerState] = field(default_factory=dict)

    def get(self, upstream: str) -> BreakerState:
        return self.states.get(upstream, BreakerState())

    def put(self, upstream: str, state: BreakerState) -> None:
        self.states[upstream] = state


class BreakerBoard:
    """Every upstream's breaker, shared through Redis."""

    def __init__(
        self,
        redis: Redis,
        config: BreakerConfig,
        *,
        sync_interval_s: float = 0.0,
        prefix: str = "llm-proxy:breaker",
    ) -> None:
        self.redis = redis
        self.config = config
        self.prefix = prefix
        self.local = LocalBreakers()
        # A state read from Redis is reused for this long: under load that saves a round trip per
        # call, at the price of learning another replica's transition up to this much later.
        # Transitions themselves always read fresh state inside a transaction.
        self.sync_interval_s = sync_interval_s
        self._seen: dict[str, tuple[float, BreakerState]] = {}
        # Keep a key a while after its last change so an idle closed breaker cleans itself up.
        self.ttl_s = int(max(config.window_s, config.open_s + config.probe_timeout_s) * 4) + 1

    def _key(self, upstream: str) -> str:
        return f"{self.prefix}:{upstream}"

    def _observe(self, upstream: str, before: State, after: State) -> None:
        metrics.BREAKER_STATE.labels(upstream).set(STATE_VALUES[after])
        if before != after:
            metrics.BREAKER_TRANSITIONS.labels(upstream, after).inc()
            log.warning(
                "circuit breaker %s: %s -> %s", upstream, before, after,
                extra={"upstream": upstream, "from_state": before, "to_state": after},
            )  # fmt: skip

    def _redis_failed(self, exc: RedisError) -> None:
        metrics.REDIS_ERRORS.labels("breaker").inc()
        log.warning("breaker state unavailable in Redis, using this replica's: %s", exc)

    def _remember(self, upstream: str, state: BreakerState) -> None:
        self._seen[upstream] = (time.monotonic(), state)

    async def _read(self, upstream: str) -> BreakerState:
        seen = self._seen.get(upstream)
        if seen is not None and time.monotonic() - seen[0] < self.sync_interval_s:
            return seen[1]
        state = BreakerState.decode(await self.redis.hgetall(self._key(upstream)))
        self._remember(upstream, state)
        return state

    async def acquire(self, upstream: str) -> Permit:
        now = time.time()
        try:
            state = await self._read(upstream)
            permit, changed = decide(state, now, self.config)
            if changed is not None:
                applied = await self._take_probe(upstream)
                if applied is None:
                    return Permit(False, retry_after_s=self.config.open_s, seen="half_open")
                permit = applied
            self._observe(upstream, state.state, permit.seen)
            return permit
        except RedisError as exc:
            self._redis_failed(exc)
            state = self.local.get(upstream)
            permit, changed = decide(state, now, self.config)
            if changed is not None:
                self.local.put(upstream, changed)
            self._observe(upstream, state.state, permit.seen)
            return permit

    async def _take_probe(self, upstream: str) -> Permit | None:
        """Take the probe atomically: of the replicas racing for it, exactly one wins."""
        key = self._key(upstream)
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                current = BreakerState.decode(await pipe.hgetall(key))
                self._remember(upstream, current)
                permit, changed = decide(current, time.time(), self.config)
                if changed is None:
                    return permit if permit.allowed else None
                pipe.multi()
                pipe.hset(key, mapping=changed.encode())
                pipe.expire(key, self.ttl_s)
                await pipe.execute()
                self._remember(upstream, changed)
                return permit
            except WatchError:
                return None

    async def record(self, upstream: str, permit: Permit, *, ok: bool) -> None:
        """Report a call's outcome. Successes on a closed breaker cost nothing."""
        if ok and not permit.probe:
            return

        def step(state: BreakerState) -> BreakerState | None:
            return (
                after_success(state, permit.probe) if ok else after_failure(state, time.time(), self.config)
            )

        await self._apply(upstream, step)

    async def release_probe(self, upstream: str, permit: Permit) -> None:
        """A probe that will never report (its client left): let the next call probe at once."""
        if permit.probe:
            await self._apply(upstream, release_probe)

    async def _apply(self, upstream: str, step: Callable[[BreakerState], BreakerState | None]) -> None:
        try:
            await self._apply_in_redis(upstream, step)
        except RedisError as exc:
            self._redis_failed(exc)
            state = self.local.get(upstream)
            new = step(state)
            if new is not None:
                self.local.put(upstream, new)
                self._observe(upstream, state.state, new.state)

    async def _apply_in_redis(
        self, upstream: str, step: Callable[[BreakerState], BreakerState | None]
    ) -> None:
        key = self._key(upstream)
        for _ in range(8):  # optimistic concurrency: retry when another replica wrote in between
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    state = BreakerState.decode(await pipe.hgetall(key))
                    self._remember(upstream, state)
                    new = step(state)
                    if new is None or new == state:
                        return
                    pipe.multi()
                    if new == BreakerState():
                        pipe.delete(key)
                    else:
                        pipe.hset(key, mapping=new.encode())
                        pipe.expire(key, self.ttl_s)
                    await pipe.execute()
                    self._remember(upstream, new)
                    self._observe(upstream, state.state, new.state)
                    return
                except WatchError:
                    continue

    async def state_of(self, upstream: str) -> State:
        try:
            return BreakerState.decode(await self.redis.hgetall(self._key(upstream))).state
        except RedisError:
            return self.local.get(upstream).state
