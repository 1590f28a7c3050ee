"""L1: the in-process tier of the two-tier cache."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Generic, TypeVar

T = TypeVar("T")


class LruTtl(Generic[T]):
    """L1: an OrderedDict with a size bound and a TTL. No locks: it lives on one event loop.

    Entries are ``key -> (expires_at, value, scope)``; the scope (tenant, collection) lets an
    invalidation purge one collection. Purging scans the dict, which is fine: it happens once per
    write to a collection, while lookups happen thousands of times a second.
    """

    def __init__(self, max_entries: int, ttl_s: float) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._data: OrderedDict[str, tuple[float, T, tuple[str, str]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> T | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return entry[1]

    def set(self, key: str, value: T, scope: tuple[str, str], ttl_s: float | None = None) -> None:
        if self.max_entries <= 0:
            return
        self._data[key] = (time.monotonic() + (self.ttl_s if ttl_s is None else ttl_s), value, scope)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def purge_scope(self, scope: tuple[str, str]) -> int:
        doomed = [key for key, entry in self._data.items() if entry[2] == scope]
        for key in doomed:
            del self._data[key]
        return len(doomed)

    def cap_ttl(self, ttl_s: float) -> None:
        """Shorten every entry to at most ``ttl_s`` from now (when invalidations stop arriving)."""
        deadline = time.monotonic() + ttl_s
        for key, (expires_at, value, scope) in self._data.items():
            if expires_at > deadline:
                self._data[key] = (deadline, value, scope)

    def clear(self) -> None:
        self._data.clear()
