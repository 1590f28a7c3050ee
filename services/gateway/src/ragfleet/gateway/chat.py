"""RAG chat: retrieve context and load the conversation in parallel, build the prompt, stream the answer.

``generate`` yields the events of one answer (``sources``, ``token``…, ``done`` or ``error``);
JSON answers collect them, streamed answers write them to the Redis stream buffer from a task
of their own (see ``streams.py``) that outlives the client's connection.

A streamed turn is kept in its stream's meta (the validated request, the key's principal, the
session), so when the replica generating it dies, a reader on another replica can claim the
stream and generate the answer again (``take_over``): it appends ``restart`` (clients drop the
partial answer they built) and then the usual events, at most ``stream_max_takeovers`` times.
"""

from __future__ import annotations

import asyncio
import html
import logging
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import orjson
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from ragfleet.common.contracts import CollectionName, SearchMode
from ragfleet.common.errors import NotFound, PayloadTooLarge, RagfleetError
from ragfleet.gateway.chat_cache import ChatAnswerCache
from ragfleet.gateway.config import GatewaySettings
from ragfleet.gateway.downstream import Downstream
from ragfleet.gateway.keys import Principal
from ragfleet.gateway.memory import ConversationStore, check_session_id, session_owner
from ragfleet.gateway.search_answers import SearchAnswers
from ragfleet.gateway.stats import GatewayStats
from ragfleet.gateway.streams import Claim, StreamBuffer, StreamEvent

log = logging.getLogger("ragfleet.gateway.chat")


class ChatRequest(BaseModel):
    message: str = Field(min_length=1, description="the user's message")
    session_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,128}$",
        description="continue a conversation: the id an earlier answer of this key gave; a new one "
        "when absent (ids the server did not hand out are refused with 404)",
    )
    collection: CollectionName = "default"
    top_k: int | None = Field(None, ge=1, le=50, description="passages retrieved as context")
    mode: SearchMode = "hybrid"
    system_prompt: str | None = Field(
        None, max_length=8000, description="sets the conversation's system prompt (kept for later turns)"
    )
    model: str | None = Field(None, description="llm-proxy model; the gateway's default when absent")
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=32_768)


class Source(BaseModel):
    id: str
    document_id: str
    chunk_id: str
    score: float
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class ChatAnswer(BaseModel):
    session_id: str
    answer: str
    sources: list[Source]
    model: str
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    cache: str = Field(
        "miss",
        description="miss, hit-l1 / hit-l2 (this question was answered before), or hit-semantic (a "
        "question close in meaning was); also the X-Cache header",
    )


def format_sources(sources: list[dict[str, Any]]) -> str:
    """Passages in the convention llm-proxy's ``extractive`` model reads (docs/internal-contracts.md)."""
    blocks = []
    for source in sources:
        text = source["text"].replace("</source>", "</ source>")
        blocks.append(
            f'<source id="{source["id"]}" document_id="{html.escape(source["document_id"], quote=True)}" '
            f'chunk_id="{html.escape(source["chunk_id"], quote=True)}">\n{text}\n</source>'
        )
    return "\n".join(blocks)


