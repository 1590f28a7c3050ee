"""Starting and stopping the real processes ragfleet is made of: Redis, services, workers, NGINX.

Used by ``make run`` and by the integration and end-to-end tests, so that the tests start the
suite exactly the way a newcomer does.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
import redis

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Children get SIGTERM when the supervisor dies, even by SIGKILL: nothing is left behind."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class StartupError(RuntimeError):
    pass


@dataclass
class ManagedProcess:
    """One child process in its own process group, its output in a log file."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            list(self.argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        return self

    def again(self, env: Mapping[str, str] | None = None) -> ManagedProcess:
        """A new process from the same command, log and settings (``env`` overrides some), started."""
        return ManagedProcess(
            self.name, self.argv, self.log_path, env={**self.env, **(env or {})}, cwd=self.cwd
        ).start()

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        """Signal the whole process group (uvicorn and Celery have children of their own)."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(5)
        # The group leader is gone; make sure none of its children outlived it.
        self.signal(signal.SIGKILL)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(5)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def wait_until(
    predicate: Callable[[], bool], *, timeout_s: float, what: str, process: ManagedProcess | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise StartupError(f"{what}: process exited early; last log lines:\n{process.tail()}")
        if predicate():
            return
        time.sleep(0.1)
    tail = f"; last log lines:\n{process.tail()}" if process else ""
    raise StartupError(f"{what}: not ready after {timeout_s:.0f}s{tail}")


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def find_redis_server() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if not found:
        raise StartupError(
            "redis-server not found: run `make deps` (installs it with apt-get) or install Redis 6+"
        )
    return found


RedisRole = Literal["plain", "state", "cache"]


def redis_conf(
    role: RedisRole,
    port: int,
    workdir: Path,
    *,
    password: str | None = None,
    maxmemory: str = "256mb",
    appendfsync: str = "always",
) -> str:
    """A redis.conf for one of ragfleet's two Redis roles (or a plain throwaway one for tests).

    - ``state`` (API keys, Celery, jobs, staged uploads, collection versions): an append-only file,
      fsynced before a write is answered (``always``): Redis writes the AOF before it replies, so a
      SIGKILL loses nothing answered even with ``everysec``, but ``everysec`` answers from memory
      while a slow background fsync is in progress and loses up to a second to a kernel crash. The
      state Redis takes few writes (the hot path is on the cache Redis), so the strict mode is
      affordable: measured here, 147 vs 2,600 single-client SETs/s, ~7 ms per write.
      ``noeviction``: a full state Redis refuses writes (a clear 503) rather than drop a key or a task.
    - ``cache`` (L2, rate limits, stream buffers, pub/sub, breaker, conversations): no persistence,
      a memory cap and ``allkeys-lru``: under pressure the least recently used entries go.
    """
    lines = [
        f"port {port}",
        "bind 127.0.0.1",
        "protected-mode yes",
        f'dir "{workdir}"',
        "daemonize no",
        'logfile ""',
    ]
    if role == "state":
        lines += [
            "appendonly yes",
            f"appendfsync {appendfsync}",
            'save ""',  # the AOF is the persistence; no second copy by snapshots
            "maxmemory-policy noeviction",
        ]
    elif role == "cache":
        lines += ["appendonly no", 'save ""', f"maxmemory {maxmemory}", "maxmemory-policy allkeys-lru"]
    else:
        lines += ["appendonly no", 'save ""']
    if password:
        lines.append(f"requirepass {password}")
    return "\n".join(lines) + "\n"


def start_redis(
    port: int,
    workdir: Path,
    *,
    role: RedisRole = "plain",
    password: str | None = None,
    maxmemory: str = "256mb",
    appendfsync: str = "always",
    name: str | None = None,
) -> ManagedProcess:
    """Start redis-server from a config file in ``workdir`` (owner-only: it holds the password), so
    that a restart with the same command comes back with the same configuration and data."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "redis.conf"
    conf.touch(mode=0o600)
    conf.chmod(0o600)
    conf.write_text(
        redis_conf(role, port, workdir, password=password, maxmemory=maxmemory, appendfsync=appendfsync)
    )
    process = ManagedProcess(name or f"redis:{port}", [find_redis_server(), str(conf)], workdir / "redis.log")
    process.start()
    wait_redis(port, password, process=process)
    return process


def wait_redis(port: int, password: str | None, *, process: ManagedProcess, timeout_s: float = 30) -> None:
    """Until the server answers PING: a restarted state Redis answers LOADING while it replays its AOF."""

    def answers() -> bool:
        client = redis.Redis(port=port, password=password, socket_timeout=1, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    wait_until(answers, timeout_s=timeout_s, what=f"redis on {port}", process=process)


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def start_service(
    name: str,
    module: str,
    *,
    port: int,
    env: Mapping[str, str],
    log_dir: Path,
    ready_path: str = "/healthz",
    timeout_s: float = 60.0,
) -> ManagedProcess:
    """Start ``python -m <module>`` and wait until ``ready_path`` answers 200."""
    process = ManagedProcess(name, python_module(module), log_dir / f"{name}.log", env=env).start()
    wait_until(
        lambda: http_ok(f"http://127.0.0.1:{port}{ready_path}"),
        timeout_s=timeout_s,
        what=f"{name} on port {port}",
        process=process,
    )
    return process
