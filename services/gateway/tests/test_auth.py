"""Keys, tenants and limits, against real gateway processes on a real Redis."""

from __future__ import annotations

import asyncio

import httpx
import pytest

pytestmark = pytest.mark.integration


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == code
    assert response.headers["x-ragfleet-replica"]


async def test_missing_wrong_and_foreign_keys(start_gateway, make_key) -> None:
    gateway = start_gateway("gw-auth")
    acme = await make_key("acme", ["handbook"])
    globex = await make_key("globex", ["*"])
    search = {"query": "vacation policy", "collection": "handbook"}
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        assert_error(await client.post("/v1/search", json=search), 401, "unauthorized")
        wrong = {"Authorization": "Bearer rfk_000000000000_not-a-key"}
        assert_error(await client.post("/v1/search", json=search, headers=wrong), 401, "invalid_api_key")

        other_collection = {**search, "collection": "payroll"}
        forbidden = await client.post("/v1/search", json=other_collection, headers={"X-API-Key": acme})
        assert_error(forbidden, 403, "collection_forbidden")
        assert_error(
            await client.post(
                "/v1/chat", json={"message": "hi", "collection": "payroll"}, headers={"X-API-Key": acme}
            ),
            403,
            "collection_forbidden",
        )

        # Sessions are scoped to the tenant: another tenant's id is simply not there.
        assert_error(
            await client.get("/v1/sessions/abc", headers={"Authorization": f"Bearer {globex}"}),
            404,
            "session_not_found",
        )


async def test_oversized_bodies_are_refused_before_being_read(start_gateway, make_key) -> None:
    gateway = start_gateway("gw-size", {"MAX_BODY_BYTES": "4096", "MAX_MESSAGE_CHARS": "100"})
    headers = {"X-API-Key": await make_key("acme", ["default"])}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as client:
        declared = await client.post("/v1/search", json={"query": "x" * 10_000})
        assert_error(declared, 413, "payload_too_large")

        async def chunked():  # no Content-Length: counted as it streams
            for _ in range(10):
                yield b" " * 1000

        streamed = await client.post(
            "/v1/search", content=chunked(), headers={"content-type": "application/json"}
        )
        assert_error(streamed, 413, "payload_too_large")

        long_message = await client.post("/v1/chat", json={"message": "y" * 101})
        assert_error(long_message, 413, "payload_too_large")


async def test_rate_limit_holds_across_two_replicas(start_gateway, make_key) -> None:
    first, second = start_gateway("gw-a"), start_gateway("gw-b")
    # A burst of 6 and a refill far slower than the test: exactly 6 requests may pass.
    headers = {"X-API-Key": await make_key("acme", ["default"], rate_per_s=0.001, burst=6)}
    async with httpx.AsyncClient(headers=headers) as client:
        urls = [f"{gw.url}/v1/sessions/s1" for gw in (first, second)] * 8
        responses = await asyncio.gather(*(client.get(url) for url in urls))
    passed = [r for r in responses if r.status_code != 429]
    limited = [r for r in responses if r.status_code == 429]
    assert len(passed) == 6
    assert {r.status_code for r in passed} == {404}
    assert {r.headers["x-ragfleet-replica"] for r in limited} == {"gw-a", "gw-b"}
    assert all(int(r.headers["retry-after"]) >= 1 for r in limited)
    assert_error(limited[0], 429, "rate_limited")


async def test_a_busy_valid_key_never_spends_the_anonymous_budget(start_gateway, make_key) -> None:
    # Behind an ingress every client shares one address: when a key's cached entry expires, the
    # requests in flight with it must not each pay that address's budget for not-yet-checked keys
    # (before: 40 concurrent requests after an expiry spent it dry and most got 429s).
    gateway = start_gateway(
        "gw-busy-key",
        {"KEY_CACHE_TTL_S": "0.2", "ANONYMOUS_RATE_LIMIT_PER_S": "0.01", "ANONYMOUS_RATE_LIMIT_BURST": "3"},
    )
    headers = {"X-API-Key": await make_key("acme", ["default"], rate_per_s=1000, burst=1000)}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as client:
        for _ in range(3):  # the first sight of the key, then two expiries of its entry
            responses = await asyncio.gather(*(client.get("/v1/sessions/s1") for _ in range(40)))
            assert {r.status_code for r in responses} == {404}, [
                r.text for r in responses if r.status_code != 404
            ][:1]
            await asyncio.sleep(0.3)
        # The budget is still there for what it is for: unknown keys from this address.
        guesses = [{"X-API-Key": f"rfk_00000000000{i}_guess"} for i in range(5)]
        refused = [(await client.get("/v1/sessions/s1", headers=h)).status_code for h in guesses]
    assert refused.count(429) >= 2 and set(refused) <= {401, 429}
