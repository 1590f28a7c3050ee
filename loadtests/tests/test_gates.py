from __future__ import annotations

import pytest

from ragfleet.loadtests.gates import (
    TTFT_REQUEST_TYPE,
    EndpointStats,
    GateConfig,
    RunSummary,
    evaluate,
    parse_p95_limits,
    parse_target,
)
from ragfleet.loadtests.promscrape import HitRate


def endpoint(
    name: str, requests: int, failures: int = 0, p95: float = 10.0, method: str = "POST"
) -> EndpointStats:
    return EndpointStats(method, name, requests, failures, 0.0, p95 / 2, p95, p95 * 2)


def summary(**overrides: object) -> RunSummary:
    values: dict[str, object] = {
        "endpoints": [
            endpoint("/v1/search [vector]", 60_000, p95=40),
            endpoint("/v1/search [bm25]", 6_000, p95=60),
            endpoint("/v1/chat [sse]", 100, p95=900),
            endpoint("chat sse", 100, p95=150, method=TTFT_REQUEST_TYPE),
        ],
        "total_requests": 66_200,
        "total_failures": 10,
        "duration_s": 60.0,
        "hit_rate": HitRate("search", lookups=66_000, l1_hits=50_000, l2_hits=5_000),
    }
    values.update(overrides)
    return RunSummary(**values)  # type: ignore[arg-type]


def by_gate(config: GateConfig, run: RunSummary) -> dict[str, bool]:
    return {v.gate: v.passed for v in evaluate(run, config)}


def test_a_healthy_run_passes_every_gate() -> None:
    verdicts = by_gate(GateConfig(), summary())
    assert verdicts == {
        "cache hit rate": True,
        "QPS /v1/search*": True,  # 66,000 in 60 s = 1,100 req/s
        "failure ratio": True,
        "p95 POST /v1/chat [sse]": True,
        "p95 POST /v1/search [bm25]": True,
        "p95 POST /v1/search [vector]": True,
        "time to first token p95 (chat sse)": True,
    }


def test_an_unreachable_qps_target_fails() -> None:
    assert by_gate(GateConfig(min_qps=1e6), summary())["QPS /v1/search*"] is False


def test_hit_rate_without_metrics_fails_and_says_why() -> None:
    verdicts = evaluate(summary(hit_rate=None, hit_rate_error="could not scrape x"), GateConfig())
    gate = next(v for v in verdicts if v.gate == "cache hit rate")
    assert not gate.passed
    assert "could not scrape x" in gate.measured


def test_low_hit_rate_and_many_failures_fail() -> None:
    run = summary(hit_rate=HitRate("search", 100, 50, 10), total_failures=5_000)
    verdicts = by_gate(GateConfig(), run)
    assert verdicts["cache hit rate"] is False
    assert verdicts["failure ratio"] is False


def test_p95_limits_pick_the_most_specific_prefix() -> None:
    config = GateConfig(max_p95_ms=parse_p95_limits("*=50,/v1/chat=1000,/v1/search [bm25]=55"))
    verdicts = by_gate(config, summary())
    assert verdicts["p95 POST /v1/search [vector]"] is True
    assert verdicts["p95 POST /v1/search [bm25]"] is False
    assert verdicts["p95 POST /v1/chat [sse]"] is True


def test_gates_can_be_turned_off() -> None:
    config = GateConfig(
        min_hit_rate=parse_target("off"),
        min_qps=parse_target("none"),
        max_failure_ratio=None,
        max_p95_ms=parse_p95_limits("off"),
        max_ttft_p95_ms=None,
    )
    assert evaluate(summary(), config) == []


def test_ttft_gate() -> None:
    assert by_gate(GateConfig(max_ttft_p95_ms=100), summary())["time to first token p95 (chat sse)"] is False


def test_a_run_without_requests_fails_the_failure_ratio_gate() -> None:
    verdicts = by_gate(GateConfig(), summary(endpoints=[], total_requests=0, total_failures=0))
    assert verdicts["failure ratio"] is False


def test_bad_limits_are_explained() -> None:
    with pytest.raises(ValueError, match="NAME=MS"):
        parse_p95_limits("500")
    with pytest.raises(ValueError, match="not a number"):
        parse_p95_limits("*=fast")


def test_the_echo_ratio_is_judged_only_with_an_echo_figure_of_the_same_run() -> None:
    # 66,000 searches in 60 s = 1,100 req/s.
    assert "QPS /v1/search* ÷ echo" not in by_gate(GateConfig(), summary())
    assert by_gate(GateConfig(echo_rps=1_800.0), summary())["QPS /v1/search* ÷ echo"]  # 0.61
    assert not by_gate(GateConfig(echo_rps=2_000.0), summary())["QPS /v1/search* ÷ echo"]  # 0.55
    measured = next(v for v in evaluate(summary(), GateConfig(echo_rps=2_000.0)) if "echo" in v.gate)
    assert measured.measured.startswith("0.55 (1,100 ÷ 2,000 req/s)")
    assert "QPS /v1/search* ÷ echo" not in by_gate(
        GateConfig(echo_rps=2_000.0, min_echo_ratio=None), summary()
    )


def test_p99_limits_are_judged_per_endpoint_when_set() -> None:
    # The helper's p99 is twice its p95: 80 ms for vector, 120 ms for bm25.
    verdicts = by_gate(GateConfig(max_p99_ms={"/v1/search": 100.0}), summary())
    assert verdicts["p99 POST /v1/search [vector]"] and not verdicts["p99 POST /v1/search [bm25]"]
    assert not any(gate.startswith("p99") for gate in by_gate(GateConfig(), summary()))
