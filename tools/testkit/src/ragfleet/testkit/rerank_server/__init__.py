"""A real HTTP server speaking the rerank protocol (Cohere/Jina/vLLM ``POST /v1/rerank`` and
TEI's ``POST /rerank``) and computing real relevance scores, for retrieval's remote rerank tests.

No cross-encoder can be had offline on these machines, so the scores are what the platform's own
embedding model says: the cosine of the query's and each document's all-MiniLM-L6-v2 vectors,
computed here, per request. They are real scores of a real model, from a separate process over
HTTP — what retrieval must handle from TEI or Cohere — not canned numbers.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from ragfleet.common.app import create_service_app
from ragfleet.common.config import ServiceSettings
from ragfleet.common.embeddings import Embedder


class RerankServerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RAGFLEET_RERANK_SERVER_", extra="ignore", frozen=True)

    service_name: str = "rerank-server"
    port: int = 8098
    access_log: bool = False


class CohereRerank(BaseModel):
    model: str | None = None
    query: str
    documents: list[str | dict[str, Any]] = Field(min_length=1)
    top_n: int | None = None


class TeiRerank(BaseModel):
    query: str
    texts: list[str] = Field(min_length=1)


def create_app(settings: RerankServerSettings | None = None) -> FastAPI:
    settings = settings or RerankServerSettings()
    app = create_service_app(settings, title="rerank test server")
    embedder = Embedder(threads=1)
    received: list[dict[str, Any]] = []

    def scores(query: str, texts: list[str]) -> list[float]:
        vectors = embedder.embed([query, *texts])
        return [float(s) for s in vectors[1:] @ vectors[0]]

    @app.post("/v1/rerank")
    def cohere(body: CohereRerank) -> dict[str, Any]:
        texts = [d if isinstance(d, str) else str(d.get("text", "")) for d in body.documents]
        received.append({"api": "cohere", "documents": len(texts)})
        ranked = sorted(enumerate(scores(body.query, texts)), key=lambda item: -item[1])
        if body.top_n is not None:
            ranked = ranked[: body.top_n]
        return {"model": body.model, "results": [{"index": i, "relevance_score": s} for i, s in ranked]}

    @app.post("/rerank")
    def tei(body: TeiRerank) -> list[dict[str, Any]]:
        received.append({"api": "tei", "documents": len(body.texts)})
        ranked = sorted(enumerate(scores(body.query, body.texts)), key=lambda item: -item[1])
        return [{"index": i, "score": s} for i, s in ranked]

    @app.get("/received")
    def seen() -> list[dict[str, Any]]:
        return received

    return app
