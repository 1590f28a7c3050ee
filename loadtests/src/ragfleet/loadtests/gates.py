"""Pass/fail gates checked when a run ends; any failed gate makes the process exit non-zero.

The gates work on a plain snapshot of the run (``RunSummary``), not on Locust's objects, so they
are tested without running Locust and the report can print exactly what was judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ragfleet.loadtests.promscrape import HitRate

TTFT_REQUEST_TYPE = "TTFT"
GATES_FAILED_EXIT_CODE = 3  # distinct from Locust's 1 (request errors) and 2 (crash)
ECHO_APP_NAMES = {"fastapi": "FastAPI echo app", "bare": "bare echo app"}


@dataclass(frozen=True)
class EndpointStats:
    method: str
    name: str
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def label(self) -> str:
        return f"{self.method} {self.name}"


@dataclass(frozen=True)
class RunSummary:
    endpoints: list[EndpointStats]
    total_requests: int
    total_failures: int
    duration_s: float
    hit_rate: HitRate | None = None
    hit_rate_error: str | None = None


@dataclass(frozen=True)
class GateConfig:
    """Targets; a target of ``None`` (``off`` on the command line) turns its gate off."""

    min_hit_rate: float | None = 0.70
    hit_rate_cache: str = "search"
    min_qps: float | None = 1000.0
    qps_endpoint: str = "/v1/search"
    max_failure_ratio: float | None = 0.01
    # Endpoint-name prefix -> p95 limit in ms; "*" applies to every endpoint not matched otherwise.
    max_p95_ms: dict[str, float] = field(default_factory=lambda: {"*": 2000.0})
    max_ttft_p95_ms: float | None = 3000.0
    # The same per prefix for p99 (the tail scenario's bound); none by default.
    max_p99_ms: dict[str, float] = field(default_factory=dict)
    # The ratio gate: QPS of --gate-qps-endpoint ÷ an echo app's req/s under the same Locust in the
    # same run (``echo_rps``, measured by the runner just before; ``echo_app`` names which, FastAPI
    # by default as issue #18 measured it). It holds on any machine where the absolute QPS gate is
    # only true of one kind; without an echo figure it is not judged.
    min_echo_ratio: float | None = 0.6
    echo_rps: float | None = None
    echo_app: str = "fastapi"


@dataclass(frozen=True)
class Verdict:
    gate: str
    target: str
    measured: str
    passed: bool

    @property
    def status(self) -> str:
        return "PASS" if self.passed else "FAIL"


def parse_p95_limits(spec: str) -> dict[str, float]:
    """``"*=1000,/v1/chat=3000"`` → ``{"*": 1000.0, "/v1/chat": 3000.0}``; ``off`` → ``{}``."""
    if spec.strip().lower() in ("", "off", "none"):
        return {}
    limits: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, value = part.rpartition("=")
        if not sep or not name.strip():
            raise ValueError(f"p95 limit {part!r} should look like NAME=MS (NAME a prefix or *)")
        try:
            limits[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"p95 limit {part!r}: {value!r} is not a number of milliseconds") from None
    return limits


def parse_target(value: str) -> float | None:
    """A gate target from the command line: a number, or ``off``/``none`` to disable the gate."""
    if value.strip().lower() in ("off", "none", ""):
        return None
    return float(value)


def _p95_limit(limits: dict[str, float], name: str) -> float | None:
    prefixes = [prefix for prefix in limits if prefix != "*" and name.startswith(prefix)]
    if prefixes:
        return limits[max(prefixes, key=len)]  # the most specific prefix wins
    return limits.get("*")


def evaluate(summary: RunSummary, config: GateConfig) -> list[Verdict]:
    verdicts: list[Verdict] = []
    requests = [e for e in summary.endpoints if e.method != TTFT_REQUEST_TYPE]

    if config.min_hit_rate is not None:
        target = f"> {config.min_hit_rate:.0%} (cache {config.hit_rate_cache!r}, from /metrics)"
        hit = summary.hit_rate
        if hit is None or hit.rate is None:
            why = summary.hit_rate_error or (
                f"no lookups counted for cache {config.hit_rate_cache!r}"
                + (
                    f" (caches seen: {', '.join(hit.available_caches)})"
                    if hit and hit.available_caches
                    else ""
                )
            )
            verdicts.append(Verdict("cache hit rate", target, f"no data: {why}", False))
        else:
            measured = f"{hit.rate:.1%}: {hit.describe()}"
            verdicts.append(Verdict("cache hit rate", target, measured, hit.rate > config.min_hit_rate))

    matched = [e for e in requests if e.name.startswith(config.qps_endpoint)]
    successes = sum(e.requests - e.failures for e in matched)
    qps = successes / summary.duration_s if summary.duration_s > 0 else 0.0
    if config.min_qps is not None:
        verdicts.append(
            Verdict(
                f"QPS {config.qps_endpoint}*",
                f"> {config.min_qps:g} successful req/s",
                f"{qps:,.0f} req/s ({successes} in {summary.duration_s:.1f} s)",
                bool(matched) and qps > config.min_qps,
            )
        )

    if config.min_echo_ratio is not None and config.echo_rps:
        ratio = qps / config.echo_rps
        verdicts.append(
            Verdict(
                f"QPS {config.qps_endpoint}* ÷ echo",
                f">= {config.min_echo_ratio:g} ({ECHO_APP_NAMES.get(config.echo_app, config.echo_app)}, "
                "same Locust, same run)",
                f"{ratio:.2f} ({qps:,.0f} ÷ {config.echo_rps:,.0f} req/s)",
                bool(matched) and ratio >= config.min_echo_ratio,
            )
        )

    if config.max_failure_ratio is not None:
        total = summary.total_requests
        ratio = summary.total_failures / total if total else 1.0
        measured = f"{ratio:.2%} ({summary.total_failures} of {total})" if total else "no requests made"
        verdicts.append(
            Verdict(
                "failure ratio",
                f"<= {config.max_failure_ratio:.2%}",
                measured,
                total > 0 and ratio <= config.max_failure_ratio,
            )
        )

    for endpoint in requests:
        limit = _p95_limit(config.max_p95_ms, endpoint.name)
        if limit is None or endpoint.requests == 0:
            continue
        verdicts.append(
            Verdict(
                f"p95 {endpoint.label}",
                f"<= {limit:g} ms",
                f"{endpoint.p95_ms:g} ms",
                endpoint.p95_ms <= limit,
            )
        )

    for endpoint in requests:
        limit = _p95_limit(config.max_p99_ms, endpoint.name)
        if limit is None or endpoint.requests == 0:
            continue
        verdicts.append(
            Verdict(
                f"p99 {endpoint.label}",
                f"<= {limit:g} ms",
                f"{endpoint.p99_ms:g} ms",
                endpoint.p99_ms <= limit,
            )
        )

    if config.max_ttft_p95_ms is not None:
        for ttft in (e for e in summary.endpoints if e.method == TTFT_REQUEST_TYPE and e.requests):
            verdicts.append(
                Verdict(
                    f"time to first token p95 ({ttft.name})",
                    f"<= {config.max_ttft_p95_ms:g} ms",
                    f"{ttft.p95_ms:g} ms over {ttft.requests} answers",
                    ttft.p95_ms <= config.max_ttft_p95_ms,
                )
            )
    return verdicts
