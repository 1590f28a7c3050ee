"""Cookies for the Locust users, in a module of their own: importing locust monkey-patches the
process (gevent), which tests of this class must not."""

from __future__ import annotations

from http.cookiejar import CookieJar
from typing import Any


class AffinityCookies(CookieJar):
    """The cookie handling a load-test client needs, and no more: every ``Set-Cookie`` answered is
    sent back as ``name=value`` (the ingress's affinity cookie keeps a user on one replica).

    It replaces ``http.cookiejar.CookieJar``'s two methods that geventhttpclient's user agent calls: the jar's
    domain, path and expiry policy per request was a tenth of Locust's CPU in a 50-user search
    run (py-spy), which the ratio gate then counted against the search path — the echo app it is
    compared with sets no cookie. Attributes (Path, Max-Age, ...) are not needed against one host.
    """

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self.header = ""

    def add_cookie_header(self, request: Any) -> None:
        if self.header:
            request.headers["Cookie"] = self.header

    def extract_cookies(self, response: Any, _request: Any) -> None:
        set_cookies = response.headers.get_all("set-cookie")
        if not set_cookies:
            return
        for set_cookie in set_cookies:
            name, _, value = set_cookie.split(";", 1)[0].partition("=")
            if name.strip():
                self.values[name.strip()] = value.strip()
        self.header = "; ".join(f"{name}={value}" for name, value in self.values.items())
