"""Fixtures of the gateway's tests: real gateway processes against a real Redis."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from ragfleet.devstack.pytest_plugin import RunningService, ServiceStarter

GatewayStarter = Callable[..., RunningService]


@pytest.fixture
def start_gateway(run_service: ServiceStarter, redis_url: str) -> GatewayStarter:
    """Start a gateway replica (``python -m ragfleet.gateway``) on the test Redis."""

    def start(name: str = "gateway", env: Mapping[str, str] | None = None) -> RunningService:
        settings = {"REDIS_URL": redis_url, "REPLICA_NAME": name, "ACCESS_LOG": "false", **(env or {})}
        return run_service(name, "ragfleet.gateway", "RAGFLEET_GATEWAY_", settings)

    return start
