from __future__ import annotations

from ragfleet.llm_proxy.response_cache import cache_policy, cache_request
from ragfleet.llm_proxy.schemas import ChatCompletionRequest


def request(**extra: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}
    )


def test_only_deterministic_requests_are_cached() -> None:
    assert cache_policy({}, request(temperature=0), True).used
    assert cache_policy({}, request(seed=3, temperature=1), True).used
    assert not cache_policy({}, request(), True).used
    assert not cache_policy({}, request(temperature=0, n=2), True).used
    assert not cache_policy({}, request(temperature=0), False).used


def test_cache_control() -> None:
    no_cache = cache_policy({"cache-control": "no-cache"}, request(temperature=0), True)
    assert (no_cache.read, no_cache.write) == (False, True)
    no_store = cache_policy({"cache-control": "max-age=0, no-store"}, request(temperature=0), True)
    assert not no_store.used


def test_the_key_ignores_what_does_not_shape_the_answer() -> None:
    assert cache_request(request(temperature=0, user="a")) == cache_request(request(temperature=0, user="b"))
    assert cache_request(request(temperature=0)) != cache_request(request(temperature=0, stream=True))
