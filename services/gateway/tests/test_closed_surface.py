"""The surface a client without a key can reach: stats behind the key when configured, and a
per-address rate limit on everything not yet authenticated. In process, on the real Redis."""

from __future__ import annotations

import httpx
import pytest

from ragfleet.testkit.pytest_plugin import RunningService

from .conftest import GatewayStarter, KeyMaker, in_process, offline_settings

pytestmark = pytest.mark.integration  # the session's Redis (and, in the last test, gateway processes)


async def test_stats_need_a_key_when_stats_require_key_is_set(redis_url: str, make_key: KeyMaker) -> None:
    key = await make_key("acme", ["default"])
    async with in_process(offline_settings(redis_url, stats_require_key=True)) as client:
        refused = await client.get("/v1/stats")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        assert (await client.get("/v1/stats", headers={"X-API-Key": "rfk_0_wrong"})).status_code == 401
        assert (await client.get("/v1/stats", headers={"X-API-Key": key})).status_code == 200
    async with in_process(offline_settings(redis_url)) as client:
        assert (await client.get("/v1/stats")).status_code == 200


async def test_requests_without_a_valid_key_are_limited_per_address(
    redis_url: str, make_key: KeyMaker
) -> None:
    key = {"X-API-Key": await make_key("acme", ["default"])}
    limited = offline_settings(redis_url, anonymous_rate_limit_per_s=0.2, anonymous_rate_limit_burst=5)
    async with in_process(limited, client=("198.51.100.1", 1000)) as client:
        # The key is checked once (one unit of the address's budget), then trusted by this replica.
        assert (await client.get("/v1/sessions/s1", headers=key)).status_code == 404
        statuses = []
        for attempt in range(6):
            guess = {"X-API-Key": f"rfk_000000000000_guess{attempt}"}
            statuses.append((await client.post("/v1/search", json={"query": "x"}, headers=guess)).status_code)
        assert statuses == [401] * 4 + [429] * 2
        assert (await client.post("/v1/search", json={"query": "x"})).status_code == 429
        refused = await client.get("/v1/stats")  # the open stats spend the same budget
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "anonymous_rate_limited"
        assert int(refused.headers["retry-after"]) >= 1
        # A key this replica already checked is not held back by its address's guesses.
        assert (await client.get("/v1/sessions/s1", headers=key)).status_code == 404
    # Another address has a budget of its own.
    async with in_process(limited, client=("198.51.100.2", 1000)) as client:
        assert (await client.post("/v1/search", json={"query": "x"})).status_code == 401
        assert (await client.get("/v1/stats")).status_code == 200


def test_x_forwarded_for_names_the_client_only_from_a_trusted_proxy(start_gateway: GatewayStarter) -> None:
    def exhaust(gateway: RunningService) -> list[int]:
        """Statuses of unauthenticated requests, each naming another client in X-Forwarded-For."""
        with httpx.Client(base_url=gateway.url) as client:
            return [
                client.get("/v1/stats", headers={"X-Forwarded-For": f"192.0.2.{n}"}).status_code
                for n in range(6)
            ]

    limits = {"ANONYMOUS_RATE_LIMIT_PER_S": "0.1", "ANONYMOUS_RATE_LIMIT_BURST": "3"}
    # The test's connection comes from 127.0.0.1, a trusted proxy by default: each named client
    # gets its own budget.
    assert exhaust(start_gateway("gw-trusted", limits)) == [200] * 6
    # From a peer that is not trusted, the header is ignored: one budget for the peer itself.
    untrusted = start_gateway("gw-untrusted", {**limits, "FORWARDED_ALLOW_IPS": "10.0.0.0/8"})
    assert exhaust(untrusted) == [200] * 3 + [429] * 3
