"""What a client can get wrong about its documents, refused with a 4xx that names the document
and the limit it crossed (every limit is a setting, named in the message and the details)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson

from ragfleet.common.errors import BadRequest, PayloadTooLarge, Unprocessable
from ragfleet.ingestion.config import IngestionSettings


def document_id_from_filename(filename: str) -> str:
    """A stable id from an uploaded file's (relative) name, so re-uploading a folder replaces it."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", filename.replace("\\", "/").strip("/")).strip("-._")
    return cleaned[:200] or uuid.uuid4().hex


def check_metadata(name: str, metadata: dict[str, Any], settings: IngestionSettings) -> None:
    """Metadata travels with every chunk into the index: its size is capped per document."""
    reserved = sorted(key for key in metadata if key.startswith("_"))
    if reserved:
        raise Unprocessable(f"{name}: metadata keys starting with '_' are reserved: {reserved}")
    if len(metadata) > settings.max_metadata_keys:
        raise Unprocessable(
            f"{name}: metadata has {len(metadata)} keys; the limit is {settings.max_metadata_keys} "
            "(max_metadata_keys)",
            code="too_many_metadata_keys",
            details={
                "limit": "max_metadata_keys",
                "max": settings.max_metadata_keys,
                "actual": len(metadata),
            },
        )
    size = len(orjson.dumps(metadata))
    if size > settings.max_metadata_bytes:
        raise PayloadTooLarge(
            f"{name}: metadata is {size} bytes of JSON; the limit is {settings.max_metadata_bytes} "
            "(max_metadata_bytes)",
            code="metadata_too_large",
            details={"limit": "max_metadata_bytes", "max": settings.max_metadata_bytes, "actual": size},
        )


def _over(limit: int, actual: int | None) -> str:
    """How a refusal states its size: the actual one when known (a streamed body is refused at the
    byte that crosses the limit, before its size is known)."""
    if actual is not None:
        return f"is {actual} bytes; the limit is {limit}"
    return f"exceeds the limit of {limit} bytes"


def document_too_large(name: str, settings: IngestionSettings, size: int | None = None) -> PayloadTooLarge:
    limit = settings.max_document_bytes
    return PayloadTooLarge(
        f"{name} {_over(limit, size)} (max_document_bytes)",
        details={"limit": "max_document_bytes", "max": limit},
    )


def request_too_large(settings: IngestionSettings, size: int | None = None) -> PayloadTooLarge:
    limit = settings.max_request_bytes
    return PayloadTooLarge(
        f"request body {_over(limit, size)} (max_request_bytes)",
        details={"limit": "max_request_bytes", "max": limit},
    )


def json_request_too_large(settings: IngestionSettings, size: int | None = None) -> PayloadTooLarge:
    limit = json_request_limit(settings)
    return PayloadTooLarge(
        f"JSON request body {_over(limit, size)} (max_json_request_bytes): send large documents as "
        "multipart/form-data files, which are streamed",
        details={"limit": "max_json_request_bytes", "max": limit},
    )


def json_request_limit(settings: IngestionSettings) -> int:
    return min(settings.max_json_request_bytes, settings.max_request_bytes)


def too_many_documents(settings: IngestionSettings, count: int | None = None) -> PayloadTooLarge:
    limit = settings.max_documents_per_request
    what = f"{count} documents" if count is not None else f"more than {limit} documents"
    return PayloadTooLarge(
        f"{what} in one request; the limit is {limit} (max_documents_per_request)",
        code="too_many_documents",
        details={"limit": "max_documents_per_request", "max": limit},
    )


def check_unique(ids: list[str]) -> None:
    if duplicates := sorted({i for i in ids if ids.count(i) > 1}):
        raise BadRequest(f"document ids appear more than once in the request: {duplicates}")


def empty(name: str) -> BadRequest:
    return BadRequest(f"{name} is empty", code="empty_document")
