"""The rerank stage: the fused top-N rescored by a reranker, per request or as the service default.

`RemoteReranker` speaks the two rerank protocols servers implement: ``cohere`` (``POST
{url}/rerank`` with ``query``, ``documents``, ``top_n``, answering ``results: [{index,
relevance_score}]`` — Cohere, Jina, vLLM, Infinity) and ``tei`` (``POST {url}/rerank`` with
``query`` and ``texts``, answering ``[{index, score}]`` — Hugging Face TEI). No cross-encoder model
can be had offline here, so there is no in-process reranker: point `rerank_url` at one of those.

Only the first `depth` results are rescored (a cross-encoder costs a model call per document);
the rest keep their order after them. A reranker that fails answers 503 naming it: a request
that asked for reranking is not silently served without it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

import httpx

from ragfleet.common.errors import ServiceUnavailable
from ragfleet.retrieval.metrics import RERANK_DURATION
from ragfleet.retrieval.store import Hit


class RerankUnavailable(ServiceUnavailable):
    code = "rerank_unavailable"


class RemoteReranker:
    def __init__(
        self,
        url: str,
        *,
        api: Literal["cohere", "tei"] = "cohere",
        model: str | None = None,
        timeout_s: float = 10.0,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.api = api
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=url.rstrip("/"), timeout=timeout_s, headers=headers, transport=transport
        )

    async def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        """One relevance score per text, in the order of `texts`."""
        body: dict[str, Any]
        if self.api == "tei":
            body = {"query": query, "texts": list(texts)}
        else:
            body = {"query": query, "documents": list(texts), "top_n": len(texts)}
            if self.model:
                body["model"] = self.model
        started = time.perf_counter()
        try:
            response = await self._client.post("/rerank", json=body)
            response.raise_for_status()
            payload = response.json()
            items = payload if isinstance(payload, list) else payload["results"]
            scores = [float("-inf")] * len(texts)
            for item in items:
                scores[int(item["index"])] = float(item.get("relevance_score", item.get("score")))
        except (httpx.HTTPError, ValueError, KeyError, TypeError, IndexError) as exc:
            RERANK_DURATION.labels("error").observe(time.perf_counter() - started)
            raise RerankUnavailable(f"the reranker failed: {type(exc).__name__}: {exc}") from None
        RERANK_DURATION.labels("ok").observe(time.perf_counter() - started)
        return scores

    async def rerank(self, query: str, hits: Sequence[Hit], depth: int) -> list[Hit]:
        head, tail = list(hits[:depth]), list(hits[depth:])
        if len(head) < 2:
            return list(hits)
        scores = await self.scores(query, [hit.text for hit in head])
        order = sorted(range(len(head)), key=lambda i: -scores[i])
        return [replace(head[i], score=scores[i]) for i in order] + tail

    async def close(self) -> None:
        await self._client.aclose()
