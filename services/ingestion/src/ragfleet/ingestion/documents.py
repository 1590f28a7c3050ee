"""``/v1/documents`` and ``/v1/jobs``: documents are checked, staged in Redis and queued here;
the worker does the rest. Everything a client can get wrong is refused here with a 4xx that
names the document; what only parsing can tell (binary in a .txt, a PDF without text) comes back
as a per-document error in the job."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import httpx
import orjson
from fastapi import APIRouter, Header, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.exceptions import RedisError
from starlette.datastructures import UploadFile

from ragfleet.common.contracts import NAME_PATTERN, TENANT_HEADER, downstream_error
from ragfleet.common.errors import (
    BadRequest,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    Unprocessable,
    UnsupportedMediaType,
    describe_validation_errors,
)
from ragfleet.ingestion import jobs
from ragfleet.ingestion.config import IngestionSettings
from ragfleet.ingestion.dependencies import CeleryDep, RetrievalDep, SettingsDep, StateRedisDep
from ragfleet.ingestion.metrics import DOCUMENTS_ACCEPTED
from ragfleet.ingestion.parsers import EXTENSIONS, DocumentFormat, format_for

DOCUMENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"

router = APIRouter(tags=["documents"])

Collection = Annotated[str, Query(pattern=NAME_PATTERN, description="the collection to write to")]
Tenant = Annotated[
    str, Header(alias=TENANT_HEADER, pattern=NAME_PATTERN, description="set by the gateway from the API key")
]


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        None,
        pattern=DOCUMENT_ID_PATTERN,
        description="re-posting an id replaces that document; default: new id",
    )
    text: str = Field(description="the document's content, in `format`")
    format: Literal["text", "markdown", "html"] = "text"
    metadata: dict[str, Any] = Field(default_factory=dict, description="kept on every chunk")


class DocumentsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: list[DocumentIn] = Field(min_length=1)


class JobAccepted(BaseModel):
    job_id: str
    status_url: str
    documents: list[str]


@dataclass
class _Staged:
    document_id: str
    fmt: DocumentFormat
    data: bytes
    metadata: dict[str, Any]


def document_id_from_filename(filename: str) -> str:
    """A stable id from an uploaded file's (relative) name, so re-uploading a folder replaces it."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", filename.replace("\\", "/").strip("/")).strip("-._")
    return cleaned[:200] or uuid.uuid4().hex


def _check_metadata(name: str, metadata: dict[str, Any], settings: IngestionSettings) -> None:
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


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {int(declared)} bytes; the limit is {limit}")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
    return bytes(body)


def _from_json(body: bytes, settings: IngestionSettings) -> list[_Staged]:
    try:
        parsed = DocumentsIn.model_validate(orjson.loads(body))
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    except ValidationError as exc:
        message, details = describe_validation_errors(list(exc.errors()))  # type: ignore[arg-type]
        raise Unprocessable(message, details=details) from exc
    staged = []
    for index, doc in enumerate(parsed.documents):
        document_id = doc.id or uuid.uuid4().hex
        data = doc.text.encode()
        name = f"document {document_id!r} (documents[{index}])"
        if not doc.text.strip():
            raise BadRequest(f"{name} is empty", code="empty_document")
        if len(data) > settings.max_document_bytes:
            raise PayloadTooLarge(f"{name} is {len(data)} bytes; the limit is {settings.max_document_bytes}")
        _check_metadata(name, doc.metadata, settings)
        staged.append(_Staged(document_id, DocumentFormat(doc.format), data, doc.metadata))
    return staged


