"""Embedding providers behind one interface: the in-process ONNX model, or any OpenAI-compatible
``POST /v1/embeddings`` server (TEI, vLLM, Infinity, a hosted API, or ragfleet's own llm-proxy).

A provider is synchronous (``embed`` blocks; the `MicroBatcher` in `embeddings` runs it in a worker
thread, whichever provider it is) and names the model its vectors come from: a collection records
that name when it is written, and retrieval refuses to search it with another model's vectors.
This module is the provider layer only; batching concurrent requests stays in `embeddings`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import httpx
import numpy as np
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from ragfleet.common.embeddings import Embedder
from ragfleet.common.errors import ServiceUnavailable


@runtime_checkable
class EmbeddingProvider(Protocol):
    model_name: str  # what a collection records: vectors of two names are never compared
    dim: int

    def load(self) -> None:
        """Get ready now (load the model, or check the server's dimension) rather than on first use."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 vectors, shape ``(len(texts), dim)``, in the order of `texts`."""


class EmbeddingProviderError(ServiceUnavailable):
    """The provider cannot embed: the server is unreachable, answers errors, or the wrong shape.
    A request that needed an embedding answers 503 with this message."""

    code = "embedding_unavailable"


class OpenAIEmbeddings:
    """An OpenAI-compatible embeddings endpoint. `base_url` is the API root (``.../v1``).

    Texts go in batches of `batch_size` (servers cap inputs per request; TEI's default is 32).
    Each request has `timeout_s`; connection errors, 408/429 and 5xx answers are retried up to
    `max_retries` times with exponential backoff and jitter, honouring ``Retry-After``; any other
    4xx is the caller's mistake and fails at once. Every vector's dimension is checked against
    `dim`, so a server that serves another model than configured is caught on its first answer,
    and vectors are L2-normalised here (not every server normalises).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        dim: int,
        api_key: str | None = None,
        batch_size: int = 64,
        timeout_s: float = 30.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.model_name = model
        self.dim = dim
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s, transport=transport
        )

    def load(self) -> None:
        self.embed(["dimension check"])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; wrap a single text in a list")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            out[start : start + len(batch)] = self._embed_batch(batch)
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        body = {"model": self.model_name, "input": texts, "encoding_format": "float"}
        response = self._post(body)
        try:
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            matrix = np.asarray([item["embedding"] for item in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingProviderError(f"embeddings server answered an unexpected body: {exc}") from None
        if matrix.ndim != 2 or matrix.shape[0] != len(texts):
            raise EmbeddingProviderError(
                f"embeddings server returned {matrix.shape[0] if matrix.ndim else 0} vectors for {len(texts)} texts"
            )
        if matrix.shape[1] != self.dim:
            raise EmbeddingProviderError(
                f"model {self.model_name!r} returned {matrix.shape[1]}-dimensional vectors; "
                f"configured dimension is {self.dim}"
            )
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.clip(norms, 1e-12, None)

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._client.post("/embeddings", json=body)
            except httpx.TransportError as exc:  # timeouts included
                problem: str = f"{type(exc).__name__}: {exc}"
                retry_after = None
            else:
                if response.status_code == 200:
                    return response
                if response.status_code not in (408, 429) and response.status_code < 500:
                    raise EmbeddingProviderError(
                        f"embeddings server refused the request ({response.status_code}): {response.text[:300]}"
                    )
                problem = f"HTTP {response.status_code}"
                retry_after = _retry_after(response)
            if attempt >= self.max_retries:
                raise EmbeddingProviderError(f"embeddings server failed {attempt + 1} times; last: {problem}")
            delay = retry_after if retry_after is not None else self.backoff_s * 2**attempt
            time.sleep(min(delay, 30.0) * (1.0 if retry_after is not None else random.uniform(0.5, 1.0)))
            attempt += 1

    def close(self) -> None:
        self._client.close()


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None


class EmbeddingProviderSettings(BaseSettings):
    """Mixed into the settings of every service that embeds (retrieval, the ingestion worker), so
    both use one model: ``RAGFLEET_<SVC>_EMBEDDING_PROVIDER`` and so on."""

    embedding_provider: Literal["onnx", "openai"] = Field(
        "onnx", description="onnx: all-MiniLM-L6-v2 in process; openai: an OpenAI-compatible /v1/embeddings"
    )
    embedding_url: str | None = Field(None, description="openai: the API root, e.g. http://tei:8080/v1")
    embedding_model: str | None = Field(None, description="openai: the model id sent to the server")
    embedding_dim: int = Field(384, ge=1, le=8192, description="openai: the model's vector dimension")
    embedding_api_key: SecretStr | None = Field(None, description="openai: sent as a Bearer token")
    embedding_batch_size: int = Field(64, ge=1, le=2048, description="openai: texts per request")
    embedding_timeout_s: float = Field(30.0, gt=0, le=600, description="openai: per request")
    embedding_max_retries: int = Field(3, ge=0, le=10)


def create_provider(settings: EmbeddingProviderSettings, *, threads: int | None = None) -> EmbeddingProvider:
    if settings.embedding_provider == "onnx":
        return Embedder(threads=threads)
    if not settings.embedding_url or not settings.embedding_model:
        raise ValueError("embedding_provider=openai needs embedding_url and embedding_model")
    return OpenAIEmbeddings(
        settings.embedding_url,
        settings.embedding_model,
        dim=settings.embedding_dim,
        api_key=settings.embedding_api_key.get_secret_value() if settings.embedding_api_key else None,
        batch_size=settings.embedding_batch_size,
        timeout_s=settings.embedding_timeout_s,
        max_retries=settings.embedding_max_retries,
    )
