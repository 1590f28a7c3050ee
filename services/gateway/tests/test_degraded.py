"""Readiness is the gateway's own; a feature whose dependency is down or left out answers 503.

In process (no port), against the session's real Redis; the downstreams are either a port where
nothing listens or not configured at all.
"""

from __future__ import annotations

import pytest

from ragfleet.gateway.config import GatewaySettings

from .conftest import KeyMaker, in_process, offline_settings


async def test_ready_with_every_downstream_and_redis_down() -> None:
    async with in_process(offline_settings("redis://127.0.0.1:1/0")) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready"
        # A feature that needs Redis (here: checking a key) says so with a 503 of the error model.
        search = await client.post("/v1/search", json={"query": "x"}, headers={"X-API-Key": "rfk_x_y"})
        assert search.status_code == 503
        assert search.json()["error"]["request_id"]


@pytest.mark.integration
async def test_a_downstream_that_is_down_is_a_503_naming_it(redis_url: str, make_key: KeyMaker) -> None:
    headers = {"X-API-Key": await make_key("acme", ["default"])}
    async with in_process(offline_settings(redis_url)) as client:
        assert (await client.get("/readyz")).status_code == 200
        search = await client.post("/v1/search", json={"query": "vacation"}, headers=headers)
        assert search.status_code == 503
        assert search.json()["error"]["details"] == {"service": "retrieval"}
        chat = await client.post("/v1/chat", json={"message": "vacation?"}, headers=headers)
        assert chat.status_code == 503
        assert chat.json()["error"]["details"] == {"service": "retrieval"}
        job = await client.get("/v1/jobs/abc", headers=headers)
        assert job.status_code == 503
        assert job.json()["error"]["details"] == {"service": "ingestion"}


@pytest.mark.integration
@pytest.mark.parametrize("url", ["", "  "])
async def test_a_component_left_out_has_no_url_and_its_routes_say_so(
    redis_url: str, make_key: KeyMaker, url: str
) -> None:
    headers = {"X-API-Key": await make_key("acme", ["default"])}
    configured = offline_settings(redis_url, ingestion_url=url)
    assert configured.ingestion_url is None
    async with in_process(configured) as client:
        assert (await client.get("/readyz")).status_code == 200
        for method, path in (("POST", "/v1/documents"), ("GET", "/v1/jobs/j1"), ("GET", "/v1/documents/d1")):
            response = await client.request(method, path, headers=headers, json={"documents": []})
            assert response.status_code == 503, (path, response.text)
            error = response.json()["error"]
            assert error["code"] == "component_disabled"
            assert error["message"] == "ingestion is not enabled in this deployment"
        # Everything else still serves.
        assert (await client.get("/v1/stats")).status_code == 200


def test_production_refuses_a_placeholder_admin_key_and_allows_none() -> None:
    from pydantic import ValidationError

    production = {
        "environment": "production",
        "service_token": "a-real-service-token-0123",
        "redis_url": "redis://:a-real-password-0123@redis:6379/0",
    }
    with pytest.raises(ValidationError, match=r"admin_key \(RAGFLEET_GATEWAY_ADMIN_KEY\) is not set"):
        GatewaySettings(**production, admin_key=" " * 32)  # type: ignore[arg-type]
    GatewaySettings(**production)  # type: ignore[arg-type]
