"""The suite's own command-line options, added to Locust's parser (each also readable from an env var).

Locust's parser (configargparse) reads ``env_var`` itself, so the suite never touches os.environ.
"""

from __future__ import annotations

from typing import Any

from ragfleet.devstack.settings import DevstackSettings
from ragfleet.loadtests.gates import GateConfig, parse_p95_limits, parse_target

ENV_PREFIX = "RAGFLEET_LOADTEST_"


def add_options(parser: Any) -> None:
    def option(name: str, **kwargs: Any) -> None:
        env = ENV_PREFIX + name.lstrip("-").replace("-", "_").upper()
        parser.add_argument(name, env_var=env, include_in_web_ui=False, **kwargs)

    group = "ragfleet"
    option("--api-key", default="", help=f"{group}: gateway API key (Authorization: Bearer)")
    option("--scenario", default="custom", help=f"{group}: scenario name, recorded in baggage and the report")
    option("--collection", default="default", help=f"{group}: collection searched and uploaded to")
    option("--query-file", default="", help=f"{group}: query pool, one a line, most popular first")
    option(
        "--query-pool-size",
        type=int,
        default=0,
        help=f"{group}: widen the pool to this many distinct questions (narrowed variants of it); 0: as is",
    )
    option("--zipf-exponent", type=float, default=1.1, help=f"{group}: skew of query popularity")
    option(
        "--search-modes",
        default="vector:6,hybrid:2,bm25:2",
        help=f"{group}: search modes and weights, e.g. 'vector' or 'vector:6,hybrid:2,bm25:2'",
    )
    option("--filter-ratio", type=float, default=0.1, help=f"{group}: share of searches with a filter")
    option(
        "--think-time", type=float, default=0.0, help=f"{group}: seconds a search user waits between requests"
    )
    option("--chat-turns", type=int, default=3, help=f"{group}: messages per chat conversation")
    option(
        "--mix",
        default="normal",
        choices=["normal", "intense", "rag"],
        help=f"{group}: weights of the mixed scenario",
    )
    option("--seed", type=int, default=0, help=f"{group}: random seed (0: random)")
    # Step-ramp shape (used only when the shape class is selected).
    option("--step-users", type=int, default=10, help=f"{group}: users added per step")
    option("--step-seconds", type=float, default=10.0, help=f"{group}: length of one step")
    option("--step-max-users", type=int, default=200, help=f"{group}: stop ramping here")
    option("--step-p95-ms", type=float, default=500.0, help=f"{group}: the p95 that counts as broken")
    # Gates.
    option("--gate-hit-rate", default="0.70", help=f"{group}: minimum cache hit rate from /metrics, or 'off'")
    option("--gate-hit-rate-cache", default="search", help=f"{group}: cache label the hit rate is read for")
    option(
        "--metrics-url",
        action="append",
        default=None,
        help=f"{group}: /metrics of retrieval and of every gateway replica (repeat); default: make run's",
    )
    option(
        "--gate-qps",
        default="1000",
        help=f"{group}: minimum successful req/s on --gate-qps-endpoint, or 'off'",
    )
    option(
        "--gate-qps-endpoint", default="/v1/search", help=f"{group}: request-name prefix the QPS gate counts"
    )
    option(
        "--gate-echo-ratio",
        default="0.6",
        help=f"{group}: minimum QPS ÷ --echo-rps (judged only when --echo-rps is given), or 'off'",
    )
    option(
        "--echo-rps",
        type=float,
        default=0.0,
        help=f"{group}: the echo app's req/s under this Locust, measured in this run (the runner sets it)",
    )
    option(
        "--echo-app",
        default="fastapi",
        help=f"{group}: which echo app --echo-rps was measured on (fastapi or bare; the runner sets it)",
    )
    option("--gate-failure-ratio", default="0.01", help=f"{group}: maximum failed/total, or 'off'")
    option(
        "--gate-p95-ms",
        default="*=2000",
        help=f"{group}: p95 limits per request-name prefix, e.g. '*=1000,/v1/chat=3000', or 'off'",
    )
    option(
        "--gate-p99-ms",
        default="off",
        help=f"{group}: p99 limits per request-name prefix, like --gate-p95-ms, or 'off'",
    )
    option(
        "--gate-ttft-p95-ms", default="3000", help=f"{group}: chat time-to-first-token p95 limit, or 'off'"
    )
    option("--report-dir", default="", help=f"{group}: where the summary page and plots go (empty: none)")
    option("--run-command", default="", help=f"{group}: the command line to print in the report")


def stack_metrics_urls(settings: DevstackSettings | None = None) -> list[str]:
    """Where a one-machine stack counts its search cache: retrieval, and each gateway (the edge tier)."""
    settings = settings or DevstackSettings()
    ports = (settings.retrieval_port, *settings.gateway_ports)
    return [f"http://127.0.0.1:{port}/metrics" for port in ports]


def metrics_urls(options: Any) -> list[str]:
    return list(options.metrics_url or stack_metrics_urls())


def gate_config(options: Any) -> GateConfig:
    return GateConfig(
        min_hit_rate=parse_target(options.gate_hit_rate),
        hit_rate_cache=options.gate_hit_rate_cache,
        min_qps=parse_target(options.gate_qps),
        qps_endpoint=options.gate_qps_endpoint,
        max_failure_ratio=parse_target(options.gate_failure_ratio),
        max_p95_ms=parse_p95_limits(options.gate_p95_ms),
        max_p99_ms=parse_p95_limits(options.gate_p99_ms),
        max_ttft_p95_ms=parse_target(options.gate_ttft_p95_ms),
        min_echo_ratio=parse_target(options.gate_echo_ratio),
        echo_rps=options.echo_rps or None,
        echo_app=options.echo_app,
    )
