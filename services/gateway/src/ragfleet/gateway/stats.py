"""The live performance view: latency percentiles per route, in-flight work, cache hit rates.

Numbers are this replica's (the response names it): each replica keeps the latest
``stats_window`` latencies per route in memory — cheap to record (one deque append on the hot
path), exact percentiles over a recent window when asked. Prometheus (``/metrics``) is the place
for fleet-wide, long-range views; this endpoint is for watching a load test live.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("ragfleet.gateway.stats")

_UNTRACKED_ROUTES = frozenset({"/healthz", "/readyz", "/metrics", "unmatched"})


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


class RouteStats:
    __slots__ = ("count", "errors", "latencies")

    def __init__(self, window: int) -> None:
        self.latencies: deque[float] = deque(maxlen=window)
        self.count = 0
        self.errors = 0

    def snapshot(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        body: dict[str, Any] = {"count": self.count, "errors_5xx": self.errors, "window": len(ordered)}
        if ordered:
            body |= {
                "p50_ms": round(percentile(ordered, 0.50) * 1000, 3),
                "p95_ms": round(percentile(ordered, 0.95) * 1000, 3),
                "p99_ms": round(percentile(ordered, 0.99) * 1000, 3),
                "max_ms": round(ordered[-1] * 1000, 3),
            }
        return body


class GatewayStats:
    """Per-replica counters; ``observe`` is the common middleware's response observer."""

    def __init__(self, replica: str, window: int) -> None:
        self.replica = replica
        self.window = window
        self.started = time.time()
        self.routes: dict[str, RouteStats] = {}
        self.in_flight_http = 0
        self.open_websockets = 0
        self.active_generations = 0
        self.stream_takeovers = 0  # answers this replica regenerated after their replica died
        self.stream_buffer_losses = 0  # streams whose Redis buffer stopped taking events (evicted, down)
        self.search_cache_results = {"hit-edge": 0, "hit-l1": 0, "hit-l2": 0, "hit-semantic": 0, "miss": 0}

    def observe(self, method: str, route: str, status: int, duration_s: float) -> None:
        if route in _UNTRACKED_ROUTES:
            return
        name = f"{method} {route}"
        stats = self.routes.get(name)
        if stats is None:
            stats = self.routes[name] = RouteStats(self.window)
        stats.count += 1
        stats.latencies.append(duration_s)
        if status >= 500:
            stats.errors += 1

    def count_search_cache(self, header: str | None) -> None:
        """Tally where search answers came from (the ``X-Cache`` value sent to the client)."""
        if header in self.search_cache_results:
            self.search_cache_results[header] += 1

    def snapshot(self, retrieval_cache: dict[str, Any] | None = None) -> dict[str, Any]:
        seen = self.search_cache_results
        total = sum(seen.values())

        def share(count: int) -> float | None:
            return round(count / total, 4) if total else None

        cache: dict[str, Any] = {
            "search_as_seen_by_gateway": {
                "requests": total,
                "hit_rate_edge": share(seen["hit-edge"]),
                "hit_rate_l1": share(seen["hit-l1"]),
                "hit_rate_l2": share(seen["hit-l2"]),
                "hit_rate_semantic": share(seen["hit-semantic"]),
                "hit_rate": share(total - seen["miss"]),
            }
        }
        if retrieval_cache is not None:
            cache["retrieval"] = retrieval_cache
        return {
            "service": "gateway",
            "replica": self.replica,
            "time": round(time.time(), 3),
            "uptime_s": round(time.time() - self.started, 1),
            "in_flight": {
                "http": self.in_flight_http,
                "websockets": self.open_websockets,
                "generations": self.active_generations,
            },
            "stream_takeovers": self.stream_takeovers,
            "stream_buffer_losses": self.stream_buffer_losses,
            "routes": {name: stats.snapshot() for name, stats in sorted(self.routes.items())},
            "cache": cache,
        }


class InFlightMiddleware:
    """Counts HTTP requests being served and WebSockets open, for the stats view."""

    def __init__(self, app: ASGIApp, stats: GatewayStats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            self.stats.in_flight_http += 1
            try:
                await self.app(scope, receive, send)
            finally:
                self.stats.in_flight_http -= 1
        elif kind == "websocket":
            self.stats.open_websockets += 1
            try:
                await self.app(scope, receive, send)
            finally:
                self.stats.open_websockets -= 1
        else:
            await self.app(scope, receive, send)


class RetrievalCacheStats:
    """Retrieval's own cache statistics, fetched at most once per ``max_age_s``.

    The feed and ``/v1/stats`` may be polled often; one fetch serves them all, and a retrieval
    that is down or lacks the endpoint costs one short timeout, not an error.
    """

    def __init__(self, http: httpx.AsyncClient, url: str | None, max_age_s: float = 1.0) -> None:
        self.http = http
        self.url = url
        self.max_age_s = max_age_s
        self.fetched_at = 0.0
        self.value: dict[str, Any] | None = None
        self.lock = asyncio.Lock()

    async def get(self) -> dict[str, Any] | None:
        if self.url is None:  # no retrieval in this deployment
            return None
        async with self.lock:
            if time.monotonic() - self.fetched_at < self.max_age_s:
                return self.value
            try:
                response = await self.http.get(self.url, timeout=1.0)
                self.value = response.json() if response.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                self.value = None
            self.fetched_at = time.monotonic()
            return self.value
