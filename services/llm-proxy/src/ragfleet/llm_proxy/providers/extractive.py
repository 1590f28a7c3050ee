"""``extractive``: answers from the supplied context with no model at all.

It reads the passages the gateway puts in the messages (``<source id=.. document_id=.. chunk_id=..>``
blocks, see docs/internal-contracts.md), scores every sentence against the last user message with
BM25, and stitches the best few into an answer that cites its sources as ``[n]``. It is
deterministic and needs no network, so the whole suite runs end to end on a machine with no LLM.
It streams word by word, the way a model does, and reports token usage (counted as words and
punctuation marks, an approximation of a real tokenizer).
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from ragfleet.common.text import tokenize
from ragfleet.llm_proxy.providers.base import Chunk, UpstreamFailure
from ragfleet.llm_proxy.schemas import ChatCompletionRequest

NO_CONTEXT_ANSWER = "I have no context to answer from: no sources were provided with the question."
NO_MATCH_ANSWER = "None of the provided sources says anything about this question."
MAX_SENTENCES = 3
# A sentence far below the best one shares a common word with the question, not its subject.
RELATIVE_CUTOFF = 0.5
NEAR_DUPLICATE = 0.8

_SOURCE = re.compile(r"<source\b([^>]*)>(.*?)</source>", re.DOTALL | re.IGNORECASE)
_ATTRIBUTE = re.compile(r'(\w+)\s*=\s*"([^"]*)"')
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")
_TOKEN = re.compile(r"\w+|[^\w\s]")
BM25_K1 = 1.2
BM25_B = 0.75


@dataclass(frozen=True)
class Source:
    id: str
    document_id: str | None
    chunk_id: str | None
    text: str


@dataclass(frozen=True)
class Sentence:
    source_id: str
    order: int  # position in the context, to break score ties deterministically
    text: str
    terms: tuple[str, ...]


def parse_sources(text: str) -> list[Source]:
    sources: list[Source] = []
    for attributes, body in _SOURCE.findall(text):
        attrs = dict(_ATTRIBUTE.findall(attributes))
        source_id = attrs.get("id") or str(len(sources) + 1)
        sources.append(Source(source_id, attrs.get("document_id"), attrs.get("chunk_id"), body.strip()))
    return sources


def terms(text: str) -> tuple[str, ...]:
    """The shared tokenizer's words, with a light plural strip so 'caches' meets 'cache' (sentences
    are short, so this helps recall more than it costs precision; the search index does not stem)."""
    return tuple(
        word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word
        for word in tokenize(text)
    )


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def split_sentences(sources: list[Source]) -> list[Sentence]:
    sentences: list[Sentence] = []
    for source in sources:
        for piece in _SENTENCE_END.split(source.text):
            piece = " ".join(piece.split())
            if piece:
                sentences.append(Sentence(source.id, len(sentences), piece, terms(piece)))
    return sentences


def near_duplicate(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Whether two texts say the same thing: the same passage indexed twice, or quoted in two
    documents, differs by a word, a number written out or a punctuation mark. Measured as the share
    of the smaller text's words that the other one holds (so a copy with a few words added counts
    too); texts of fewer than three words must match exactly."""
    left, right = set(a), set(b)
    if min(len(left), len(right)) < 3:
        return left == right
    return len(left & right) / min(len(left), len(right)) >= NEAR_DUPLICATE


def distinct_sources(sources: list[Source]) -> list[Source]:
    """The sources minus near-copies of an earlier one (the first keeps its citation number)."""
    kept: list[tuple[Source, tuple[str, ...]]] = []
    for source in sources:
        source_terms = terms(source.text)
        if not any(near_duplicate(source_terms, other) for _, other in kept):
            kept.append((source, source_terms))
    return [source for source, _ in kept]


