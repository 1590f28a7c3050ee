from __future__ import annotations

import asyncio

import orjson

from ragfleet.llm_proxy.providers.extractive import (
    NO_CONTEXT_ANSWER,
    NO_MATCH_ANSWER,
    ExtractiveProvider,
    answer,
    distinct_sources,
    parse_sources,
)
from ragfleet.llm_proxy.schemas import ChatCompletionRequest

CONTEXT = """Use the sources below.
<source id="1" document_id="doc-123" chunk_id="doc-123:0">
Redis keeps the cache's second tier. Bananas are rich in potassium.
</source>
<source id="2" document_id="doc-456" chunk_id="doc-456:3">
The circuit breaker opens after five failures in thirty seconds! A half-open breaker sends one probe.
</source>"""


def request(question: str, context: str = CONTEXT, **extra: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {
            "model": "extractive",
            "messages": [{"role": "system", "content": context}, {"role": "user", "content": question}],
            **extra,
        }
    )


def test_sources_are_parsed_with_their_attributes() -> None:
    sources = parse_sources(CONTEXT)
    assert [(s.id, s.document_id, s.chunk_id) for s in sources] == [
        ("1", "doc-123", "doc-123:0"),
        ("2", "doc-456", "doc-456:3"),
    ]
    assert sources[0].text.startswith("Redis keeps")


def test_the_most_relevant_sentences_are_stitched_with_citations() -> None:
    assert answer(request("When does the circuit breaker open?")).startswith(
        "The circuit breaker opens after five failures in thirty seconds [2]!"
    )
    assert answer(request("Where does the cache keep its second tier?")) == (
        "Redis keeps the cache's second tier [1]."
    )


def test_no_sources_and_no_match_say_so() -> None:
    assert answer(request("anything?", context="no sources here")) == NO_CONTEXT_ANSWER
    assert answer(request("quantum chromodynamics")) == NO_MATCH_ANSWER


def test_context_in_the_user_message_is_not_part_of_the_question() -> None:
    req = ChatCompletionRequest.model_validate(
        {"model": "extractive", "messages": [{"role": "user", "content": f"{CONTEXT}\nWhat is in bananas?"}]}
    )
    assert answer(req) == "Bananas are rich in potassium [1]."


def test_it_streams_word_by_word_with_usage_and_matches_the_json_answer() -> None:
    provider = ExtractiveProvider("extractive")
    req = request("What does a half-open breaker send?", stream=True)

    async def collect() -> list[dict[str, object]]:
        body = req.upstream_body("extractive", None)
        return [orjson.loads(chunk.data) async for batch in provider.stream(req, body) for chunk in batch]

    chunks = asyncio.run(collect())
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}  # type: ignore[index]
    words = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]  # type: ignore[index]
    assert "".join(words) == "A half-open breaker sends one probe [2]."
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"  # type: ignore[index]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0  # type: ignore[index]
    completion = asyncio.run(provider.complete(req, {}))
    assert completion["choices"][0]["message"]["content"] == "".join(words)


def test_max_tokens_cuts_the_answer_with_finish_reason_length() -> None:
    completion = asyncio.run(ExtractiveProvider("extractive").complete(request("breaker?", max_tokens=3), {}))
    assert completion["choices"][0]["finish_reason"] == "length"
    assert len(completion["choices"][0]["message"]["content"].split()) == 3


DUPLICATED = """<source id="1" document_id="a.md" chunk_id="a.md:0">
The breaker opens after five failures in thirty seconds. It stays open for ten seconds.
</source>
<source id="2" document_id="b.md" chunk_id="b.md:2">
Setup notes. The breaker opens after five failures in 30 seconds! Then one probe is sent.
</source>
<source id="3" document_id="a-copy.md" chunk_id="a-copy.md:0">
The breaker opens after five failures in thirty seconds. It stays open for ten seconds.
</source>"""


def test_a_sentence_found_in_two_sources_is_said_once() -> None:
    text = answer(request("When does the breaker open after failures?", DUPLICATED))
    assert text.count("breaker opens after five failures") == 1, text
    assert text.startswith("The breaker opens after five failures in thirty seconds [1].")


def test_a_source_that_copies_an_earlier_one_is_dropped() -> None:
    sources = distinct_sources(parse_sources(DUPLICATED))
    assert [s.document_id for s in sources] == ["a.md", "b.md"]
    assert "[3]" not in answer(request("How long does it stay open?", DUPLICATED))
