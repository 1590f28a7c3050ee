"""Where records are kept: a directory of JSON files (``make bench``), or one ConfigMap of a release (the cluster).

Both keep a record under the same key, ``<UTC time>-<label>.json``, which sorts by time.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from ragfleet.bench.history import Record

log = logging.getLogger("ragfleet.bench.stores")

RECORD_KEY = re.compile(r"^\d{8}T\d{6}Z-.+\.json$")
WRITE_ATTEMPTS = 3  # conflicting writers (two Jobs at once) re-read and retry this many times


class StoreError(Exception):
    """The store could not be read or written; the message says which and why."""


def record_key(record: Record) -> str:
    """``20261121T185800Z-abc1234.json``: sorts by date, says what was measured."""
    stamp = datetime.fromisoformat(record.started_at.replace("Z", "+00:00")).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{re.sub(r'[^-._a-zA-Z0-9]', '_', record.label)}.json"


def _parse(key: str, text: str) -> Record | None:
    try:
        return Record.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("skipping %s: not a benchmark record (%s)", key, exc)
        return None


def records_in(data: Mapping[str, str]) -> list[Record]:
    """The records in a ConfigMap's data (however it was read), oldest first; other keys and
    unreadable values are skipped."""
    found = [_parse(k, data[k]) for k in sorted(data) if RECORD_KEY.match(k)]
    return sorted((r for r in found if r is not None), key=lambda r: r.started_at)


class Store(Protocol):
    def records(self) -> list[Record]: ...

    def append(self, record: Record) -> str: ...


class FileStore:
    """One file per record in ``directory`` (committed: the files are the baselines)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def records(self) -> list[Record]:
        """Every readable record, oldest first; unreadable files are skipped with a warning."""
        paths = sorted(self.directory.glob("*.json")) if self.directory.is_dir() else []
        found = [(p.name, _parse(p.name, p.read_text(encoding="utf-8"))) for p in paths]
        return sorted((r for _, r in found if r is not None), key=lambda r: r.started_at)

    def append(self, record: Record) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / record_key(record)
        path.write_text(json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return str(path)


class ConfigMapStore:
    """The records in one ConfigMap (one data key each), through the Kubernetes API; the oldest past ``keep`` go.

    ``api_client`` is a ``kubernetes.client.ApiClient``. The benchmark Job's Role allows get/update
    on this ConfigMap and create in the namespace, nothing else.
    """

    def __init__(
        self, api_client: Any, namespace: str, name: str, labels: Mapping[str, str], *, keep: int = 50
    ) -> None:
        from kubernetes import client

        self.namespace, self.name, self.labels, self.keep = namespace, name, dict(labels), keep
        self._client = client
        self._core = client.CoreV1Api(api_client)

    def records(self) -> list[Record]:
        return records_in(self._data(self._read()))

    def append(self, record: Record) -> str:
        from kubernetes.client.exceptions import ApiException

        key = record_key(record)
        for _attempt in range(WRITE_ATTEMPTS):
            configmap = self._read()
            data = dict(self._data(configmap))
            data[key] = json.dumps(record.to_json(), indent=1, sort_keys=True)
            for stale in sorted(k for k in data if RECORD_KEY.match(k))[: -self.keep]:
                del data[stale]
            try:
                self._write(configmap, data)
            except ApiException as error:
                if error.status == 409:  # another writer got there first: read again
                    continue
                raise StoreError(
                    f"cannot write ConfigMap {self.namespace}/{self.name}: {error.status} {error.reason}"
                ) from None
            return key
        raise StoreError(f"ConfigMap {self.namespace}/{self.name} kept changing under us; gave up")

    @staticmethod
    def _data(configmap: Any) -> dict[str, str]:
        return dict((configmap.data if configmap else None) or {})

    def _read(self) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return self._core.read_namespaced_config_map(self.name, self.namespace, _request_timeout=10)
        except ApiException as error:
            if error.status == 404:
                return None
            raise StoreError(
                f"cannot read ConfigMap {self.namespace}/{self.name}: {error.status} {error.reason}"
            ) from None

    def _write(self, existing: Any, data: dict[str, str]) -> None:
        if existing is None:
            body = self._client.V1ConfigMap(
                metadata=self._client.V1ObjectMeta(name=self.name, labels=self.labels), data=data
            )
            self._core.create_namespaced_config_map(self.namespace, body, _request_timeout=10)
            return
        # The resourceVersion read above makes the update conditional (409 if it changed).
        existing.data = data
        self._core.replace_namespaced_config_map(self.name, self.namespace, existing, _request_timeout=10)