def rank_sentences(query: str, sentences: list[Sentence]) -> list[tuple[float, Sentence]]:
    """BM25 with sentences as the documents; only sentences sharing a term with the query score."""
    query_terms = set(terms(query))
    if not query_terms or not sentences:
        return []
    average_length = sum(len(s.terms) for s in sentences) / len(sentences) or 1.0
    document_frequency: Counter[str] = Counter()
    for sentence in sentences:
        document_frequency.update(set(sentence.terms) & query_terms)
    scored = []
    for sentence in sentences:
        frequencies = Counter(sentence.terms)
        length_norm = BM25_K1 * (1 - BM25_B + BM25_B * len(sentence.terms) / average_length)
        score = 0.0
        for term in query_terms:
            tf = frequencies.get(term, 0)
            if tf:
                df = document_frequency[term]
                idf = math.log(1 + (len(sentences) - df + 0.5) / (df + 0.5))
                score += idf * tf * (BM25_K1 + 1) / (tf + length_norm)
        if score > 0:
            scored.append((score, sentence))
    scored.sort(key=lambda item: (-item[0], item[1].order))
    return scored


def _cite(sentence: Sentence) -> str:
    """Put the citation before the sentence's final punctuation: 'Paris is the capital [1].'"""
    text = sentence.text
    if text[-1] in ".!?":
        return f"{text[:-1]} [{sentence.source_id}]{text[-1]}"
    return f"{text} [{sentence.source_id}]"


def answer(request: ChatCompletionRequest) -> str:
    context = "\n".join(m.text() for m in request.messages if m.role in ("system", "developer", "user"))
    sources = distinct_sources(parse_sources(context))
    if not sources:
        return NO_CONTEXT_ANSWER
    question = next((m.text() for m in reversed(request.messages) if m.role == "user"), "")
    question = _SOURCE.sub(" ", question)  # when the context travels in the user message itself
    ranked = rank_sentences(question, split_sentences(sources))
    if not ranked:
        return NO_MATCH_ANSWER
    best: list[Sentence] = []
    for score, sentence in ranked:
        if len(best) == MAX_SENTENCES or score < RELATIVE_CUTOFF * ranked[0][0]:
            break
        # The same sentence from a second source (or a near-copy) adds nothing to the answer.
        if not any(near_duplicate(sentence.terms, chosen.terms) for chosen in best):
            best.append(sentence)
    return " ".join(_cite(sentence) for sentence in best)


def _words(text: str) -> Iterator[str]:
    """The answer as stream pieces: each word with the space before it, as models stream them."""
    for index, word in enumerate(text.split(" ")):
        yield word if index == 0 else " " + word


class ExtractiveProvider:
    uses_breaker = False  # it runs in-process and cannot be down

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name

    def _generate(self, request: ChatCompletionRequest) -> tuple[list[str], str, dict[str, int]]:
        if (request.n or 1) != 1:
            raise UpstreamFailure(
                "http_400", "extractive answers with one choice (n=1)", retryable=False, status=400
            )
        pieces = list(_words(answer(request)))
        finish_reason = "stop"
        limit = request.completion_limit
        if limit is not None and len(pieces) > limit:
            pieces, finish_reason = pieces[:limit], "length"
        prompt_tokens = sum(count_tokens(m.text()) for m in request.messages)
        completion_tokens = sum(count_tokens(p) for p in pieces)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        return pieces, finish_reason, usage

    async def complete(self, request: ChatCompletionRequest, body: dict[str, Any]) -> dict[str, Any]:
        pieces, finish_reason, usage = self._generate(request)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(pieces)},
                    "finish_reason": finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": usage,
        }

    async def stream(
        self, request: ChatCompletionRequest, body: dict[str, Any]
    ) -> AsyncIterator[list[Chunk]]:
        pieces, finish_reason, usage = self._generate(request)
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model_name,
        }

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> Chunk:
            parsed = {**base, "choices": choices, **extra}
            return Chunk(orjson.dumps(parsed).decode(), parsed)

        # The whole answer is known at once: one batch (one write to the client), word by word.
        batch = [chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
        batch += [chunk([{"index": 0, "delta": {"content": p}, "finish_reason": None}]) for p in pieces]
        batch.append(chunk([{"index": 0, "delta": {}, "finish_reason": finish_reason}]))
        if (body.get("stream_options") or {}).get("include_usage"):
            batch.append(chunk([], usage=usage))
        yield batch

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        raise UpstreamFailure(
            "http_400", f"model {self.model_name!r} does not serve embeddings", retryable=False, status=400
        )
