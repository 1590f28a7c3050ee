"""A ``POST /v1/documents`` body read into staged documents, every limit enforced while reading.

Multipart (files): each file's bytes go to the staging store as they arrive (``staging.py``), so
the API holds a network chunk and at most a staging piece per upload, never a whole document; the
request and per-document byte limits and the document count are checked at every chunk, and the
request is refused at the byte or the part that crosses one. JSON: one JSON value cannot be
validated before its end, so the body is read whole — bounded by ``max_json_request_bytes``
(8 MiB), far below the multipart limit, on the way — and its documents are then staged piece by
piece like files (send large files as multipart: the CLI and the console do).

Whatever is refused here has staged nothing that survives: the caller discards the request's
staged keys on any exception (``intake.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from ragfleet.common.errors import (
    BadRequest,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
    describe_validation_errors,
)
from ragfleet.ingestion import multipart, validation
from ragfleet.ingestion.config import IngestionSettings
from ragfleet.ingestion.parsers import EXTENSIONS, DocumentFormat, format_for
from ragfleet.ingestion.schemas import DocumentsIn
from ragfleet.ingestion.staging import StagedDocumentWriter, StagedRequest

# Plain form fields (only ``metadata`` is read) are held in memory: bounded in number and size,
# as Starlette's form parser bounded them.
MAX_FORM_FIELDS = 100
MAX_FORM_FIELD_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Document:
    """A document staged for a job: what its task needs besides the bytes."""

    document_id: str
    fmt: DocumentFormat
    metadata: dict[str, Any]
    size: int  # bytes: which lane it goes to (IngestionSettings.queue_for)


async def limited(body: AsyncIterator[bytes], settings: IngestionSettings) -> AsyncIterator[bytes]:
    """The body, refused with a 413 at the chunk that takes it over ``max_request_bytes``."""
    received = 0
    async for chunk in body:
        received += len(chunk)
        if received > settings.max_request_bytes:
            raise validation.request_too_large(settings)
        yield chunk


async def read_json_body(body: AsyncIterator[bytes], settings: IngestionSettings) -> bytearray:
    """The whole body, refused with a 413 at the chunk that takes it over the JSON limit."""
    limit = validation.json_request_limit(settings)
    raw = bytearray()
    async for chunk in body:
        raw += chunk
        if len(raw) > limit:
            raise validation.json_request_too_large(settings)
    return raw


async def stage_json(
    body: AsyncIterator[bytes], settings: IngestionSettings, staged: StagedRequest
) -> list[Document]:
    raw = await read_json_body(body, settings)
    try:
        parsed = DocumentsIn.model_validate(orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    except ValidationError as exc:
        message, details = describe_validation_errors(list(exc.errors()))  # type: ignore[arg-type]
        raise Unprocessable(message, details=details) from exc
    del raw
    documents, texts = [], []
    for index, doc in enumerate(parsed.documents):
        document_id = doc.id or uuid.uuid4().hex
        data = doc.text.encode()
        name = f"document {document_id!r} (documents[{index}])"
        if not doc.text.strip():
            raise validation.empty(name)
        if len(data) > settings.max_document_bytes:
            raise validation.document_too_large(name, settings, len(data))
        validation.check_metadata(name, doc.metadata, settings)
        documents.append(Document(document_id, DocumentFormat(doc.format), doc.metadata, len(data)))
        texts.append(data)
    if len(documents) > settings.max_documents_per_request:
        raise validation.too_many_documents(settings, len(documents))
    validation.check_unique([doc.document_id for doc in documents])
    for document, data in zip(documents, texts, strict=True):
        writer = staged.document(document.document_id)
        await writer.write(data)
        await writer.close()
    return documents


@dataclass
class _File:
    filename: str
    document_id: str
    fmt: DocumentFormat
    writer: StagedDocumentWriter | None  # None: a repeated id, refused once the body is read
    size: int = 0
    blank: bool = True

    @property
    def name(self) -> str:
        return f"file {self.filename!r}"


@dataclass
class _Field:
    name: str
    value: bytearray = field(default_factory=bytearray)


async def stage_multipart(
    body: AsyncIterator[bytes], content_type: str, settings: IngestionSettings, staged: StagedRequest
) -> list[Document]:
    files: list[_File] = []
    field_count = 0
    staged_ids: set[str] = set()
    part: _File | _Field | None = None
    shared: dict[str, Any] | None = None  # the ``metadata`` field, once it has been read
    async for event in multipart.parts(limited(body, settings), content_type):
        if isinstance(event, multipart.PartStart) and event.filename is not None:
            if len(files) >= settings.max_documents_per_request:
                raise validation.too_many_documents(settings)
            filename = event.filename or "upload"
            fmt = format_for(filename, event.content_type)
            if fmt is None:
                supported = ", ".join(sorted(EXTENSIONS))
                raise UnsupportedMediaType(
                    f"file {filename!r} ({event.content_type or 'no content type'}) is not a supported "
                    f"type; supported: {supported}"
                )
            if shared is not None:  # sent before the files (browsers and httpx do): refused before staging
                validation.check_metadata(f"file {filename!r}", {**shared, "filename": filename}, settings)
            document_id = validation.document_id_from_filename(filename)
            writer = None if document_id in staged_ids else staged.document(document_id)
            staged_ids.add(document_id)
            part = _File(filename, document_id, fmt, writer)
        elif isinstance(event, multipart.PartStart):
            field_count += 1
            if field_count > MAX_FORM_FIELDS:
                raise BadRequest(f"the multipart body has more than {MAX_FORM_FIELDS} form fields")
            part = _Field(event.name)
        elif isinstance(event, multipart.PartData) and isinstance(part, _File):
            part.size += len(event.data)
            if part.size > settings.max_document_bytes:
                raise validation.document_too_large(part.name, settings)
            part.blank = part.blank and not event.data.strip()
            if part.writer is not None:
                await part.writer.write(event.data)
        elif isinstance(event, multipart.PartData) and isinstance(part, _Field):
            if len(part.value) + len(event.data) > MAX_FORM_FIELD_BYTES:
                raise PayloadTooLarge(
                    f"form field {part.name!r} exceeds the limit of {MAX_FORM_FIELD_BYTES} bytes"
                )
            part.value += event.data
        elif isinstance(event, multipart.PartEnd) and isinstance(part, _File):
            if part.blank:
                raise validation.empty(part.name)
            if part.writer is not None:
                await part.writer.close()
            files.append(part)
            part = None
        elif isinstance(event, multipart.PartEnd) and isinstance(part, _Field):
            if part.name == "metadata":  # the last one wins, as in Starlette's form
                shared = _shared_metadata(multipart.decode_field(bytes(part.value), content_type))
            part = None
    shared_metadata = shared or {}
    if not files:
        raise BadRequest("the multipart body holds no files (send them as form field 'files')")
    documents = []
    for upload in files:
        metadata = {**shared_metadata, "filename": upload.filename}
        validation.check_metadata(upload.name, metadata, settings)
        documents.append(Document(upload.document_id, upload.fmt, metadata, upload.size))
    validation.check_unique([doc.document_id for doc in documents])
    return documents


def _shared_metadata(field_value: str) -> dict[str, Any]:
    """The ``metadata`` form field: JSON for every file of the request."""
    try:
        shared = orjson.loads(field_value or "{}")
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"form field 'metadata' is not valid JSON: {exc}") from exc
    if not isinstance(shared, dict):
        raise BadRequest("form field 'metadata' must be a JSON object")
    return shared