async def _from_multipart(request: Request, body: bytes, settings: IngestionSettings) -> list[_Staged]:
    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(request.scope, replay).form(
        max_files=settings.max_documents_per_request, max_fields=100
    )
    try:
        shared_metadata = orjson.loads(str(form.get("metadata") or "{}"))
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"form field 'metadata' is not valid JSON: {exc}") from exc
    if not isinstance(shared_metadata, dict):
        raise BadRequest("form field 'metadata' must be a JSON object")
    staged = []
    for _, value in form.multi_items():
        if not isinstance(value, UploadFile):
            continue
        filename = value.filename or "upload"
        document_id = document_id_from_filename(filename)
        fmt = format_for(filename, value.content_type)
        if fmt is None:
            supported = ", ".join(sorted(EXTENSIONS))
            raise UnsupportedMediaType(
                f"file {filename!r} ({value.content_type or 'no content type'}) is not a supported type; "
                f"supported: {supported}"
            )
        data = await value.read()
        if not data.strip():
            raise BadRequest(f"file {filename!r} is empty", code="empty_document")
        if len(data) > settings.max_document_bytes:
            raise PayloadTooLarge(
                f"file {filename!r} is {len(data)} bytes; the limit is {settings.max_document_bytes}"
            )
        metadata = {**shared_metadata, "filename": filename}
        _check_metadata(f"file {filename!r}", metadata, settings)
        staged.append(_Staged(document_id, fmt, data, metadata))
    await form.close()
    if not staged:
        raise BadRequest("the multipart body holds no files (send them as form field 'files')")
    return staged


@router.post("/v1/documents", status_code=202, response_model=JobAccepted, summary="Ingest documents")
async def post_documents(
    request: Request,
    settings: SettingsDep,
    redis: StateRedisDep,
    celery: CeleryDep,
    collection: Collection = "default",
    tenant: Tenant = "default",
) -> JobAccepted:
    """JSON (`{"documents": [{id?, text, format, metadata}]}`) or multipart (`files`, optional
    `metadata` JSON for all of them). Answers 202 with a job to poll."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/json", "multipart/form-data"):
        raise UnsupportedMediaType(
            f"send documents as application/json or multipart/form-data, not {content_type or 'no content type'}"
        )
    body = await _read_body(request, settings.max_request_bytes)
    if content_type == "application/json":
        staged = _from_json(body, settings)
    else:
        staged = await _from_multipart(request, body, settings)
    if len(staged) > settings.max_documents_per_request:
        raise PayloadTooLarge(
            f"{len(staged)} documents in one request; the limit is {settings.max_documents_per_request} "
            "(max_documents_per_request)",
            code="too_many_documents",
        )
    ids = [doc.document_id for doc in staged]
    if duplicates := sorted({i for i in ids if ids.count(i) > 1}):
        raise BadRequest(f"document ids appear more than once in the request: {duplicates}")

    job_id = uuid.uuid4().hex
    meta = {"tenant": tenant, "collection": collection, "created_at": round(time.time(), 3), "documents": ids}
    args = {
        doc.document_id: jobs.task_args(
            job_id, tenant, collection, doc.document_id, doc.fmt.value, doc.metadata
        )
        for doc in staged
    }
    try:
        pipe = redis.pipeline(transaction=True)
        for doc in staged:
            pipe.set(jobs.payload_key(job_id, doc.document_id), doc.data, ex=settings.payload_ttl_s)
        pipe.hset(
            jobs.job_key(job_id),
            mapping={
                "meta": orjson.dumps(meta),
                **{jobs.doc_field(i): jobs.doc_state("queued") for i in ids},
                **{field: value for a in args.values() for field, value in jobs.pending_fields(a).items()},
            },
        )
        pipe.expire(jobs.job_key(job_id), settings.job_ttl_s)
        # Watched by the reconciler until each document is final (a task the broker lost is sent again).
        pipe.zadd(jobs.PENDING_KEY, {jobs.pending_member(job_id, i): time.time() for i in ids})
        await pipe.execute()
    except RedisError as exc:
        raise ServiceUnavailable(f"cannot stage documents: Redis is unavailable ({exc})") from exc

    def enqueue() -> None:
        # Through the app object, not the task proxy: Celery's "current app" is per thread.
        for doc in staged:
            celery.send_task(
                jobs.TASK_NAME, args=args[doc.document_id], task_id=jobs.task_id(job_id, doc.document_id)
            )

    try:
        await asyncio.to_thread(enqueue)
    except Exception as exc:
        raise ServiceUnavailable(f"cannot queue the job: the broker is unavailable ({exc})") from exc
    DOCUMENTS_ACCEPTED.inc(len(staged))
    return JobAccepted(job_id=job_id, status_url=f"/v1/jobs/{job_id}", documents=ids)


@router.get("/v1/jobs/{job_id}", summary="A job's state, with each document's progress and errors")
async def get_job(
    job_id: str, settings: SettingsDep, redis: StateRedisDep, tenant: Tenant = "default"
) -> dict[str, Any]:
    try:
        raw = await redis.hgetall(jobs.job_key(job_id))
    except RedisError as exc:
        raise ServiceUnavailable(f"job status is unavailable: Redis is unreachable ({exc})") from exc
    job = jobs.summarise(job_id, raw)
    # Another tenant's job is reported as missing, never as someone else's.
    if job is None or job["tenant"] != tenant:
        raise NotFound(
            f"job {job_id!r} not found (jobs are kept {settings.job_ttl_s}s)",
            code="job_not_found",
        )
    return job


def _retrieval_path(collection: str, suffix: str) -> str:
    return f"/internal/v1/collections/{collection}/{suffix}"


async def _retrieval_call(
    retrieval: httpx.AsyncClient, method: str, path: str, tenant: str, json: Any = None
) -> Any:
    try:
        response = await retrieval.request(method, path, json=json, headers={TENANT_HEADER: tenant})
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"retrieval is unreachable: {type(exc).__name__}") from exc
    if response.status_code >= 500:
        raise ServiceUnavailable(f"retrieval answered {response.status_code}")
    return response


def _refused(response: Any) -> Exception:
    """Retrieval's 4xx, relayed with its own status and code (not flattened into a 400)."""
    return downstream_error("retrieval", response.status_code, response.content) or BadRequest(
        "retrieval refused the request"
    )


