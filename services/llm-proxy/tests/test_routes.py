"""The proxy end to end: a real proxy process, a real Redis, the scripted fake upstream on loopback."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("clean")]

CONTEXT = (
    '<source id="1" document_id="doc-1" chunk_id="doc-1:0">The breaker opens after repeated failures. '
    "Bananas are yellow.</source>\n"
    '<source id="2" document_id="doc-2" chunk_id="doc-2:0">A half-open breaker lets one probe through.</source>'
)


def content_of(events: list[str]) -> str:
    text = []
    for event in events:
        if event == "[DONE]":
            continue
        for choice in json.loads(event).get("choices", []):
            text.append(choice.get("delta", {}).get("content") or "")
    return "".join(text)


def test_openai_client_streams_through_the_proxy(proxy: Any) -> None:
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", max_retries=0)
    stream = client.chat.completions.create(
        model="plain",
        messages=[{"role": "user", "content": "stream me something"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The fake upstream answers every question the same way."
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 9

    completion = client.chat.completions.create(
        model="plain", messages=[{"role": "user", "content": "and once without streaming"}]
    )
    assert completion.choices[0].message.content == "The fake upstream answers every question the same way."
    assert [m.id for m in client.models.list()][:2] == ["plain", "storm"]


def test_openai_client_sees_our_errors(proxy: Any) -> None:
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", max_retries=0)
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert "no-such-model" in missing.value.message
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        client.chat.completions.create(model="plain", messages=[])
    assert "messages" in invalid.value.message


def test_extractive_answers_from_the_context_and_cites(proxy: Any) -> None:
    messages = [
        {"role": "system", "content": f"Answer from the sources.\n{CONTEXT}"},
        {"role": "user", "content": "What happens after repeated failures?"},
    ]
    response = proxy.http.post("/v1/chat/completions", json={"model": "extractive", "messages": messages})
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "The breaker opens after repeated failures [1]."
    assert body["usage"]["completion_tokens"] > 0

    _, events = proxy.stream_events("extractive", "what is in there?")
    assert events[-1] == "[DONE]"
    assert content_of(events).startswith("I have no context to answer from")


def test_a_cached_stream_replays_the_same_chunk_sequence(proxy: Any, fake_upstream: Any) -> None:
    first, first_events = proxy.stream_events("plain", "cache this stream", temperature=0)
    assert first.headers["x-cache"] == "miss"
    second, second_events = proxy.stream_events("plain", "cache this stream", temperature=0)
    assert second.headers["x-cache"].startswith("hit")
    assert second_events == first_events  # ids, timestamps and chunk boundaries included
    assert len(fake_upstream.requests("plain-up")) == 1

    # Another tenant never sees it.
    other, _ = proxy.stream_events(
        "plain", "cache this stream", temperature=0, headers={"X-Ragfleet-Tenant": "t2"}
    )
    assert other.headers["x-cache"] == "miss"


def test_cache_control_and_non_deterministic_requests(proxy: Any, fake_upstream: Any) -> None:
    assert proxy.chat("plain", "cache rules", temperature=0).headers["x-cache"] == "miss"
    assert proxy.chat("plain", "cache rules", temperature=0).headers["x-cache"] == "hit-l1"
    no_cache = proxy.chat("plain", "cache rules", temperature=0, headers={"Cache-Control": "no-cache"})
    assert no_cache.headers["x-cache"] == "miss"
    no_store = proxy.chat("plain", "cache rules", temperature=0, headers={"Cache-Control": "no-store"})
    assert no_store.headers["x-cache"] == "bypass"
    assert proxy.chat("plain", "cache rules", temperature=0.7).headers["x-cache"] == "bypass"
    assert proxy.chat("plain", "cache rules", seed=7).headers["x-cache"] == "miss"
    assert len(fake_upstream.requests("plain-up")) == 5


def test_a_stream_cut_after_the_first_token_ends_with_an_error_event_and_is_not_cached(
    proxy: Any, fake_upstream: Any
) -> None:
    fake_upstream.script({"model": "plain-up", "drop_at": 4})
    response, events = proxy.stream_events("plain", "drop me", temperature=0)
    assert response.status_code == 200
    assert "[DONE]" not in events
    error = json.loads(events[-1])["error"]
    assert error["code"] == "upstream_stream_error"
    assert content_of(events[:-1]) == "The fake upstream"

    again, events = proxy.stream_events("plain", "drop me", temperature=0)
    assert again.headers["x-cache"] == "miss"  # the cut stream was never stored
    assert events[-1] == "[DONE]"

    # The openai client raises the error event.
    fake_upstream.script({"model": "plain-up", "drop_at": 4})
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", max_retries=0)
    stream = client.chat.completions.create(
        model="plain", messages=[{"role": "user", "content": "drop me again"}], stream=True
    )
    with pytest.raises(openai.APIError, match="the upstream stream failed"):
        for _ in stream:
            pass


def test_failures_before_the_first_token_are_retried(proxy: Any, fake_upstream: Any) -> None:
    fake_upstream.script(
        {"model": "flaky-up", "malformed_at": 0},
        {"model": "flaky-up", "drop_at": 0},
    )
    response, events = proxy.stream_events("flaky", "retry me")
    assert response.status_code == 200
    assert events[-1] == "[DONE]"
    assert len(fake_upstream.requests("flaky-up")) == 3
    for reason in ("malformed", "dropped"):
        assert proxy.metric("ragfleet_llm_proxy_retries_total", reason=reason) >= 1


def test_retry_after_is_honoured_and_a_client_error_is_not_retried(proxy: Any, fake_upstream: Any) -> None:
    fake_upstream.script({"model": "flaky-up", "status": 429, "retry_after": 0.3})
    response = proxy.chat("flaky", "slow down")
    assert response.status_code == 200
    sent = fake_upstream.requests("flaky-up")
    assert len(sent) == 2

    fake_upstream.script({"model": "flaky-up", "status": 400, "error_message": "context too long"})
    rejected = proxy.chat("flaky", "too long")
    assert rejected.status_code == 400
    assert rejected.json()["error"]["code"] == "upstream_rejected"
    assert "context too long" in rejected.json()["error"]["message"]
    assert len(fake_upstream.requests("flaky-up")) == 3


def test_no_first_token_in_time_falls_back(proxy: Any, fake_upstream: Any) -> None:
    fake_upstream.script({"model": "slow-up", "ttft_ms": 3000, "times": 3})
    response, events = proxy.stream_events("slow", "anyone there?")
    assert response.status_code == 200
    assert response.headers["x-ragfleet-served-by"] == "extractive"
    assert content_of(events).startswith("I have no context")


def test_a_stream_over_its_total_timeout_ends_with_an_error_event(proxy: Any, fake_upstream: Any) -> None:
    fake_upstream.script({"model": "tight-up", "token_interval_ms": 300})
    response, events = proxy.stream_events("tight", "take your time")
    assert response.status_code == 200
    assert "total timeout" in json.loads(events[-1])["error"]["message"]


def test_every_upstream_failing_is_a_clear_error(proxy: Any, fake_upstream: Any) -> None:
    fake_upstream.script({"model": "flaky-up", "status": 503, "times": 3})
    response = proxy.chat("flaky", "down")
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_error" and "503" in error["message"]
    assert error["request_id"] == response.headers["x-request-id"]


def test_a_client_disconnect_cancels_the_upstream_call(proxy: Any, fake_upstream: Any, wait_for: Any) -> None:
    fake_upstream.script({"model": "patient-up", "hang": True}, {"model": "patient-up", "hang": True})
    for stream in (True, False):
        body = {"model": "patient", "stream": stream, "messages": [{"role": "user", "content": "hang"}]}
        with pytest.raises(httpx.ReadTimeout):
            proxy.http.post("/v1/chat/completions", json=body, timeout=httpx.Timeout(5, read=0.5))
    # The upstream would wait 30 s for its first token; the proxy hung up on it as soon as we did.
    wait_for(
        lambda: [r["client_disconnected"] for r in fake_upstream.requests("patient-up")] == [True, True],
        timeout_s=10,
        what="the upstream calls cancelled",
    )


def test_max_tokens_is_capped_per_model(proxy: Any, fake_upstream: Any) -> None:
    proxy.chat("capped", "long answer please", max_tokens=500)
    proxy.chat("capped", "no limit given")
    sent = fake_upstream.requests("capped-up")
    assert [r["body"]["max_tokens"] for r in sent] == [5, 5]


def test_per_key_request_limit(proxy: Any) -> None:
    headers = {"X-Ragfleet-Key-Id": "tight"}
    statuses = [proxy.chat("extractive", f"q{i}", headers=headers).status_code for i in range(3)]
    assert statuses == [200, 200, 429]
    refused = proxy.chat("extractive", "q3", headers=headers)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limited"
    assert proxy.chat("extractive", "someone else", headers={"X-Ragfleet-Key-Id": "other"}).status_code == 200


def test_usage_is_accounted_per_key_and_model(proxy: Any, wait_for: Any) -> None:
    headers = {"X-Ragfleet-Key-Id": "acct"}
    proxy.chat("plain", "count my tokens", headers=headers)
    proxy.stream_events("plain", "count my stream", headers=headers)

    def accounted() -> bool:
        usage = proxy.http.get("/v1/usage", headers=headers).json()["models"].get("plain", {})
        return usage.get("requests") == 2

    wait_for(accounted, what="usage recorded")
    usage = proxy.http.get("/v1/usage", headers=headers).json()
    assert usage["key"] == "key:acct"
    assert usage["models"]["plain"]["completion_tokens"] == 18  # 9 words, twice


def test_overhead_header_and_embeddings_forwarded(proxy: Any) -> None:
    response = proxy.chat("plain", "overhead?")
    assert float(response.headers["x-proxy-overhead-ms"]) >= 0
    embedded = proxy.http.post("/v1/embeddings", json={"model": "plain", "input": ["a", "b"]})
    assert embedded.status_code == 200
    assert [d["index"] for d in embedded.json()["data"]] == [0, 1]


def test_builtin_embeddings_through_the_openai_client(proxy: Any) -> None:
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", max_retries=0)
    result = client.embeddings.create(model="all-minilm-l6-v2", input=["a cat", "a kitten", "tax law"])
    vectors = [item.embedding for item in result.data]
    assert [len(v) for v in vectors] == [384, 384, 384]

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert abs(cosine(vectors[0], vectors[0]) - 1) < 1e-4
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    single = proxy.http.post("/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": "a cat"}).json()
    assert abs(cosine(single["data"][0]["embedding"], vectors[0]) - 1) < 1e-3
