"""Pytest fixtures shared by every service's tests: a real Redis and real service processes.

Registered once, in the root ``conftest.py``. It also holds the marker rule: a test that starts a
process (Redis, a service, a browser, helm, anything through ``subprocess``, ``multiprocessing``,
``os.fork`` or ``os.system``) or listens on a port must be marked ``integration``, so that
``make test-unit`` (``-m "not integration"``) starts none — and, since a module whose
``pytestmark`` says ``integration`` holds nothing such a run selects, that run does not even
import those modules (their imports — schemathesis, playwright, openai... — were most of its time).
"""

from __future__ import annotations

import _posixsubprocess
import ast
import itertools
import os
import re
import socket
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ragfleet.devstack.processes import ManagedProcess

PROCESS_FIXTURES = frozenset({"redis_server", "redis_url", "run_service"})
# Every way Python starts a process: Popen (and asyncio's subprocesses, built on it), its fork_exec
# as bound in subprocess and in _posixsubprocess (multiprocessing's spawn and forkserver), posix_spawn,
# fork (multiprocessing's fork, pty), os.system.
_PROCESS_STARTERS = (
    (subprocess, "_fork_exec"),
    (_posixsubprocess, "fork_exec"),
    (os, "fork"),
    (os, "forkpty"),
    (os, "posix_spawn"),
    (os, "posix_spawnp"),
    (os, "system"),
)


@pytest.fixture(autouse=True)
def _processes_only_in_integration_tests(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    if request.node.get_closest_marker("integration"):
        yield
        return
    wanted = PROCESS_FIXTURES.intersection(request.fixturenames)
    if wanted:
        pytest.fail(
            f"{request.node.nodeid} uses {sorted(wanted)}, which start processes: mark it integration"
        )

    def refusing(what: str) -> Callable[..., None]:
        def refuse(*args: object, **kwargs: object) -> None:
            raise RuntimeError(f"{request.node.nodeid} {what}: mark it integration")

        return refuse

    def refuse_popen(self: subprocess.Popen[bytes], args: object, *rest: object, **kwargs: object) -> None:
        raise RuntimeError(f"{request.node.nodeid} starts a process ({args!r}): mark it integration")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse_popen)
    for module, name in _PROCESS_STARTERS:
        if hasattr(module, name):
            monkeypatch.setattr(module, name, refusing(f"starts a process ({module.__name__}.{name})"))
    monkeypatch.setattr(socket.socket, "listen", refusing("listens on a socket (a server)"))
    # In a whole-suite run the session's servers (Redis, started by an integration test's fixture)
    # are children already: only a child this test added counts.
    before = set(_live_children())
    yield
    # What the patches cannot see (a C extension's own fork, uvloop's spawn): a child still alive.
    children = sorted(set(_live_children()) - before)
    if children:
        pytest.fail(f"{request.node.nodeid} left child processes {children}: mark it integration")


def _live_children() -> list[int]:
    pid, found = os.getpid(), []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(c) for c in task.read_text().split()]
        except OSError:
            continue
    return sorted(found)


# -- not importing what a run cannot select -------------------------------------------------------------


def _module_marks(path: Path) -> frozenset[str]:
    """The marks a test module's ``pytestmark`` gives every test in it, read from its source."""
    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return frozenset()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in targets):
            return frozenset(
                n.attr
                for n in ast.walk(value)
                if isinstance(n, ast.Attribute)
                and isinstance(n.value, ast.Attribute)
                and n.value.attr == "mark"
            )
    return frozenset()


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Skip importing a test module when the ``-m`` expression selects none of its tests whatever
    marks they add to their module's (a test can add marks, never remove them): the same tests run,
    without the import. Only plain expressions of mark names are read; anything else imports as usual."""
    markexpr = config.getoption("markexpr", "")
    if not markexpr or "(" in markexpr or collection_path.suffix != ".py":
        return None
    if not collection_path.name.startswith("test_"):
        return None
    marks = _module_marks(collection_path)
    if not marks:
        return None
    from _pytest.mark.expression import Expression  # pytest's own -m parser

    expression = Expression.compile(markexpr)
    others = sorted(set(re.findall(r"[A-Za-z_]\w*", markexpr)) - {"and", "or", "not"} - marks)
    if len(others) > 8:
        return None
    for added in itertools.product((False, True), repeat=len(others)):
        chosen = marks | {name for name, on in zip(others, added, strict=True) if on}
        if expression.evaluate(lambda name, /, chosen=chosen, **_: name in chosen):
            return None
    return True


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
        from ragfleet.devstack.processes import start_redis

        self.process.stop()
        self.process = start_redis(self.port, self.workdir)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, for the whole test session."""
    from ragfleet.devstack.processes import free_port, start_redis

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
    from ragfleet.devstack.processes import free_port, start_service

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
