"""Ready bytes of a cached search answer: the JSON and the gzip form spliced with a fresh took_ms."""

from __future__ import annotations

import gzip
import zlib

import orjson
import pytest

from ragfleet.gateway.routers.search import encoded_answer
from ragfleet.gateway.search_answers import EdgeAnswer, body_alias

BODY = orjson.dumps(
    {"results": [{"id": f"c{i}", "text": "purring cats " * 40} for i in range(5)], "mode": "hybrid"}
)


@pytest.mark.parametrize("body", [BODY, b"{}", b'{"a":1}'])
def test_the_spliced_gzip_decodes_to_the_json_with_took_ms(body: bytes) -> None:
    answer = EdgeAnswer("docs", body)
    for took_ms in (0.0123, 12345.678):  # the compressed part is made once and reused
        zipped = answer.gzip(took_ms)
        assert gzip.decompress(zipped) == answer.json(took_ms)
        # Streaming decoders (urllib3, browsers) read it the same way.
        assert zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(zipped) == answer.json(took_ms)
        assert orjson.loads(answer.json(took_ms))["took_ms"] == round(took_ms, 3)


def test_gzip_only_when_accepted_and_worth_it() -> None:
    answer = EdgeAnswer("docs", BODY)
    assert encoded_answer(answer, 1.0, "gzip, deflate, br", 1400)[1] is True
    assert encoded_answer(answer, 1.0, "identity", 1400)[1] is False
    assert encoded_answer(answer, 1.0, "gzip", 0)[1] is False  # turned off
    assert encoded_answer(EdgeAnswer("docs", b'{"results":[]}'), 1.0, "gzip", 1400)[1] is False
    assert len(encoded_answer(answer, 1.0, "gzip", 1400)[0]) < len(BODY) / 3


def test_aliases_are_the_exact_bytes() -> None:
    assert body_alias(b'{"query":"a"}') == body_alias(b'{"query":"a"}')
    assert body_alias(b'{"query":"a"}') != body_alias(b'{"query": "a"}')
