"""A fake Kubernetes API server: a real HTTP server on loopback that serves the read endpoints
ragfleet-ops uses, from scenario fixtures that can change while the CLI polls.

No cluster can run on the development machines, so the CLI (and the load-test report that embeds
its timeline) is tested against this server through the official client, with a kubeconfig file
pointing at it — the same code path as against a kind cluster. It speaks the API's wire format
(list objects, ``Status`` errors, label and field selectors, bearer tokens). The objects it
stores and lets clients write are ConfigMaps (get, create, conditional replace with 409 on a
stale resourceVersion), for the benchmark history of ``bench-record``, and Secrets (get,
create), for ``create-key``; it does not implement
other writes, watches or pagination, which the CLI does not use.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

# A frame is what the cluster holds at one moment: resource plural -> list of objects.
Frame = Mapping[str, Sequence[Mapping[str, Any]]]

# (group/version prefix, plural) -> the List kind the API answers with.
_RESOURCES: dict[tuple[str, str], str] = {
    ("apps/v1", "deployments"): "DeploymentList",
    ("apps/v1", "statefulsets"): "StatefulSetList",
    ("v1", "pods"): "PodList",
    ("v1", "events"): "EventList",
    ("autoscaling/v2", "horizontalpodautoscalers"): "HorizontalPodAutoscalerList",
    ("policy/v1", "poddisruptionbudgets"): "PodDisruptionBudgetList",
    ("autoscaling.k8s.io/v1", "verticalpodautoscalers"): "VerticalPodAutoscalerList",
}
_VPA = ("autoscaling.k8s.io/v1", "verticalpodautoscalers")
_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+/[^/]+))/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)$"
)
_STORED = re.compile(
    r"^/api/v1/namespaces/(?P<ns>[^/]+)/(?P<plural>configmaps|secrets)(?:/(?P<name>[^/]+))?$"
)


@dataclass
class Scenario:
    """The objects the fake API serves, as a sequence of frames.

    Each list of ``advance_on`` (every poll of the CLI lists Deployments first) starts a poll;
    the other lists of that poll see the same frame. The server moves to the next frame every
    ``polls_per_frame`` polls and stays on the last one.
    """

    frames: Sequence[Frame]
    polls_per_frame: int = 1
    vpa_crd_installed: bool = True
    advance_on: str = "deployments"

    def frame_at(self, polls: int) -> Frame:
        index = min(polls // max(self.polls_per_frame, 1), len(self.frames) - 1)
        return self.frames[index]


@dataclass
class FakeKubeApiServer:
    scenario: Scenario
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    requests: list[str] = field(default_factory=list)
    # (namespace, name) -> ConfigMap, as stored: what clients created or replaced.
    configmaps: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # (namespace, name) -> Secret, as created (create-key).
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    _resource_version: int = 0
    _polls: int = 0
    _frame: Frame | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def polls(self) -> int:
        return self._polls

    def set_scenario(self, scenario: Scenario) -> None:
        with self._lock:
            self.scenario = scenario
            self._polls = 0
            self._frame = None

    def start(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fake-kube-api", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def write_kubeconfig(self, path: Path, namespace: str = "ragfleet", context: str = "fake") -> Path:
        """A kubeconfig with one context pointing at this server (JSON is valid YAML)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "sre", "user": {"token": self.token}}],
            "contexts": [
                {"name": context, "context": {"cluster": "fake", "user": "sre", "namespace": namespace}}
            ],
            "current-context": context,
        }
        path.write_text(json.dumps(config, indent=2))
        return path

    def answer(
        self, method: str, raw_path: str, authorization: str | None, body: bytes = b""
    ) -> tuple[int, dict[str, Any]]:
        """The status code and JSON body for one request (the HTTP handler only transports it)."""
        self.requests.append(f"{method} {raw_path}")
        if authorization != f"Bearer {self.token}":
            return 401, _status(401, "Unauthorized", "Unauthorized")
        configmap = _STORED.match(urlsplit(raw_path).path)
        if configmap is not None:
            if configmap["plural"] == "secrets":
                return self._secret(method, configmap["ns"], configmap["name"], body)
            return self._configmap(method, configmap["ns"], configmap["name"], body)
        if method != "GET":
            return 405, _status(405, "MethodNotAllowed", f"{method} is not served by the fake API")
        url = urlsplit(raw_path)
        if url.path in ("/api", "/apis"):
            return 200, self._discovery(url.path)
        match = _PATH.match(url.path)
        resource = (match["core"] or match["group"], match["plural"]) if match else None
        if match is None or resource not in _RESOURCES:
            return 404, _status(404, "NotFound", "the server could not find the requested resource")
        with self._lock:
            if resource == _VPA and not self.scenario.vpa_crd_installed:
                return 404, _status(404, "NotFound", "the server could not find the requested resource")
            # A poll lists Deployments first, then the rest: the rest see the frame of that list.
            if resource[1] == self.scenario.advance_on:
                self._frame = self.scenario.frame_at(self._polls)
                self._polls += 1
            frame = self._frame if self._frame is not None else self.scenario.frame_at(0)
        query = parse_qs(url.query)
        labels = _parse_selector(query.get("labelSelector", [""])[0])
        fields = _parse_selector(query.get("fieldSelector", [""])[0])
        items = [
            item
            for item in frame.get(resource[1], [])
            if item.get("metadata", {}).get("namespace") == match["ns"]
            and _matches(item.get("metadata", {}).get("labels") or {}, labels)
            and _matches_fields(item, fields)
        ]
        kind = _RESOURCES[resource]
        return 200, {
            "kind": kind,
            "apiVersion": resource[0],
            "metadata": {"resourceVersion": str(self._polls)},
            "items": items,
        }

    def _configmap(
        self, method: str, namespace: str, name: str | None, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if method == "GET" and name:
                stored = self.configmaps.get((namespace, name))
                if stored is None:
                    return 404, _status(404, "NotFound", f'configmaps "{name}" not found')
                return 200, stored
            try:
                sent = json.loads(body or b"{}")
            except ValueError:
                return 400, _status(400, "BadRequest", "the request body is not JSON")
            sent_name = sent.get("metadata", {}).get("name")
            if method == "POST" and not name:
                if (namespace, sent_name) in self.configmaps:
                    return 409, _status(409, "AlreadyExists", f'configmaps "{sent_name}" already exists')
                return 201, self._store(namespace, sent_name, sent)
            if method == "PUT" and name:
                stored = self.configmaps.get((namespace, name))
                if stored is None:
                    return 404, _status(404, "NotFound", f'configmaps "{name}" not found')
                sent_version = sent.get("metadata", {}).get("resourceVersion")
                if sent_version != stored["metadata"]["resourceVersion"]:
                    return 409, _status(
                        409,
                        "Conflict",
                        f'Operation cannot be fulfilled on configmaps "{name}": the object has been modified',
                    )
                return 200, self._store(namespace, name, sent)
            return 405, _status(405, "MethodNotAllowed", f"{method} is not served by the fake API")

    def _secret(
        self, method: str, namespace: str, name: str | None, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if method == "GET" and name:
                stored = self.secrets.get((namespace, name))
                if stored is None:
                    return 404, _status(404, "NotFound", f'secrets "{name}" not found')
                return 200, stored
            if method == "POST" and not name:
                sent = json.loads(body or b"{}")
                sent_name = sent.get("metadata", {}).get("name")
                if (namespace, sent_name) in self.secrets:
                    return 409, _status(409, "AlreadyExists", f'secrets "{sent_name}" already exists')
                stored = {**sent, "kind": "Secret", "apiVersion": "v1"}
                stored["metadata"] = {**sent.get("metadata", {}), "namespace": namespace}
                self.secrets[(namespace, sent_name)] = stored
                return 201, stored
            return 405, _status(405, "MethodNotAllowed", f"{method} is not served by the fake API")

    def _store(self, namespace: str, name: str, sent: dict[str, Any]) -> dict[str, Any]:
        self._resource_version += 1
        stored = {
            **sent,
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": {
                **sent.get("metadata", {}),
                "name": name,
                "namespace": namespace,
                "resourceVersion": str(self._resource_version),
            },
        }
        self.configmaps[(namespace, name)] = stored
        return stored

    def _discovery(self, path: str) -> dict[str, Any]:
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        groups = sorted({group for group, _ in _RESOURCES if "/" in group})
        if not self.scenario.vpa_crd_installed:
            groups.remove(_VPA[0])
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": gv.split("/")[0],
                    "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}],
                    "preferredVersion": {"groupVersion": gv, "version": gv.split("/")[1]},
                }
                for gv in groups
            ],
        }


