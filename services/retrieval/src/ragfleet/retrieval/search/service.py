"""Search with the two-tier cache in front: query embeddings and result lists are both cached.

A cached search result is stored as the JSON bytes of its response body (minus ``took_ms``), so
a hit costs a dict lookup and one small concatenation: nothing is rebuilt or re-serialised.

A hybrid search whose query cannot be embedded within ``degrade_after_s`` (the embedder's queue
is full of other misses) is answered BM25-only instead of waiting or being refused: the answer
says so (``"degraded": "embedder_busy"``, ``"mode": "bm25"``, the ``X-Search-Degraded`` header),
is cached in no tier (`Uncached`), and is counted. Under a miss-heavy load this bounds a miss's
wait and turns what were 503s into fast answers; the embedder keeps embedding what it can take.
Behind a degraded answer the full one is computed in the background and stored (`_fill_behind`),
so the question hits the next time.
A vector search has nothing to fall back on: it is refused (503 + ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import orjson

from ragfleet.common.background import BackgroundTasks
from ragfleet.common.cache import (
    BYTES_CODEC,
    CacheResult,
    TwoTierCache,
    Uncached,
    normalise_text,
    request_hash,
)
from ragfleet.common.contracts import DEGRADED_HEADER, prefix_json_field
from ragfleet.common.embeddings import EmbedderBusy, MicroBatcher
from ragfleet.common.errors import BadRequest
from ragfleet.common.semantic_cache import SemanticIndex
from ragfleet.retrieval.collection_models import CollectionModels
from ragfleet.retrieval.collection_settings import NONE, CollectionSettingsStore
from ragfleet.retrieval.metrics import FILLS_BEHIND, SEARCH_DEGRADED, SEARCH_DURATION
from ragfleet.retrieval.rerank import RemoteReranker, RerankUnavailable
from ragfleet.retrieval.search.ranking import rank_documents
from ragfleet.retrieval.search.schemas import SearchRequest
from ragfleet.retrieval.store import (
    CollectionNotFound,
    Hit,
    SearchMode,
    SearchQuery,
    VectorStore,
    parse_filters,
)
from ragfleet.retrieval.store.bm25 import ANALYZER_VERSION

# Candidates per list for document ranking: enough chunks that the top documents' best ones are in.
CANDIDATES = 50
# Full answers computed behind degraded ones at a time, per process (see SearchService._fill_behind).
MAX_FILLS_BEHIND = 32

log = logging.getLogger("ragfleet.retrieval.search")

_DEGRADED_EMBEDDER_BUSY = [(DEGRADED_HEADER.lower().encode(), b"embedder_busy")]


def answer_headers(tier: CacheResult) -> list[tuple[bytes, bytes]]:
    """The headers that say where a search answer came from (the router's and the fast path's)."""
    if tier == "uncached":  # the one answer stored nowhere: a degraded one (see the module's doc)
        return [(b"x-cache", b"miss"), *_DEGRADED_EMBEDDER_BUSY]
    return [(b"x-cache", tier.encode())]


class SearchService:
    def __init__(
        self,
        store: VectorStore,
        batcher: MicroBatcher,
        cache: TwoTierCache,
        models: CollectionModels | None = None,
        semantic: SemanticIndex | None = None,
        *,
        reranker: RemoteReranker | None = None,
        rerank_by_default: bool = False,
        collection_settings: CollectionSettingsStore | None = None,
        degrade_after_s: float = 0.0,
    ) -> None:
        self.store = store
        self.batcher = batcher
        self.cache = cache
        self.models = models
        self.semantic = semantic
        self.reranker = reranker
        self.rerank_by_default = rerank_by_default
        self.collection_settings = collection_settings
        self.degrade_after_s = degrade_after_s  # 0: hybrid never degrades (refused like vector)
        self._background = BackgroundTasks()  # semantic checks, fills behind degraded answers
        self._filling: set[str] = set()  # the questions a fill behind a degraded answer computes
        self._titles_in_flight: dict[str, asyncio.Future[bytes]] = {}  # embedding key -> its vector
        self.model = batcher.embedder.model_name
        self.results = cache.namespace("search", BYTES_CODEC)
        self.embeddings = cache.namespace("embedding", BYTES_CODEC)

    def _embedding_request(self, text: str) -> dict[str, str]:
        """What the embedding cache keys a text's vector by (queries, titles, fills alike): the
        model is part of it, so another model's vector never matches."""
        return {"model": self.model, "text": text}

    async def embed_query(self, tenant: str, text: str, within_s: float | None = None) -> np.ndarray:
        """The query's vector, through the embedding cache (key: model + normalised text).

        ``within_s``: a deadline for the embedding (`EmbedderBusy` past it), for a caller that has
        something better to do than wait (a hybrid search degrades)."""

        async def compute() -> bytes:
            vector = await self.batcher.embed_one(text, within_s=within_s)
            return np.asarray(vector, dtype=np.float32).tobytes()

        raw, _ = await self.embeddings.get_or_compute(tenant, None, self._embedding_request(text), compute)
        return np.frombuffer(raw, dtype=np.float32)

    async def embed_titles(self, tenant: str, titles: list[str]) -> list[np.ndarray]:
        """The titles' vectors through the same embedding cache as queries, the missing ones
        embedded as one batch: up to ~50 titles per search were 50 concurrent single-text
        requests to the micro-batcher, which its load shedding refused as a queue (503
        embedder_busy) whenever a search met new titles after one slow batch.

        A title already being embedded for another search is awaited, not embedded again: on a
        cold cache every concurrent search meets the same missing titles, and each embedding
        them for itself queued 64 users x ~50 titles behind one embedder thread (searches took
        up to 3.4 s in the first seconds of the search-tail load; docs/benchmarks/retrieval.md,
        session 14)."""
        scope = (tenant, "")
        keys = [await self.embeddings.key(tenant, None, self._embedding_request(t)) for t in titles]
        found = [(await self.embeddings.lookup(key, scope))[0] for key in keys]
        missing = [i for i, raw in enumerate(found) if raw is None]
        new = {keys[i]: titles[i] for i in missing if keys[i] not in self._titles_in_flight}
        if new:
            loop = asyncio.get_running_loop()
            flights = {key: loop.create_future() for key in new}
            self._titles_in_flight.update(flights)
            # A task of its own, not this request's: a client that goes away does not take the
            # other searches' titles with it.
            self._background.start(self._embed_titles_once(scope, new, flights))
        waits = {i: self._titles_in_flight[keys[i]] for i in missing}
        for i, flight in waits.items():
            found[i] = await asyncio.shield(flight)
        return [np.frombuffer(raw, dtype=np.float32) for raw in found if raw is not None]

    async def _embed_titles_once(
        self, scope: tuple[str, str], titles: dict[str, str], flights: dict[str, asyncio.Future[bytes]]
    ) -> None:
        """Embed `titles` (embedding key -> title) as one batch, store them, and resolve the
        searches waiting for them (`flights`)."""
        try:
            vectors = await self.batcher.embed_many(list(titles.values()))
            for key, vector in zip(titles, vectors, strict=True):
                raw = np.asarray(vector, dtype=np.float32).tobytes()
                flights[key].set_result(raw)
                await self.embeddings.store(key, scope, raw)
        except Exception as exc:  # every waiting search learns of it; nothing is left to log
            for flight in flights.values():
                if not flight.done():
                    flight.set_exception(exc)
                    flight.exception()
        except BaseException:
            for flight in flights.values():
                flight.cancel()
            raise
        finally:
            for key, flight in flights.items():
                if self._titles_in_flight.get(key) is flight:
                    del self._titles_in_flight[key]

    async def search(self, tenant: str, request: SearchRequest) -> tuple[bytes, CacheResult]:
        """The response body (JSON bytes, ``took_ms`` included) and where it came from."""
        started = time.perf_counter()
        vector_key = None
        if request.vector is not None:
            # Decoded once (base64 or list) and carried on as float32; keyed by its bytes hashed:
            # one key for both forms, and no canonical JSON of 384 floats per request.
            vector = decode_vector(request.vector)
            vector_key = hashlib.blake2b(vector.tobytes(), digest_size=16).hexdigest()
            request = request.model_copy(update={"vector": vector})
        if request.vector is not None and len(request.vector) != self.store.dim:
            raise BadRequest(
                f"vector has {len(request.vector)} dimensions; collection {request.collection!r} "
                f"expects {self.store.dim}"
            )
        text = normalise_text(request.query) if request.query is not None else None
        request = await self._resolve_rerank(tenant, request)
        rerank = request.rerank
        if rerank and text is None:
            raise BadRequest("rerank needs a query text")
        key: dict[str, Any] = {
            "rr": request.rerank_depth if rerank else None,
            "q": text,
            "v": vector_key,
            "k": request.top_k,
            "m": request.mode,
            "a": request.alpha if request.mode == "hybrid" else None,
            "fu": request.fusion if request.mode == "hybrid" else None,
            "r": [request.rank, request.title_weight, request.per_document, request.centroid_weight]
            if request.rank == "document"
            else "c",
            "f": request.filters,
            "e": self.model if request.mode != "bm25" else None,  # results of another model never match
            # nor those of another BM25 analyzer (a cached entry outlives an upgrade in Redis)
            "b": ANALYZER_VERSION if request.mode != "vector" else None,
        }
        if not request.semantic:  # its own entry: the default's may hold another question's results
            key["s"] = False

        semantic_hit = False
        degradable = self.degrade_after_s > 0 and request.mode == "hybrid" and request.vector is None

        async def answer(within_s: float | None) -> bytes:
            nonlocal semantic_hit
            if (
                self.semantic is None
                or not request.semantic
                or text is None
                or request.vector is not None
                or request.mode == "bm25"
            ):
                return await self._search_uncached(tenant, request, text, within_s)
            body, semantic_hit = await self._search_semantic(tenant, request, text, key, within_s)
            return body

        async def compute() -> bytes:
            try:
                return await answer(self.degrade_after_s if degradable else None)
            except EmbedderBusy:
                if not degradable:
                    raise
            # Outside the except block: the BM25 search's own errors are not chained to this one.
            bm25 = request.model_copy(update={"mode": "bm25"})
            raise Uncached(await self._search_uncached(tenant, bm25, text, degraded="embedder_busy"))

        # A query given only as a vector is cached in this process alone: it repeats when one
        # client repeats itself (session affinity brings it back here), hardly ever across
        # replicas, and the L2 get and set were a fifth of an uncached vector search's CPU.
        body, tier = await self.results.get_or_compute(
            tenant, request.collection, key, compute, shared=text is not None
        )
        if semantic_hit:
            tier = "hit-semantic"
        elif tier == "uncached":
            SEARCH_DEGRADED.labels("embedder_busy").inc()
            self._fill_behind(tenant, request.collection, key, answer)
        took_ms = (time.perf_counter() - started) * 1000
        SEARCH_DURATION.labels(request.mode, tier).observe(took_ms / 1000)
        # The cached body is a JSON object without took_ms; it goes in front of its first key.
        return prefix_json_field(body, "took_ms", f"{took_ms:.3f}".encode()), tier

    def _fill_behind(
        self,
        tenant: str,
        collection: str,
        key: dict[str, Any],
        answer: Callable[[float | None], Awaitable[bytes]],
    ) -> None:
        """After a degraded answer, compute the full one in the background and store it, so the
        next ask of the question hits. Without it a degraded question stayed a miss for as long
        as the embedder was busy: under the 20,000-question tail load about 30 % of requests missed
        (5 % before degrading), and the cache hit-rate gate fell to 60 %. Best effort and bounded:
        at most ``MAX_FILLS_BEHIND`` at a time per process, one per question, and the fill's text
        is refused like any other when the embedder's queue is over its bound (``max_queue_s``)."""
        fill_key = request_hash({"t": tenant, "c": collection, **key})
        if fill_key in self._filling or len(self._filling) >= MAX_FILLS_BEHIND:
            FILLS_BEHIND.labels("skipped").inc()
            return
        self._filling.add(fill_key)

        async def fill() -> None:
            # The key at the version read before the answer's inputs: a write meanwhile leaves the
            # answer under the old version, where nothing reads it.
            cache_key = await self.results.key(tenant, collection, key)
            text = key["q"]
            try:
                # The query's vector first, outside the embedding cache's single flight: a request
                # for the same question meanwhile embeds under its own deadline (and degrades again)
                # instead of waiting for this fill, which has none of its own — nobody waits for it.
                vector = await self.batcher.embed_one(text)
                embedding_key = await self.embeddings.key(tenant, None, self._embedding_request(text))
                raw = np.asarray(vector, dtype=np.float32).tobytes()
                await self.embeddings.store(embedding_key, (tenant, ""), raw)
                body = await answer(None)
            except EmbedderBusy:
                FILLS_BEHIND.labels("refused").inc()
                return
            except Exception:  # a fill must never hurt: the request was answered already
                log.warning("a fill behind a degraded search failed", exc_info=True)
                FILLS_BEHIND.labels("failed").inc()
                return
            await self.results.store(cache_key, (tenant, collection), body)
            FILLS_BEHIND.labels("stored").inc()

        task = self._background.start(fill())
        task.add_done_callback(lambda _: self._filling.discard(fill_key))

    async def _resolve_rerank(self, tenant: str, request: SearchRequest) -> SearchRequest:
        """`request` with `rerank` and `rerank_depth` decided: the request's own, else the
        collection's defaults (`collection_settings`), else the service's."""
        asked_depth = "rerank_depth" in request.model_fields_set
        own = NONE
        if self.collection_settings is not None and (request.rerank is None or not asked_depth):
            version = await self.cache.current_version(tenant, request.collection)
            own = await self.collection_settings.get(tenant, request.collection, version)
        if request.rerank is not None:
            rerank = request.rerank
        elif own.rerank is not None:
            rerank = own.rerank
            if rerank and self.reranker is None:  # the deployment lost its reranker since it was set
                raise RerankUnavailable(
                    f"collection {request.collection!r} reranks by default, but no reranker is "
                    "configured (RAGFLEET_RETRIEVAL_RERANK_URL); send rerank: false to search without"
                )
        else:
            rerank = self.rerank_by_default
        if rerank and self.reranker is None:
            raise BadRequest(
                "rerank was asked for, but no reranker is configured (RAGFLEET_RETRIEVAL_RERANK_URL)"
            )
        depth = request.rerank_depth if asked_depth or own.rerank_depth is None else own.rerank_depth
        return request.model_copy(update={"rerank": rerank, "rerank_depth": depth})

    async def _search_semantic(
        self,
        tenant: str,
        request: SearchRequest,
        text: str,
        key: dict[str, Any],
        within_s: float | None = None,
    ) -> tuple[bytes, bool]:
        """An exact-cache miss with a query text: reuse the answer of a question close enough in
        meaning, in the same scope (tenant, collection, its version, every other parameter)."""
        assert self.semantic is not None
        if self.models is not None:
            await self.models.check_query(tenant, request.collection, self.model)
        vector = await self.embed_query(tenant, text, within_s)
        version = await self.cache.current_version(tenant, request.collection)
        self.semantic.drop_older(tenant, request.collection, version)
        scope = (tenant, request.collection, version, request_hash({**key, "q": None}))
        found = self.semantic.lookup(scope, vector)
        # The close question's answer only if a tier still holds it: this request holds its own
        # key's single-flight, and waiting for the other key's (get_or_compute) deadlocked two
        # paraphrases asked at once, each waiting for the other — and then every later question
        # near either of them (seen under load: vector and hybrid search hung, bm25 answered).
        body = await self.results.peek(tenant, request.collection, found.request) if found else None
        if body is not None:
            if self.semantic.should_verify():
                self._background.start(self._verify(tenant, request, text, body))
            return body, True
        body = await self._search_uncached(tenant, request, text, within_s)
        self.semantic.add(scope, vector, key)
        await self.cache.publish(self.semantic.channel, self.semantic.share(scope, vector, key))
        return body, False

    async def _verify(self, tenant: str, request: SearchRequest, text: str, served: bytes) -> None:
        """Count a false hit when the real answer's first document is not the one served."""
        assert self.semantic is not None
        try:
            real = orjson.loads(await self._search_uncached(tenant, request, text))["results"]
        except Exception:  # a check must never hurt: the request was answered already
            return
        given = orjson.loads(served)["results"]
        first = lambda results: results[0]["document_id"] if results else None  # noqa: E731
        self.semantic.record_check(first(real) == first(given))

    async def _search_uncached(
        self,
        tenant: str,
        request: SearchRequest,
        text: str | None,
        within_s: float | None = None,
        *,
        degraded: str | None = None,
    ) -> bytes:
        """The answer from the store; ``degraded``: why it is less than was asked (in the body)."""
        top_k = request.top_k
        filters = parse_filters(request.filters)
        vector: Any = request.vector
        # Before embedding a text, which is the costly part; a search of a given vector finds
        # out by itself (the store raises CollectionNotFound).
        if vector is None and not await self.store.collection_exists(tenant, request.collection):
            raise CollectionNotFound(f"collection {request.collection!r} does not exist")
        if request.mode != "bm25" and self.models is not None and vector is None:
            await self.models.check_query(tenant, request.collection, self.model)
        if vector is None and request.mode != "bm25":
            assert text is not None  # the schema requires a query when there is no vector
            vector = await self.embed_query(tenant, text, within_s)
        rerank = bool(request.rerank)  # decided by `_resolve_rerank`
        if rerank:  # rank more than asked, rerank the top, return top_k of those
            request = request.model_copy(update={"top_k": max(request.top_k, request.rerank_depth)})
        if request.rank == "document":
            hits = await self._rank_documents(tenant, request, text, vector, filters)
        else:
            query = SearchQuery(
                text=text,
                vector=vector,
                mode=request.mode,
                top_k=request.top_k,
                alpha=request.alpha,
                fusion=request.fusion,
                filters=filters,
            )
            hits = await self.store.search(tenant, request.collection, query)
        if rerank and self.reranker is not None and text is not None:
            hits = (await self.reranker.rerank(text, hits, request.rerank_depth))[:top_k]
        answer = {
            "results": [_result(hit) for hit in hits],
            "mode": request.mode,
            "collection": request.collection,
            # The question these results answer: on a semantic hit, the earlier one's, which is
            # how a caller (the gateway's chat cache) knows which question it was matched to.
            "query": text,
        }
        if degraded is not None:
            answer["degraded"] = degraded
        return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)

    async def _rank_documents(
        self, tenant: str, request: SearchRequest, text: str | None, vector: Any, filters: Any
    ) -> list[Hit]:
        """Vector and BM25 candidates ranked by document (see `ranking`)."""
        depth = max(CANDIDATES, request.top_k * 2)
        modes: list[SearchMode] = [mode for mode in ("vector", "bm25") if request.mode in (mode, "hybrid")]
        queries = [
            SearchQuery(text=text, vector=vector, mode=mode, top_k=depth, filters=filters) for mode in modes
        ]
        # The candidate lists and their documents' centroids in one store call (one trip to the
        # embedded store's thread pool, not one per list and one for the centroids), as arrays.
        candidates = await self.store.document_candidates(
            tenant,
            request.collection,
            queries,
            centroids=vector is not None and request.centroid_weight > 0,
        )
        alpha = {"vector": 1.0, "bm25": 0.0}.get(request.mode, request.alpha)
        similarity: dict[str, float] = {}
        centroid_similarity = None
        query_vector = None
        if vector is not None:
            query_vector = np.asarray(vector, dtype=np.float32)
            query_vector = query_vector / max(float(np.linalg.norm(query_vector)), 1e-12)
        if query_vector is not None and candidates.centroids is not None:
            # One matrix-vector product for every candidate document's centroid.
            centroid_similarity = (candidates.centroids @ query_vector).astype(np.float64)
        if query_vector is not None and request.title_weight > 0:
            titles = sorted(t for t in {m.get("title") for m in candidates.metadata} if isinstance(t, str))
            if titles:
                title_vectors = await self.embed_titles(tenant, titles)
                similarity = {t: float(query_vector @ v) for t, v in zip(titles, title_vectors, strict=True)}
        return rank_documents(
            candidates,
            weights=[alpha if mode == "vector" else 1.0 - alpha for mode in modes],
            fusion=request.fusion,
            title_similarity=similarity,
            title_weight=request.title_weight,
            top_k=request.top_k,
            per_document=request.per_document,
            centroid_similarity=centroid_similarity,
            centroid_weight=request.centroid_weight,
        )


def decode_vector(value: list[float] | str) -> np.ndarray:
    """A query vector from either form the API takes: a JSON list, or base64 of float32 bytes."""
    if not isinstance(value, str):
        return np.asarray(value, dtype=np.float32)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(
            "vector: a string must be base64 of little-endian float32 bytes (or send a JSON list)"
        ) from None
    if len(raw) % 4:
        raise BadRequest(f"vector: {len(raw)} bytes is not a whole number of float32 values")
    vector = np.frombuffer(raw, dtype="<f4")
    if not np.isfinite(vector).all():
        raise BadRequest("vector: holds NaN or infinity")
    return vector.astype(np.float32, copy=False)


def _result(hit: Hit) -> dict[str, Any]:
    return {
        "id": hit.id,
        "document_id": hit.document_id,
        "text": hit.text,
        "score": round(float(hit.score), 6),
        # Keys starting with "_" (the content hash ingestion keeps for idempotence) are internal.
        "metadata": {k: v for k, v in hit.metadata.items() if not k.startswith("_")},
    }
