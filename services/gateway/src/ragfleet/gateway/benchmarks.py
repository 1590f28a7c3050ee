"""Benchmark runs behind the admin key: start one, read its state, the latest results and the history.

Two runners, chosen by ``benchmark_mode`` (off by default: a benchmark loads the machine it runs on):

- ``local`` (one machine): ``make bench``'s suite (``python -m ragfleet.loadtests.bench``) as a
  child process of this replica, in ``benchmark_workdir`` (a checkout); its records are the files of
  ``benchmarks/history`` there. One run at a time per replica.
- ``kubernetes``: a Job created through the Kubernetes API from the manifest the chart mounts
  (``benchmark_job_manifest``: the chart's benchmark Job), with this pod's service account; its
  records are the release's history ConfigMap (``ragfleet-ops bench-record`` writes it). The
  service account needs create/get on Jobs and get on that ConfigMap in its namespace.

Verdicts come from ragfleet.bench: each record against the earlier ones, like with like.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx

from ragfleet.bench.history import EXIT_REGRESSION, Record, Tolerances, compare, regressions
from ragfleet.bench.stores import FileStore, records_in
from ragfleet.common.errors import Conflict, NotFound, ServiceUnavailable
from ragfleet.gateway.config import GatewaySettings

log = logging.getLogger("ragfleet.gateway.benchmarks")

RunState = Literal["running", "succeeded", "regressed", "failed"]
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass
class Run:
    id: str
    state: RunState
    started_at: float
    where: str  # the process id or the Job's name
    finished_at: float | None = None
    exit_code: int | None = None
    log: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "exit_code": self.exit_code,
            "where": self.where,
            "log": self.log,
            **self.details,
        }


def verdicts(records: list[Record], tolerance: float) -> list[dict[str, Any]]:
    """Every record (oldest first) judged against the ones before it."""
    judged = []
    for index, record in enumerate(records):
        rows = compare(record, records[:index], Tolerances(tolerance))
        judged.append(
            {
                "started_at": record.started_at,
                "label": record.label,
                "profile": record.profile,
                "fingerprint": record.fingerprint,
                "calibration": record.calibration,
                "regressions": [r.name for r in regressions(rows)],
                "rows": [r.to_json() for r in rows],
            }
        )
    return judged


class Runner(Protocol):
    async def start(self) -> Run: ...

    async def current(self) -> Run | None: ...

    async def records(self) -> list[Record]: ...


class LocalRunner:
    """``make bench``'s suite in the background, as a child process of this replica."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.workdir = settings.benchmark_workdir.resolve()
        self.argv = [*settings.benchmark_command, *settings.benchmark_args]
        self.store = FileStore(self.workdir / "benchmarks" / "history")
        self._run: Run | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._waiter: asyncio.Task[None] | None = None

    async def start(self) -> Run:
        if self._run is not None and self._run.state == "running":
            raise Conflict(f"benchmark run {self._run.id} is still running", code="benchmark_running")
        run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
        log_path = self.workdir / "reports" / f"bench-api-{run_id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as out:
            try:
                self._process = await asyncio.create_subprocess_exec(
                    *self.argv, cwd=self.workdir, stdout=out, stderr=asyncio.subprocess.STDOUT,
                    stdin=asyncio.subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
            except OSError as exc:
                raise ServiceUnavailable(f"cannot start the benchmark ({self.argv[0]}): {exc}") from None
        self._run = Run(run_id, "running", time.time(), f"pid {self._process.pid}", log=str(log_path))
        self._waiter = asyncio.create_task(self._wait(self._run, self._process))
        return self._run

    async def _wait(self, run: Run, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        run.exit_code, run.finished_at = code, time.time()
        run.state = "succeeded" if code == 0 else "regressed" if code == EXIT_REGRESSION else "failed"
        log.info("benchmark run %s ended: %s (exit %d)", run.id, run.state, code)

    async def current(self) -> Run | None:
        return self._run

    async def records(self) -> list[Record]:
        return await asyncio.to_thread(self.store.records)

    async def close(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()  # the suite stops its own children (they die with it)
            await self._process.wait()


class KubernetesRunner:
    """The chart's benchmark Job, created through the API server with this pod's service account."""

    def __init__(self, settings: GatewaySettings, http: httpx.AsyncClient) -> None:
        self.http = http
        self.api = settings.benchmark_kubernetes_api.rstrip("/")
        self.manifest_path = settings.benchmark_job_manifest
        self.configmap = settings.benchmark_history_configmap
        self.namespace = settings.benchmark_namespace or _read(SERVICE_ACCOUNT / "namespace") or "default"
        self._run: Run | None = None

    def _headers(self) -> dict[str, str]:
        token = _read(SERVICE_ACCOUNT / "token")
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = await self.http.request(
                method, self.api + path, json=body, headers=self._headers(), timeout=10
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"the Kubernetes API is unreachable: {exc}") from None
        if response.status_code == 404:
            raise NotFound(f"Kubernetes: {path} not found")
        if response.status_code >= 400:
            raise ServiceUnavailable(
                f"Kubernetes answered {response.status_code} to {method} {path}: {response.text[:300]}"
            )
        payload: dict[str, Any] = response.json()
        return payload

    async def start(self) -> Run:
        current = await self.current()
        if current is not None and current.state == "running":
            raise Conflict(f"benchmark Job {current.where} is still running", code="benchmark_running")
        if self.manifest_path is None or not self.manifest_path.is_file():
            raise ServiceUnavailable("no benchmark Job manifest mounted (benchmark_job_manifest)")
        job = json.loads(self.manifest_path.read_text())
        metadata = job.setdefault("metadata", {})
        metadata.pop("name", None)
        metadata["generateName"] = "ragfleet-benchmark-api-"
        metadata.setdefault("annotations", {}).pop("helm.sh/hook", None)
        created = await self._call("POST", f"/apis/batch/v1/namespaces/{self.namespace}/jobs", job)
        name = created["metadata"]["name"]
        self._run = Run(name, "running", time.time(), f"job {self.namespace}/{name}")
        return self._run

    async def current(self) -> Run | None:
        if self._run is None:
            return None
        name = self._run.id
        status = (await self._call("GET", f"/apis/batch/v1/namespaces/{self.namespace}/jobs/{name}")).get(
            "status", {}
        )
        if status.get("succeeded"):
            self._run.state = "succeeded"
        elif any(
            c.get("type") == "Failed" and c.get("status") == "True" for c in status.get("conditions") or []
        ):
            self._run.state = "failed"  # bench-record exits 4 on a regression: the history says which
        self._run.details = {"job_status": status}
        return self._run

    async def records(self) -> list[Record]:
        configmap = await self._call(
            "GET", f"/api/v1/namespaces/{self.namespace}/configmaps/{self.configmap}"
        )
        return records_in(configmap.get("data") or {})


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def create_runner(settings: GatewaySettings, http: httpx.AsyncClient) -> Runner | None:
    if settings.benchmark_mode == "local":
        return LocalRunner(settings)
    if settings.benchmark_mode == "kubernetes":
        return KubernetesRunner(settings, http)
    return None
