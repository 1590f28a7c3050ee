"""A 429/500 storm: the proxy retries, opens the breaker, falls back, and recovers through half-open.

Each step is checked in the metrics as well as in what the upstream received.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("clean")]

OPEN_S = 1.5  # BREAKER_OPEN_S in conftest


def upstream_label(fake_upstream: Any) -> str:
    """The breaker's (and the metrics') name for the storm model's upstream."""
    return f"storm-up@{fake_upstream.url.removeprefix('http://')}/v1"


def test_storm_retries_opens_the_breaker_falls_back_and_recovers(
    proxy: Any, proxy_replica: Any, fake_upstream: Any
) -> None:
    upstream = upstream_label(fake_upstream)
    replica = proxy_replica()  # started first: starting takes longer than the breaker stays open
    fake_upstream.script(
        {"model": "storm-up", "status": 429, "retry_after": 0.1, "times": 2},
        {"model": "storm-up", "status": 500, "times": 50},
    )

    # 1. Three attempts (429, 429 after its Retry-After, 500), then the fallback answers.
    first = proxy.chat("storm", "storm 1")
    assert first.status_code == 200
    assert first.headers["x-ragfleet-served-by"] == "backup"
    assert len(fake_upstream.requests("storm-up")) == 3
    assert proxy.metric("ragfleet_llm_proxy_retries_total", upstream=upstream, reason="http_429") == 2
    assert proxy.metric("ragfleet_llm_proxy_fallbacks_total", model="storm", fallback="backup") == 1
    assert proxy.metric("ragfleet_llm_proxy_breaker_state", upstream=upstream) == 0

    # 2. The fourth failure within the window opens the breaker; the fallback answers again.
    second = proxy.chat("storm", "storm 2")
    assert second.headers["x-ragfleet-served-by"] == "backup"
    assert len(fake_upstream.requests("storm-up")) == 4
    assert proxy.metric("ragfleet_llm_proxy_breaker_transitions_total", upstream=upstream, state="open") == 1
    assert proxy.metric("ragfleet_llm_proxy_breaker_state", upstream=upstream) == 2

    # 3. Open: the primary is not called at all, by this replica or by another one (state in Redis).
    for client, text in ((proxy, "storm 3"), (replica, "storm 4")):
        response = client.chat("storm", text)
        assert response.status_code == 200
        assert response.headers["x-ragfleet-served-by"] == "backup"
    assert len(fake_upstream.requests("storm-up")) == 4
    assert proxy.metric("ragfleet_llm_proxy_breaker_rejections_total", upstream=upstream) >= 1
    assert replica.metric("ragfleet_llm_proxy_breaker_state", upstream=upstream) == 2

    # 4. The storm passes; once open_s is over, one probe goes through and closes the breaker.
    fake_upstream.reset()
    time.sleep(OPEN_S + 0.2)
    recovered = proxy.chat("storm", "storm 5")
    assert recovered.status_code == 200
    assert recovered.headers["x-ragfleet-served-by"] == "storm"
    assert (
        proxy.metric("ragfleet_llm_proxy_breaker_transitions_total", upstream=upstream, state="half_open")
        == 1
    )
    assert (
        proxy.metric("ragfleet_llm_proxy_breaker_transitions_total", upstream=upstream, state="closed") == 1
    )
    assert proxy.metric("ragfleet_llm_proxy_breaker_state", upstream=upstream) == 0
    assert replica.chat("storm", "storm 6").headers["x-ragfleet-served-by"] == "storm"
    assert (
        proxy.metric("ragfleet_llm_proxy_upstream_attempts_total", upstream=upstream, outcome="http_5xx") == 2
    )


def test_a_failed_probe_opens_the_breaker_again(proxy: Any, fake_upstream: Any) -> None:
    upstream = upstream_label(fake_upstream)
    fake_upstream.script({"model": "storm-up", "status": 500, "times": 6})
    proxy.chat("storm", "probe 1")  # three failures
    proxy.chat("storm", "probe 2")  # the fourth opens it
    opened = proxy.metric("ragfleet_llm_proxy_breaker_transitions_total", upstream=upstream, state="open")
    time.sleep(OPEN_S + 0.2)
    assert proxy.chat("storm", "probe 3").headers["x-ragfleet-served-by"] == "backup"  # the probe failed
    assert (
        proxy.metric("ragfleet_llm_proxy_breaker_transitions_total", upstream=upstream, state="open")
        == opened + 1
    )
    assert proxy.metric("ragfleet_llm_proxy_breaker_state", upstream=upstream) == 2


def test_without_redis_the_proxy_serves_and_keeps_a_local_breaker(
    proxy_replica: Any, fake_upstream: Any
) -> None:
    lonely = proxy_replica("llm-proxy-no-redis", REDIS_URL="redis://127.0.0.1:1/0")
    assert lonely.chat("plain", "no redis here").status_code == 200
    upstream = upstream_label(fake_upstream)
    fake_upstream.script({"model": "storm-up", "status": 500, "times": 10})
    lonely.chat("storm", "local 1")
    lonely.chat("storm", "local 2")
    assert lonely.metric("ragfleet_llm_proxy_breaker_state", upstream=upstream) == 2
    assert lonely.metric("ragfleet_llm_proxy_redis_errors_total", component="breaker") > 0
    assert len(fake_upstream.requests("storm-up")) == 4
