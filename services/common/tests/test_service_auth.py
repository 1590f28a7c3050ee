"""Internal endpoints answer only callers with the service token; every internal client sends it."""

from __future__ import annotations

import httpx
import pytest
from fastapi import Header
from pydantic import ValidationError

from ragfleet.common.app import create_service_app
from ragfleet.common.clients import create_http_client
from ragfleet.common.config import ServiceSettings
from ragfleet.common.contracts import SERVICE_TOKEN_HEADER, TENANT_HEADER

TOKEN = "s3rvice-token-for-tests"


def internal_app(token: str = TOKEN, *, public: bool = False) -> httpx.AsyncClient:
    app = create_service_app(
        ServiceSettings(service_name="test", service_token=token), title="t", public=public
    )

    @app.get("/internal/tenant")
    async def tenant(x_ragfleet_tenant: str = Header("default")) -> dict[str, str]:
        return {"tenant": x_ragfleet_tenant}

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")


async def test_a_call_without_the_token_is_refused_and_its_tenant_header_ignored() -> None:
    async with internal_app() as client:
        for headers in ({TENANT_HEADER: "acme"}, {TENANT_HEADER: "acme", SERVICE_TOKEN_HEADER: "guess"}):
            refused = await client.get("/internal/tenant", headers=headers)
            assert refused.status_code == 401
            error = refused.json()["error"]
            assert error["code"] == "service_token_required"
            assert error["request_id"] == refused.headers["x-request-id"]
        allowed = await client.get(
            "/internal/tenant", headers={TENANT_HEADER: "acme", SERVICE_TOKEN_HEADER: TOKEN}
        )
        assert allowed.json() == {"tenant": "acme"}


async def test_probes_and_scrapes_need_no_token() -> None:
    async with internal_app() as client:
        for path in ("/healthz", "/metrics", "/openapi.json"):
            assert (await client.get(path)).status_code == 200, path


async def test_no_token_configured_or_a_public_app_checks_nothing() -> None:
    for client in (internal_app(""), internal_app(public=True)):
        async with client:
            assert (await client.get("/internal/tenant", headers={TENANT_HEADER: "acme"})).status_code == 200


async def test_the_internal_client_sends_the_token_and_an_outside_one_does_not() -> None:
    settings = ServiceSettings(service_token=TOKEN)
    async with (
        create_http_client(settings) as internal,
        create_http_client(settings, internal=False) as outside,
    ):
        assert (
            internal.build_request("GET", "http://retrieval/v1/search").headers[SERVICE_TOKEN_HEADER] == TOKEN
        )
        assert SERVICE_TOKEN_HEADER not in outside.build_request("GET", "https://api.example/v1").headers


REDIS_WITH_PASSWORD = "redis://:a-real-password-0123@redis:6379/0"


@pytest.mark.parametrize("environment", ["test", "production"])
@pytest.mark.parametrize("token", ["", "changeme", " secret "])
def test_outside_development_a_missing_or_placeholder_token_is_refused(token: str, environment: str) -> None:
    with pytest.raises(
        ValidationError, match=r"service_token \(RAGFLEET_SERVICE_TOKEN\) is (not set|a placeholder)"
    ):
        ServiceSettings(environment=environment, service_token=token, redis_url=REDIS_WITH_PASSWORD)  # type: ignore[arg-type]
    ServiceSettings(environment="development", service_token=token)
    ServiceSettings(environment=environment, service_token=TOKEN, redis_url=REDIS_WITH_PASSWORD)  # type: ignore[arg-type]


@pytest.mark.parametrize("environment", ["test", "production"])
def test_outside_development_a_redis_without_a_password_is_refused(environment: str) -> None:
    with pytest.raises(
        ValidationError,
        match=r"state Redis password \(RAGFLEET_STATE_REDIS_PASSWORD, or in RAGFLEET_STATE_REDIS_URL\) is not set",
    ):
        ServiceSettings(environment=environment, service_token=TOKEN, redis_url="redis://redis:6379/0")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="cache Redis password"):
        ServiceSettings(
            environment=environment,  # type: ignore[arg-type]
            service_token=TOKEN,
            state_redis_url="redis://state:6379/0",
            state_redis_password="a-real-password-0123",
            cache_redis_url="redis://cache:6379/0",
        )
    ServiceSettings(
        environment=environment,  # type: ignore[arg-type]
        service_token=TOKEN,
        redis_url="redis://redis:6379/0",
        state_redis_password="a-real-password-0123",
        cache_redis_password="another-real-one-4567",
    )
