"""Cache keys: how a request becomes a key, and where a collection's version lives."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

INVALIDATION_CHANNEL = "ragfleet:cache:invalidate"
UNVERSIONED = "-"  # the collection part of keys for values no write can change


def normalise_text(text: str) -> str:
    """Queries that differ only in case or whitespace share a cache entry.

    Case-folding is exact for what we cache: MiniLM's tokenizer lower-cases, and BM25 matches
    lower-cased terms.
    """
    return " ".join(text.split()).casefold()


def request_hash(request: Mapping[str, Any] | str) -> str:
    """A stable hash of a request: canonical JSON (sorted keys) through BLAKE2b-128."""
    payload = (
        request.encode() if isinstance(request, str) else orjson.dumps(request, option=orjson.OPT_SORT_KEYS)
    )
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


def version_key(tenant: str, collection: str) -> str:
    """Shared by every service: one version per tenant's collection."""
    return f"ragfleet:version:{tenant}:{collection}"