@contextmanager
def running_fake_api(scenario: Scenario) -> Iterator[FakeKubeApiServer]:
    server = FakeKubeApiServer(scenario)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _handler_for(server: FakeKubeApiServer) -> Callable[..., BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._reply(*server.answer("GET", self.path, self.headers.get("Authorization")))

        def do_POST(self) -> None:
            self._reply(*server.answer("POST", self.path, self.headers.get("Authorization"), self._body()))

        def do_PUT(self) -> None:
            self._reply(*server.answer("PUT", self.path, self.headers.get("Authorization"), self._body()))

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the request log lives in ``server.requests``."""

    return Handler


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


# A parsed selector: (key, operator, value) with operator one of "=", "!=", "exists".
Requirement = tuple[str, str, str]


def _parse_selector(text: str) -> list[Requirement]:
    requirements: list[Requirement] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "!=" in part:
            key, value = part.split("!=", 1)
            requirements.append((key, "!=", value))
        elif "=" in part:
            key, value = part.replace("==", "=").split("=", 1)
            requirements.append((key, "=", value))
        else:
            requirements.append((part, "exists", ""))
    return requirements


def _matches(labels: Mapping[str, str], requirements: list[Requirement]) -> bool:
    for key, operator, value in requirements:
        if operator == "=" and labels.get(key) != value:
            return False
        if operator == "!=" and labels.get(key) == value:
            return False
        if operator == "exists" and key not in labels:
            return False
    return True


def _matches_fields(item: Mapping[str, Any], requirements: list[Requirement]) -> bool:
    def value_at(path: str) -> str:
        current: Any = item
        for key in path.split("."):
            current = current.get(key) if isinstance(current, Mapping) else None
        return "" if current is None else str(current)

    return _matches({key: value_at(key) for key, _, _ in requirements}, requirements)
