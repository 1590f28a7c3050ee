"""Vector stores: one interface (`base.VectorStore`), two backends (`embedded`, `weaviate`)."""

from ragfleet.retrieval.store.base import (
    CONTENT_HASH_KEY,
    Chunk,
    CollectionInfo,
    CollectionNotFound,
    DocumentCandidates,
    DocumentInfo,
    FieldCondition,
    Fusion,
    Hit,
    MetadataFilter,
    SearchMode,
    SearchQuery,
    VectorStore,
    parse_filters,
    validate_name,
)

__all__ = [
    "CONTENT_HASH_KEY",
    "Chunk",
    "CollectionInfo",
    "CollectionNotFound",
    "DocumentCandidates",
    "DocumentInfo",
    "FieldCondition",
    "Fusion",
    "Hit",
    "MetadataFilter",
    "SearchMode",
    "SearchQuery",
    "VectorStore",
    "parse_filters",
    "validate_name",
]
