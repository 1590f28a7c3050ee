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

import httpx

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


def start_redis(port: int, workdir: Path, *, persist: bool = False) -> ManagedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        find_redis_server(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(workdir),
        "--save", "60 1" if persist else "",
        "--appendonly", "no",
        "--protected-mode", "yes",
        "--daemonize", "no",
        "--logfile", "",
    ]  # fmt: skip
    process = ManagedProcess(f"redis:{port}", argv, workdir / "redis.log").start()
    wait_until(lambda: port_in_use(port), timeout_s=10, what=f"redis on {port}", process=process)
    return process


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
