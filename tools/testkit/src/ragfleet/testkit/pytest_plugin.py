"""Pytest fixtures shared by every service's tests: a real Redis and real service processes.

Registered once, in the root ``conftest.py``. It also holds the marker rule: a test that starts a
process (Redis, a service, a browser, helm, anything through ``subprocess``) must be marked
``integration``, so that ``make test-unit`` (``-m "not integration"``) starts none.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from ragfleet.devstack.processes import ManagedProcess, free_port, start_redis, start_service

PROCESS_FIXTURES = frozenset({"redis_server", "redis_url", "run_service"})


@pytest.fixture(autouse=True)
def _processes_only_in_integration_tests(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if request.node.get_closest_marker("integration"):
        return
    wanted = PROCESS_FIXTURES.intersection(request.fixturenames)
    if wanted:
        pytest.fail(
            f"{request.node.nodeid} uses {sorted(wanted)}, which start processes: mark it integration"
        )

    def refuse(self: subprocess.Popen[bytes], args: object, *rest: object, **kwargs: object) -> None:
        raise RuntimeError(f"{request.node.nodeid} starts a process ({args!r}): mark it integration")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


@dataclass
class RedisServer:
    port: int
    workdir: Path
    process: ManagedProcess

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.stop()

    def restart(self) -> None:
        """Start it again on the same port (for tests of what happens while Redis is gone)."""
        self.process.stop()
        self.process = start_redis(self.port, self.workdir)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, for the whole test session."""
    workdir = tmp_path_factory.mktemp("redis")
    port = free_port()
    server = RedisServer(port, workdir, start_redis(port, workdir))
    yield server
    server.process.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The session Redis, flushed before each test so tests never see each other's keys."""
    import redis

    if not redis_server.process.alive():
        redis_server.restart()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@dataclass
class RunningService:
    name: str
    port: int
    process: ManagedProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


ServiceStarter = Callable[..., RunningService]


@pytest.fixture
def run_service(tmp_path: Path) -> Iterator[ServiceStarter]:
    """Start ``python -m <module>`` as a real process on a free port; stopped after the test.

    ``env_prefix`` is the service's settings prefix (``RAGFLEET_RETRIEVAL_``); ``env`` holds
    further settings by field name (``{"REDIS_URL": ...}``) or by full name when it has a ``RAGFLEET_``
    or ``OTEL_`` prefix already.
    """
    started: list[RunningService] = []

    def start(
        name: str,
        module: str,
        env_prefix: str,
        env: Mapping[str, str] | None = None,
        ready_path: str = "/healthz",
        port: int | None = None,
    ) -> RunningService:
        port = port or free_port()
        # development: the test Redis has no password and internal calls carry no token, which
        # require_secret refuses in any other environment.
        full_env = {f"{env_prefix}PORT": str(port), f"{env_prefix}ENVIRONMENT": "development"}
        for key, value in (env or {}).items():
            full_env[key if key.startswith(("RAGFLEET_", "OTEL_")) else f"{env_prefix}{key}"] = value
        process = start_service(
            name, module, port=port, env=full_env, log_dir=tmp_path / "logs", ready_path=ready_path
        )
        service = RunningService(name, port, process)
        started.append(service)
        return service

    yield start
    for service in reversed(started):
        service.process.stop()
