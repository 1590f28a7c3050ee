"""The ingestion API's request and response bodies (pydantic only: shared by routes and services)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DOCUMENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"


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
