"""Tuning of the embedded index (HNSW parameters, filtered-search and hybrid limits, snapshots)."""

from __future__ import annotations


class IndexSettings:
    """Tuning of the embedded index; the defaults give recall@10 >= 0.95 (docs/retrieval-index.md)."""

    def __init__(
        self,
        *,
        m: int = 16,
        ef_construction: int = 100,
        ef_search: int = 64,
        exact_scan_limit: int = 20_000,
        hybrid_candidates: int = 100,
        snapshot_log_bytes: int = 256 * 1024 * 1024,
        filter_cache_size: int = 64,
    ) -> None:
        self.m = m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        # A filtered search whose matches number at most this is answered by an exact scan of them.
        self.exact_scan_limit = exact_scan_limit
        self.hybrid_candidates = hybrid_candidates
        self.snapshot_log_bytes = snapshot_log_bytes
        self.filter_cache_size = filter_cache_size