@router.get("/v1/documents/{document_id}", summary="What the index holds for one document")
async def get_document(
    retrieval: RetrievalDep, document_id: str, collection: Collection = "default", tenant: Tenant = "default"
) -> dict[str, Any]:
    response = await _retrieval_call(
        retrieval, "GET", _retrieval_path(collection, f"documents/{document_id}"), tenant
    )
    if response.status_code == 404:
        raise NotFound(
            f"document {document_id!r} is not in collection {collection!r}", code="document_not_found"
        )
    if response.status_code != 200:
        raise _refused(response)
    return {**response.json(), "collection": collection}


@router.delete("/v1/documents/{document_id}", summary="Delete a document and all its chunks")
async def delete_document(
    retrieval: RetrievalDep, document_id: str, collection: Collection = "default", tenant: Tenant = "default"
) -> dict[str, Any]:
    """Synchronous: when this answers, the chunks are gone from the index and from every cache."""
    response = await _retrieval_call(
        retrieval, "POST", _retrieval_path(collection, "delete"), tenant, {"document_ids": [document_id]}
    )
    if response.status_code != 200:
        raise _refused(response)
    deleted = int(response.json()["written"])
    if deleted == 0:
        raise NotFound(
            f"document {document_id!r} is not in collection {collection!r}", code="document_not_found"
        )
    return {"document_id": document_id, "collection": collection, "deleted_chunks": deleted}


CollectionPath = Annotated[str, Path(pattern=NAME_PATTERN, description="the collection to delete")]


@router.delete("/v1/collections/{collection}", summary="Delete a collection: its chunks, caches and records")
async def delete_collection(
    retrieval: RetrievalDep, collection: CollectionPath, tenant: Tenant = "default"
) -> Any:
    """Synchronous, like a document's delete: when this answers, every chunk is gone from the index
    and every replica's cache; the collection no longer counts towards max_collections_per_tenant."""
    response = await _retrieval_call(retrieval, "DELETE", f"/internal/v1/collections/{collection}", tenant)
    if response.status_code == 404:
        raise NotFound(f"collection {collection!r} does not exist", code="collection_not_found")
    if response.status_code != 200:
        raise _refused(response)
    return response.json()
