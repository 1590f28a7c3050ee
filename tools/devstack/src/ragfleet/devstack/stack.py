"""The whole suite on one machine: two Redis (state and cache), retrieval, llm-proxy, ingestion API
and worker, two gateway replicas and NGINX in front. ``make run`` and the end-to-end tests both use it.

The run dir holds ``stack.json`` while the stack runs (its pid and the state Redis URL, owner-only),
which is how ``python -m ragfleet.gateway.keys`` and ``make key`` find it."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ragfleet.common.contracts import SERVICE_TOKEN_HEADER, TENANT_HEADER
from ragfleet.devstack.nginx import find_nginx, nginx_argv, render_conf
from ragfleet.devstack.processes import (
    ManagedProcess,
    StartupError,
    http_ok,
    port_in_use,
    python_module,
    start_redis,
    wait_redis,
    wait_until,
)
from ragfleet.devstack.settings import DevstackSettings
from ragfleet.devstack.supervisor import Supervisor

log = logging.getLogger("ragfleet.devstack")

REDIS_PROCESSES = ("redis-state", "redis-cache")


@dataclass
class Stack:
    settings: DevstackSettings
    processes: list[ManagedProcess] = field(default_factory=list)
    nginx_enabled: bool = False
    # Held while ``processes`` changes: the supervisor thread replaces the processes it restarts.
    lock: threading.RLock = field(default_factory=threading.RLock)
    supervisor: Supervisor | None = None

    @property
    def run_dir(self) -> Path:
        return self.settings.run_dir.resolve()

    @property
    def url(self) -> str:
        port = self.settings.nginx_port if self.nginx_enabled else self.settings.gateway_ports[0]
        return f"http://127.0.0.1:{port}"

    @property
    def redis_password(self) -> str:
        """A dev secret made once per run dir (both Redis require it), kept beside the data it guards."""
        path = self.run_dir / "redis-password"
        if not path.exists():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_hex(24) + "\n")
        return path.read_text().strip()

    @property
    def state_redis_url(self) -> str:
        """The state Redis, password included (what a client outside the stack needs)."""
        return f"redis://:{self.redis_password}@127.0.0.1:{self.settings.redis_port}/0"

    @property
    def cache_redis_url(self) -> str:
        return f"redis://:{self.redis_password}@127.0.0.1:{self.settings.cache_redis_port}/0"

    @property
    def redis_url(self) -> str:
        """Where API keys live: the state Redis."""
        return self.state_redis_url

    @property
    def stack_file(self) -> Path:
        return self.run_dir / "stack.json"

    def service_url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}"

    # -- guard rails -------------------------------------------------------------------------

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "stack.pid"

    def _claim(self) -> None:
        """Refuse a second stack on the same run dir or on ports already taken, saying which."""
        if self.pid_file.exists():
            try:
                pid = int(self.pid_file.read_text().strip())
                os.kill(pid, 0)
            except (ValueError, ProcessLookupError):
                self.pid_file.unlink()
            else:
                raise StartupError(
                    f"ragfleet is already running from {self.run_dir} (pid {pid}); "
                    "stop it with Ctrl-C in its terminal or `make stop`"
                )
        ports = {
            "RAGFLEET_DEV_REDIS_PORT": self.settings.redis_port,
            "RAGFLEET_DEV_CACHE_REDIS_PORT": self.settings.cache_redis_port,
            "RAGFLEET_DEV_RETRIEVAL_PORT": self.settings.retrieval_port,
            "RAGFLEET_DEV_LLM_PROXY_PORT": self.settings.llm_proxy_port,
            "RAGFLEET_DEV_INGESTION_PORT": self.settings.ingestion_port,
            **{f"RAGFLEET_DEV_GATEWAY_PORTS[{i}]": p for i, p in enumerate(self.settings.gateway_ports)},
        }
        if self.settings.nginx:
            ports["RAGFLEET_DEV_NGINX_PORT"] = self.settings.nginx_port
        if self.settings.worker and self.settings.worker_metrics_port:
            ports["RAGFLEET_DEV_WORKER_METRICS_PORT"] = self.settings.worker_metrics_port
        taken = [f"{port} ({name})" for name, port in ports.items() if port_in_use(port)]
        if taken:
            raise StartupError(
                "ports already in use: "
                + ", ".join(taken)
                + ". Is another ragfleet (or something else) running? Stop it, or choose other ports"
                " with the variables named."
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(str(os.getpid()))
        self.stack_file.touch(mode=0o600)
        self.stack_file.chmod(0o600)
        self.stack_file.write_text(json.dumps({"pid": os.getpid(), "state_redis_url": self.state_redis_url}))

    # -- processes ---------------------------------------------------------------------------

    def _common_env(self, prefix: str, name: str, port: int | None) -> dict[str, str]:
        port_of = {"STATE": self.settings.redis_port, "CACHE": self.settings.cache_redis_port}
        # The password apart from the URL, the way the chart passes it (from a Secret).
        env = {
            **{f"{prefix}{role}_REDIS_URL": f"redis://127.0.0.1:{p}/0" for role, p in port_of.items()},
            **{f"{prefix}{role}_REDIS_PASSWORD": self.redis_password for role in port_of},
            f"{prefix}REPLICA_NAME": name,
            f"{prefix}LOG_LEVEL": self.settings.log_level,
            f"{prefix}METRICS_DIR": str(self.run_dir / "metrics" / name),
            f"{prefix}ENVIRONMENT": "development",
        }
        if self.settings.service_token:
            env[f"{prefix}SERVICE_TOKEN"] = self.settings.service_token
        if port is not None:
            env[f"{prefix}PORT"] = str(port)
        return env

    def internal_headers(self, tenant: str) -> dict[str, str]:
        """What a call to an internal endpoint (retrieval's /internal, ingestion) must carry."""
        headers = {TENANT_HEADER: tenant}
        if self.settings.service_token:
            headers[SERVICE_TOKEN_HEADER] = self.settings.service_token
        return headers

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> ManagedProcess:
        process = ManagedProcess(name, argv, self.run_dir / "logs" / f"{name}.log", env=env).start()
        self.processes.append(process)
        return process

    def _wait_ready(self, process: ManagedProcess, url: str) -> None:
        wait_until(
            lambda: http_ok(url, timeout_s=2.5),
            timeout_s=self.settings.startup_timeout_s,
            what=f"{process.name} ({url})",
            process=process,
        )

    def start(self) -> Stack:
        self._claim()
        try:
            self._start_all()
            self.supervisor = Supervisor(
                self.processes, self.lock, self.settings.supervise, lambda process: process.again()
            ).start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_all(self) -> None:
        s = self.settings
        log.info("starting the state Redis on %s and the cache Redis on %s", s.redis_port, s.cache_redis_port)
        self.processes.append(
            start_redis(
                s.redis_port,
                self.run_dir / "redis",  # the state Redis keeps the path its data had with one Redis
                role="state",
                password=self.redis_password,
                appendfsync=s.state_redis_appendfsync,
                name="redis-state",
            )
        )
        self.processes.append(
            start_redis(
                s.cache_redis_port,
                self.run_dir / "redis-cache",
                role="cache",
                password=self.redis_password,
                maxmemory=s.cache_redis_maxmemory,
                name="redis-cache",
            )
        )

        backends = {
            "retrieval": ("RAGFLEET_RETRIEVAL_", "ragfleet.retrieval", s.retrieval_port),
            "llm-proxy": ("RAGFLEET_LLM_PROXY_", "ragfleet.llm_proxy", s.llm_proxy_port),
            "ingestion": ("RAGFLEET_INGESTION_", "ragfleet.ingestion", s.ingestion_port),
        }
        started: list[tuple[ManagedProcess, str]] = []
        for name, (prefix, module, port) in backends.items():
            env = self._common_env(prefix, name, port)
            if name == "retrieval":
                env[f"{prefix}DATA_DIR"] = str(self.run_dir / "data" / "retrieval")
                env[f"{prefix}WORKERS"] = str(s.retrieval_workers)
                if s.retrieval_workers > 1:
                    # Each worker batches its own queries: one thread each keeps the processes
                    # from fighting over the cores when both embed.
                    env[f"{prefix}EMBED_THREADS"] = "1"
            if name == "ingestion":
                env[f"{prefix}RETRIEVAL_URL"] = self.service_url(s.retrieval_port)
            started.append(
                (self._spawn(name, python_module(module), env), f"{self.service_url(port)}/readyz")
            )
        if s.worker:
            env = self._common_env("RAGFLEET_INGESTION_", "ingestion-worker", None)
            env["RAGFLEET_INGESTION_RETRIEVAL_URL"] = self.service_url(s.retrieval_port)
            # Its own port like every other process: the default (9031) clashes with any other stack.
            env["RAGFLEET_INGESTION_WORKER_METRICS_PORT"] = str(s.worker_metrics_port)
            self._spawn("ingestion-worker", python_module("ragfleet.ingestion.worker"), env)
        for process, url in started:
            self._wait_ready(process, url)

        for index, port in enumerate(s.gateway_ports, start=1):
            name = f"gateway-{index}"
            env = self._common_env("RAGFLEET_GATEWAY_", name, port)
            env.update(
                {
                    "RAGFLEET_GATEWAY_RETRIEVAL_URL": self.service_url(s.retrieval_port),
                    "RAGFLEET_GATEWAY_LLM_PROXY_URL": self.service_url(s.llm_proxy_port),
                    "RAGFLEET_GATEWAY_INGESTION_URL": self.service_url(s.ingestion_port),
                }
            )
            started.append((self._spawn(name, python_module("ragfleet.gateway"), env), ""))
        for port, (process, _) in zip(s.gateway_ports, started[-len(s.gateway_ports) :], strict=True):
            self._wait_ready(process, f"{self.service_url(port)}/readyz")

        if s.worker:
            self.wait_worker()
        self._start_nginx()

    def wait_worker(self) -> None:
        """Until the worker answers the ingestion API's worker check (a control ping: queued
        documents, even poison ones left from the last run, cannot hold the start-up up)."""
        url = f"{self.service_url(self.settings.ingestion_port)}/v1/worker-check"
        worker = next(p for p in self.processes if p.name == "ingestion-worker")

        def answered() -> bool:
            try:
                return (
                    httpx.post(url, headers=self.internal_headers("default"), timeout=15).status_code == 200
                )
            except httpx.HTTPError:
                return False

        wait_until(
            answered, timeout_s=self.settings.startup_timeout_s, what="ingestion worker", process=worker
        )

    def _start_nginx(self) -> None:
        s = self.settings
        nginx = find_nginx() if s.nginx else None
        if nginx is None:
            if s.nginx:
                log.warning(
                    "nginx not found (run `make deps` as root to install it): serving gateway-1 directly"
                )
            return
        nginx_dir = self.run_dir / "nginx"
        render_conf(nginx_dir, host="127.0.0.1", port=s.nginx_port, gateway_ports=s.gateway_ports)
        process = self._spawn("nginx", nginx_argv(nginx, nginx_dir), {})
        wait_until(
            lambda: http_ok(f"http://127.0.0.1:{s.nginx_port}/healthz"),
            timeout_s=15,
            what=f"nginx on {s.nginx_port} (log: {nginx_dir / 'error.log'})",
            process=process,
        )
        self.nginx_enabled = True

    def create_api_key(self, tenant: str = "default", collections: str = "*") -> str:
        """A real API key, made with the gateway's own CLI against this stack's Redis."""
        created = subprocess.run(
            [*python_module("ragfleet.gateway.keys"), "create", "--tenant", tenant,
             "--collections", collections, "--name", "make-run", "--json"],
            env={**os.environ, "RAGFLEET_GATEWAY_STATE_REDIS_URL": self.state_redis_url},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if created.returncode != 0:
            raise StartupError(f"could not create an API key: {created.stderr.strip()}")
        return str(json.loads(created.stdout)["api_key"])

    def load_corpus(self, path: Path, api_key: str, collection: str = "default") -> None:
        """Upload a folder through the public API with the ingestion CLI, and wait until it is indexed.

        Unchanged documents are skipped by their content hash, so a second ``make run`` is quick.
        """
        result = subprocess.run(
            [*python_module("ragfleet.ingestion.cli"), "ingest", str(path), "--url", self.url,
             "--api-key", api_key, "--collection", collection, "--wait", "600"],
            stdout=sys.stdout, stderr=sys.stderr, timeout=900,
        )  # fmt: skip
        if result.returncode != 0:
            raise StartupError(f"loading the sample corpus from {path} failed (exit {result.returncode})")

    def process(self, name: str) -> ManagedProcess:
        with self.lock:
            return next(p for p in self.processes if p.name == name)

    @property
    def restarts(self) -> dict[str, int]:
        """How often the supervisor restarted each process that exited (by name)."""
        return dict(self.supervisor.restarts) if self.supervisor else {}

    def unsupervised_dead(self) -> list[str]:
        """Processes that exited and that nothing will start again."""
        with self.lock:
            return [
                p.name
                for p in self.processes
                if not p.alive() and not (self.supervisor and self.supervisor.supervises(p.name))
            ]

    def restart(
        self, name: str, env: dict[str, str] | None = None, ready_url: str | None = None
    ) -> ManagedProcess:
        """Start ``name`` again with the same command (stopping it first if it still runs); ``env``
        overrides some of its settings; waits for ``ready_url`` when given."""
        with self.lock:
            old = self.process(name)
            old.stop()
            new = old.again(env)
            self.processes[self.processes.index(old)] = new
            if self.supervisor is not None:
                self.supervisor.started(new)
        if name in REDIS_PROCESSES:
            port = self.settings.redis_port if name == "redis-state" else self.settings.cache_redis_port
            wait_redis(port, self.redis_password, process=new)
        if ready_url is not None:
            self._wait_ready(new, ready_url)
        return new

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()  # first: nothing stopped below is started again
        with self.lock:
            for process in reversed(self.processes):
                process.stop()
            self.processes.clear()
        for path in (self.stack_file, self.pid_file):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