class ChatService:
    def __init__(
        self,
        settings: GatewaySettings,
        downstream: Downstream,
        answers: SearchAnswers,
        memory: ConversationStore,
        buffer: StreamBuffer,
        stats: GatewayStats,
        answer_cache: ChatAnswerCache | None = None,
    ) -> None:
        self.settings = settings
        self.downstream = downstream
        self.answers = answers
        self.memory = memory
        self.buffer = buffer
        self.stats = stats
        self.answer_cache = answer_cache
        self.generations: set[asyncio.Task[None]] = set()

    def check_message(self, request: ChatRequest) -> None:
        limit = self.settings.max_message_chars
        if len(request.message) > limit:
            raise PayloadTooLarge(
                f"message is longer than the limit of {limit} characters", details={"limit_chars": limit}
            )

    def _search_payload(self, request: ChatRequest) -> dict[str, Any]:
        return {
            "query": request.message,
            "collection": request.collection,
            "top_k": request.top_k or self.settings.chat_top_k,
            "mode": request.mode,
        }

    async def _retrieve(
        self, principal: Principal, request: ChatRequest
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The sources, and the question retrieval answered (an earlier one on a semantic hit)."""
        # Through the search cache's edge tier: a question asked again is answered from this
        # replica's memory, even while retrieval is unavailable.
        content, cache = await self.answers.search(principal, self._search_payload(request))
        self.stats.count_search_cache(cache)
        body = orjson.loads(content)
        results = body.get("results", [])
        matched = body.get("query")
        return [
            {
                "id": str(position),
                "document_id": str(hit.get("document_id", "")),
                "chunk_id": str(hit.get("id", "")),
                "score": float(hit.get("score", 0.0)),
                "text": str(hit.get("text", "")),
                "metadata": hit.get("metadata") or {},
            }
            for position, hit in enumerate(results, start=1)
        ], matched if isinstance(matched, str) else None

    async def _first_source_of(self, principal: Principal, request: ChatRequest) -> str | None:
        """The first document retrieval finds for the message itself (no semantic cache)."""
        content, _ = await self.answers.search(
            principal, {**self._search_payload(request), "semantic": False}
        )
        results = orjson.loads(content).get("results", [])
        return str(results[0].get("document_id")) if results else None

    async def generate(
        self, principal: Principal, request: ChatRequest, session_id: str, stream_id: str | None = None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        principal.require_collection(request.collection)
        self.check_message(request)
        check_session_id(session_id)
        cache = self.answer_cache
        # Read before retrieving: a write after it leaves this answer under the old version.
        version = await cache.version(principal.tenant, request.collection) if cache else None
        (sources, matched), conversation = await asyncio.gather(
            self._retrieve(principal, request), self.memory.load(session_owner(principal), session_id)
        )
        yield "sources", {"session_id": session_id, "sources": sources}

        system_prompt = (
            request.system_prompt or conversation.system_prompt or self.settings.default_system_prompt
        )
        system = f"{system_prompt}\n\n{format_sources(sources)}" if sources else system_prompt
        model = request.model or self.settings.chat_model
        payload: dict[str, Any] = {
            "model": model,
            "messages": [
                {"role": "system", "content": system},
                *conversation.history(),
                {"role": "user", "content": request.message},
            ],
        }
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.max_tokens is not None:
            payload["max_tokens"] = request.max_tokens

        key = None
        cached: dict[str, Any] | None = None
        tier = "miss"
        # Only a first turn: a later one's answer depends on the conversation before it.
        if cache is not None and version is not None and matched is not None and not conversation.history():
            shape = {k: v for k, v in payload.items() if k != "messages"}
            shape |= {"system": system_prompt, "top_k": request.top_k or self.settings.chat_top_k}
            shape["mode"] = request.mode
            key = cache.key(principal.tenant, request.collection, version, matched, shape)
            cached, tier = await cache.lookup(
                key, principal.tenant, request.collection, asked=request.message, matched=matched
            )
        parts: list[str] = []
        finish_reason: str | None = None
        usage: dict[str, Any] | None = None
        if cached is not None:
            assert cache is not None
            finish_reason = cached.get("finish_reason")
            parts.append(str(cached.get("answer", "")))
            yield "token", {"text": parts[0]}
            if tier == "hit-semantic":
                first = sources[0]["document_id"] if sources else None
                cache.maybe_verify(first, lambda: self._first_source_of(principal, request))
        else:
            async for chunk in self.downstream.chat_completion_stream(principal, payload):
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        parts.append(text)
                        yield "token", {"text": text}
                    finish_reason = choice.get("finish_reason") or finish_reason
        answer = "".join(parts)
        if cache is not None and key is not None and cached is None and finish_reason == "stop":
            # Complete answers only: one cut short by max_tokens or an error is not the answer.
            await cache.store(
                key, principal.tenant, request.collection, {"answer": answer, "finish_reason": finish_reason}
            )
        if stream_id is None or await self._remember_once(stream_id):
            await self.memory.append(
                session_owner(principal),
                session_id,
                [{"role": "user", "content": request.message}, {"role": "assistant", "content": answer}],
                system_prompt=request.system_prompt,
            )
        yield (
            "done",
            {
                "session_id": session_id,
                "answer": answer,
                "model": model,
                "finish_reason": finish_reason,
                "usage": usage,
                "cache": tier,
            },
        )

    async def session_for(self, principal: Principal, request: ChatRequest) -> str:
        """The turn's session: a new server-made id, or the client's if the server gave it to this key.

        A client-chosen id is refused rather than adopted: adopting one would let a caller plant a
        conversation under an id someone else will use, or probe which ids exist.
        """
        if request.session_id is None:
            return uuid.uuid4().hex
        session_id = check_session_id(request.session_id)
        if not await self.memory.exists(session_owner(principal), session_id):
            raise NotFound(
                f"session {session_id} does not exist or has expired: send the message without "
                "session_id to start a new conversation",
                code="session_not_found",
            )
        return session_id

    async def answer(self, principal: Principal, request: ChatRequest) -> ChatAnswer:
        principal.require_collection(request.collection)
        session_id = await self.session_for(principal, request)
        sources: list[dict[str, Any]] = []
        done: dict[str, Any] = {}
        async for event, data in self.generate(principal, request, session_id):
            if event == "sources":
                sources = data["sources"]
            elif event == "done":
                done = data
        return ChatAnswer(
            session_id=session_id,
            answer=done["answer"],
            sources=[Source(**s) for s in sources],
            model=done["model"],
            finish_reason=done["finish_reason"],
            usage=done["usage"],
            cache=done["cache"],
        )

    async def _remember_once(self, stream_id: str) -> bool:
        # A generator may die between recording the turn and appending ``done``: the takeover
        # that finishes the answer then must not record the turn a second time.
        try:
            return await self.buffer.remember_once(stream_id)
        except (RedisError, OSError):
            return True  # the memory write is best effort and will say why it failed

    async def start_stream(self, principal: Principal, request: ChatRequest) -> tuple[str, str]:
        """Start generating into a new stream buffer; returns (stream id, session id) at once."""
        principal.require_collection(request.collection)
        self.check_message(request)
        session_id = await self.session_for(principal, request)
        stream_id = uuid.uuid4().hex
        token = await self.buffer.open(
            stream_id,
            {
                "tenant": principal.tenant,
                "key_id": principal.key_id,
                "session_id": session_id,
                # What a takeover needs to run this turn again: no key, only what it may do.
                "principal": principal.to_json().decode(),
                "request": request.model_dump_json(exclude_none=True),
            },
        )
        self._spawn(self._write_stream(stream_id, token, principal, request, session_id))
        return stream_id, session_id

    def _spawn(self, generation: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(generation)
        # The set keeps the task referenced (and lets shutdown wait for it) — the client may leave.
        self.generations.add(task)
        task.add_done_callback(self.generations.discard)

    async def take_over(self, claim: Claim) -> bool:
        """Generate a claimed stream's answer again on this replica; False when it may not."""
        if claim.attempt > self.settings.stream_max_takeovers:
            return False
        try:
            meta = await self.buffer.meta(claim.stream_id)
            principal = Principal.from_json(meta["principal"])
            request = ChatRequest.model_validate_json(meta["request"])
            session_id = meta["session_id"]
        except (KeyError, ValueError):
            return False  # a stream opened without its turn (or whose meta expired)
        log.info(
            "taking over a stream whose generator is gone",
            extra={"stream_id": claim.stream_id, "attempt": claim.attempt},
        )
        self.stats.stream_takeovers += 1
        self._spawn(
            self._write_stream(
                claim.stream_id, claim.token, principal, request, session_id, restarted_after=claim
            )
        )
        return True

    async def _write_stream(
        self,
        stream_id: str,
        token: str,
        principal: Principal,
        request: ChatRequest,
        session_id: str,
        restarted_after: Claim | None = None,
    ) -> None:
        self.stats.active_generations += 1
        lease = asyncio.create_task(self.buffer.keep_lease(stream_id, token))
        seq = restarted_after.last_seq if restarted_after else 0

        async def write(event: str, data: dict[str, Any]) -> bool:
            nonlocal seq
            seq += 1
            return await self.buffer.append(StreamEvent(stream_id, seq, event, data), token)

        try:
            if restarted_after and not await write(
                "restart", {"reason": "generator_lost", "attempt": restarted_after.attempt}
            ):
                return
            try:
                async for event, data in self.generate(principal, request, session_id, stream_id):
                    if event == "sources":
                        data = {"stream_id": stream_id, **data}
                    if not await write(event, data):
                        # The lease is someone else's now: they write this stream, not us.
                        log.warning("stream lease lost, generation stopped", extra={"stream_id": stream_id})
                        return
            except RagfleetError as exc:
                await write("error", {"code": exc.code, "message": exc.message, "status": exc.status_code})
            except Exception:
                log.exception("chat generation failed", extra={"stream_id": stream_id})
                await write(
                    "error",
                    {
                        "code": "internal_error",
                        "message": "the answer failed; send the message again",
                        "status": 500,
                    },
                )
        except Exception:
            # Redis itself is gone: readers will see the lease expire and take the stream over.
            log.exception("cannot write to the stream buffer", extra={"stream_id": stream_id})
        finally:
            lease.cancel()
            self.stats.active_generations -= 1

    async def drain(self, timeout_s: float) -> None:
        """On shutdown, let answers being generated finish (their clients may resume elsewhere)."""
        if self.generations:
            await asyncio.wait(set(self.generations), timeout=timeout_s)
