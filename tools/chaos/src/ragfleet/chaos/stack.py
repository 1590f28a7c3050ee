"""The stack chaos runs against: ``make run``'s stack on free ports and its own run dir (so it never
meets a stack already up), plus a scripted fake LLM upstream behind llm-proxy, and the means to
kill, stop and restart any one of its processes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from ragfleet.common.contracts import TENANT_HEADER
from ragfleet.devstack.processes import (
    ManagedProcess,
    StartupError,
    free_port,
    http_ok,
    python_module,
    start_service,
    wait_until,
)
from ragfleet.devstack.settings import DevstackSettings
from ragfleet.devstack.stack import REDIS_PROCESSES, Stack
from ragfleet.testkit.fake_llm import FakeUpstreamControl

log = logging.getLogger("ragfleet.chaos")

TENANT = "chaos"

# Model names clients ask the gateway for; upstream model names are what the fake upstream scripts by.
PRIMARY, BACKUP, SOLO, SLOW = "chaos-primary", "chaos-backup", "chaos-solo", "chaos-slow"
PRIMARY_CONTENT = "The primary model answers."
BACKUP_CONTENT = "The backup model answers."

# llm-proxy tuned so that faults play out in seconds: a hang is noticed after 2 s, a breaker opens
# after 3 failures and probes again after 4 s.
LLM_PROXY_CHAOS_ENV = {
    "RAGFLEET_LLM_PROXY_RETRY_BASE_DELAY_S": "0.05",
    "RAGFLEET_LLM_PROXY_RETRY_MAX_DELAY_S": "0.5",
    "RAGFLEET_LLM_PROXY_BREAKER_FAILURE_THRESHOLD": "3",
    "RAGFLEET_LLM_PROXY_BREAKER_OPEN_S": "4",
    "RAGFLEET_LLM_PROXY_BREAKER_SYNC_INTERVAL_S": "0",
    "RAGFLEET_LLM_PROXY_CACHE_ENABLED": "false",
}


def chaos_models(fake_url: str) -> list[dict[str, object]]:
    """primary falls back to backup; solo has nowhere to go; slow streams for seconds."""
    timeouts = {"first_token_timeout_s": 2.0, "total_timeout_s": 20.0, "connect_timeout_s": 1.0}
    return [
        {
            "name": PRIMARY,
            "upstream_model": "primary",
            "base_url": fake_url,
            "fallbacks": [BACKUP],
            **timeouts,
        },
        {"name": BACKUP, "upstream_model": "backup", "base_url": fake_url, **timeouts},
        {"name": SOLO, "upstream_model": "solo", "base_url": fake_url, **timeouts},
        {"name": SLOW, "upstream_model": "slow", "base_url": fake_url, **timeouts},
    ]


def chaos_settings(run_dir: Path) -> DevstackSettings:
    """Every port free and chosen now, so a ``make run`` already up is never touched."""
    return DevstackSettings.on_free_ports(run_dir)


@dataclass
class ChaosStack:
    stack: Stack
    fake: ManagedProcess
    fake_url: str
    api_key: str = ""

    @classmethod
    def start(cls, run_dir: Path) -> ChaosStack:
        stack = Stack(chaos_settings(run_dir)).start()
        try:
            port = free_port()
            fake = start_service(
                "fake-upstream",
                "ragfleet.testkit.fake_llm",
                port=port,
                env={
                    "RAGFLEET_FAKE_UPSTREAM_PORT": str(port),
                    "RAGFLEET_FAKE_UPSTREAM_ENVIRONMENT": "development",
                },
                log_dir=stack.run_dir / "logs",
            )
            stack.processes.insert(0, fake)  # stopped last, after llm-proxy
            chaos = cls(stack, fake, f"http://127.0.0.1:{port}/v1")
            chaos.restart(
                "llm-proxy",
                env={
                    "RAGFLEET_LLM_PROXY_MODELS": json.dumps(chaos_models(chaos.fake_url)),
                    **LLM_PROXY_CHAOS_ENV,
                },
            )
            # A task whose worker was SIGKILLed is redelivered after the visibility timeout: an
            # hour by default (sized for the largest documents), seconds for chaos's small ones.
            chaos.restart("ingestion-worker", env={"RAGFLEET_INGESTION_VISIBILITY_TIMEOUT_S": "10"})
            chaos.api_key = chaos.create_api_key()
        except BaseException:
            stack.stop()
            raise
        return chaos

    def stop(self) -> None:
        self.stack.stop()

    # -- where things are ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.stack.url

    @property
    def retrieval_url(self) -> str:
        return self.stack.service_url(self.stack.settings.retrieval_port)

    @property
    def llm_proxy_url(self) -> str:
        return self.stack.service_url(self.stack.settings.llm_proxy_port)

    def upstream(self) -> FakeUpstreamControl:
        return FakeUpstreamControl(self.fake_url.removesuffix("/v1"))

    def redis_names(self) -> tuple[str, ...]:
        return REDIS_PROCESSES

    def ready_url(self, name: str) -> str | None:
        s = self.stack.settings
        ports = {"retrieval": s.retrieval_port, "llm-proxy": s.llm_proxy_port, "ingestion": s.ingestion_port}
        ports.update({f"gateway-{i}": port for i, port in enumerate(s.gateway_ports, start=1)})
        return f"{self.stack.service_url(ports[name])}/readyz" if name in ports else None

    def pids(self) -> dict[str, int]:
        return {p.name: p.pid for p in self.stack.processes}

    def dead(self) -> list[str]:
        return [p.name for p in self.stack.processes if not p.alive()]

    # -- faults ----------------------------------------------------------------------------------

    def kill(self, name: str) -> None:
        """SIGKILL the process group: no shutdown handler runs, as when a node dies."""
        log.info("SIGKILL %s", name)
        self.stack.process(name).kill()

    def stop_process(self, name: str) -> None:
        log.info("stopping %s", name)
        self.stack.process(name).stop()

    def restart(self, name: str, env: dict[str, str] | None = None) -> ManagedProcess:
        """Start ``name`` again with the same command (stopping it first if it still runs) and wait
        until it is ready; ``env`` overrides some of its settings."""
        new = self.stack.restart(name, env)  # a Redis: until it answers PING (its AOF replayed)
        if (url := self.ready_url(name)) is not None:
            wait_until(lambda: http_ok(url, timeout_s=2.5), timeout_s=120, what=name, process=new)
        log.info("%s is back (pid %s)", name, new.pid)
        return new

    # -- tenancy ---------------------------------------------------------------------------------

    def create_api_key(self, name: str = "chaos") -> str:
        """A key of tenant ``chaos`` whose rate limit is far above the chaos load, so a 429 is news."""
        created = subprocess.run(
            [*python_module("ragfleet.gateway.keys"), "create", "--tenant", TENANT, "--collections", "*",
             "--name", name, "--rate", "1000", "--burst", "1000", "--json"],
            env={**os.environ, "RAGFLEET_GATEWAY_STATE_REDIS_URL": self.stack.state_redis_url},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if created.returncode != 0:
            raise StartupError(f"could not create an API key: {created.stderr.strip()}")
        return str(json.loads(created.stdout)["api_key"])

    def redis(self, name: str) -> redis.Redis:
        """A client of ``redis-state`` or ``redis-cache`` (with the stack's password)."""
        url = self.stack.state_redis_url if name == "redis-state" else self.stack.cache_redis_url
        return redis.Redis.from_url(url, socket_timeout=10)

    def internal_headers(self) -> dict[str, str]:
        return {TENANT_HEADER: TENANT}

    def collection_counts(self) -> dict[str, tuple[int, int]]:
        """(documents, chunks) per collection of the chaos tenant, as retrieval's index holds them."""
        response = httpx.get(
            f"{self.retrieval_url}/v1/collections", headers=self.internal_headers(), timeout=30
        )
        response.raise_for_status()
        return {c["name"]: (int(c["documents"]), int(c["chunks"])) for c in response.json()["collections"]}

    def document_chunks(self, collection: str, document_id: str) -> int:
        """How many chunks the index holds for a document (0 when it is not there)."""
        response = httpx.get(
            f"{self.retrieval_url}/internal/v1/collections/{collection}/documents/{document_id}",
            headers=self.internal_headers(),
            timeout=30,
        )
        if response.status_code == 404:
            return 0
        response.raise_for_status()
        return int(response.json()["chunks"])
