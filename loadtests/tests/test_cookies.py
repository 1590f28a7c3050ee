"""The cookie jar of the Locust users."""

from __future__ import annotations

from geventhttpclient.header import Headers

from ragfleet.loadtests.cookies import AffinityCookies


class _Message:
    def __init__(self, headers: Headers) -> None:
        self.headers = headers


def test_the_affinity_cookie_set_by_the_ingress_is_sent_back_and_attributes_are_not() -> None:
    jar = AffinityCookies()
    first = _Message(Headers())
    jar.add_cookie_header(first)
    assert "Cookie" not in first.headers  # nothing to send before the first answer

    answer = Headers()
    answer.add("Set-Cookie", "ragfleet_affinity=abc123; Path=/; Max-Age=172800; HttpOnly; SameSite=Lax")
    answer.add("Set-Cookie", "other=1")
    jar.extract_cookies(_Message(answer), first)
    jar.extract_cookies(_Message(Headers()), first)  # an answer without Set-Cookie keeps them

    later = _Message(Headers())
    jar.add_cookie_header(later)
    assert later.headers["Cookie"] == "ragfleet_affinity=abc123; other=1"

    renewed = Headers()
    renewed.add("Set-Cookie", "ragfleet_affinity=def456; Path=/")
    jar.extract_cookies(_Message(renewed), later)
    jar.add_cookie_header(later)
    assert later.headers["Cookie"] == "ragfleet_affinity=def456; other=1"
