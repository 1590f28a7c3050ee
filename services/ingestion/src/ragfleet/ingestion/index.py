"""The API's calls to retrieval's internal API: what the index holds for a document, and deletes.

Synchronous deletes: when one answers, the chunks are gone from the index and from every
replica's cache (retrieval bumps the collection's version). Retrieval unreachable or failing is a
503; its 4xx are relayed with their own status and code (not flattened into a 400).
"""

from __future__ import annotations

from typing import Any

import httpx

from ragfleet.common.contracts import TENANT_HEADER, downstream_error
from ragfleet.common.errors import BadRequest, NotFound, ServiceUnavailable


def _collection_path(collection: str, suffix: str = "") -> str:
    return f"/internal/v1/collections/{collection}{suffix}"


async def _call(
    retrieval: httpx.AsyncClient, method: str, path: str, tenant: str, json: Any = None
) -> httpx.Response:
    try:
        response = await retrieval.request(method, path, json=json, headers={TENANT_HEADER: tenant})
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"retrieval is unreachable: {type(exc).__name__}") from exc
    if response.status_code >= 500:
        raise ServiceUnavailable(f"retrieval answered {response.status_code}")
    return response


def _refused(response: httpx.Response) -> Exception:
    return downstream_error("retrieval", response.status_code, response.content) or BadRequest(
        "retrieval refused the request"
    )


async def get_document(
    retrieval: httpx.AsyncClient, tenant: str, collection: str, document_id: str
) -> dict[str, Any]:
    response = await _call(
        retrieval, "GET", _collection_path(collection, f"/documents/{document_id}"), tenant
    )
    if response.status_code == 404:
        raise NotFound(
            f"document {document_id!r} is not in collection {collection!r}", code="document_not_found"
        )
    if response.status_code != 200:
        raise _refused(response)
    return {**response.json(), "collection": collection}


async def delete_document(
    retrieval: httpx.AsyncClient, tenant: str, collection: str, document_id: str
) -> dict[str, Any]:
    response = await _call(
        retrieval, "POST", _collection_path(collection, "/delete"), tenant, {"document_ids": [document_id]}
    )
    if response.status_code != 200:
        raise _refused(response)
    deleted = int(response.json()["written"])
    if deleted == 0:
        raise NotFound(
            f"document {document_id!r} is not in collection {collection!r}", code="document_not_found"
        )
    return {"document_id": document_id, "collection": collection, "deleted_chunks": deleted}


async def delete_collection(retrieval: httpx.AsyncClient, tenant: str, collection: str) -> Any:
    """Every chunk, the cache entries and the collection's records; it then no longer counts
    towards max_collections_per_tenant."""
    response = await _call(retrieval, "DELETE", _collection_path(collection), tenant)
    if response.status_code == 404:
        raise NotFound(f"collection {collection!r} does not exist", code="collection_not_found")
    if response.status_code != 200:
        raise _refused(response)
    return response.json()
