"""The worker's client for retrieval's internal API (see docs/internal-contracts.md).

Synchronous, because Celery tasks are. Failures are sorted into the two kinds the task acts on:
``TransientError`` (retrieval down, overloaded, timing out: retry with backoff) and
``RetrievalRejected`` (a 4xx: the request itself is wrong, retrying cannot help).
"""

from __future__ import annotations

from typing import Any

import httpx

from ragfleet.common.clients import create_sync_http_client
from ragfleet.common.contracts import TENANT_HEADER, downstream_error, is_transient
from ragfleet.ingestion.config import IngestionSettings


class TransientError(Exception):
    """Worth retrying: the other side may be back in a moment."""


class RetrievalRejected(Exception):
    """Retrieval refused the request (4xx)."""


class RetrievalClient:
    def __init__(self, settings: IngestionSettings) -> None:
        self._http = create_sync_http_client(settings, base_url=settings.retrieval_url.rstrip("/"))

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, tenant: str, json: Any = None) -> httpx.Response:
        try:
            response = self._http.request(method, path, json=json, headers={TENANT_HEADER: tenant})
        except httpx.HTTPError as exc:
            raise TransientError(f"retrieval unreachable: {type(exc).__name__}: {exc}") from exc
        if is_transient(response.status_code):
            raise TransientError(f"retrieval answered {response.status_code} to {method} {path}")
        return response

    @staticmethod
    def _rejected(response: httpx.Response) -> RetrievalRejected:
        error = downstream_error("retrieval", response.status_code, response.content)
        message = error.message if error else response.text[:300]
        return RetrievalRejected(f"retrieval refused ({response.status_code}): {message}")

    def get_document(self, tenant: str, collection: str, document_id: str) -> dict[str, Any] | None:
        response = self._call("GET", f"/internal/v1/collections/{collection}/documents/{document_id}", tenant)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._rejected(response)
        result: dict[str, Any] = response.json()
        return result

    def upsert(
        self, tenant: str, collection: str, chunks: list[dict[str, Any]], model: str | None = None
    ) -> int:
        """`model`: the embedding model of the chunks' vectors (the collection records it)."""
        body: dict[str, Any] = {"chunks": chunks} if model is None else {"chunks": chunks, "model": model}
        response = self._call("POST", f"/internal/v1/collections/{collection}/upsert", tenant, body)
        if response.status_code != 200:
            raise self._rejected(response)
        return int(response.json()["written"])

    def delete(self, tenant: str, collection: str, document_ids: list[str]) -> int:
        response = self._call(
            "POST", f"/internal/v1/collections/{collection}/delete", tenant, {"document_ids": document_ids}
        )
        if response.status_code != 200:
            raise self._rejected(response)
        return int(response.json()["written"])
