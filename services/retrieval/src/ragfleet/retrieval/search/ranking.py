"""Document-level ranking of chunk hits: what `make eval` measured to rank best (docs/eval.md).

A question is answered by a document, and a document is several chunks. Ranking chunks one by
one lets a long document win on the luck of having many chunks, and lets one document fill the
whole result list. So by default (``rank: document``) retrieval ranks documents, then returns
their best chunks:

1. The vector and the BM25 candidate lists (chunks, best first) are each min-max scaled to
   [0, 1] (Weaviate's ``relative_score``), or turned into reciprocal ranks (``rrf``, scaled
   so that rank 1 is 1).
2. A document's score in each list is that of its best chunk; the two are weighted by `alpha`.
3. The cosine between the query and the document's title (chunk metadata ``title``, which
   ingestion fills) is added with weight `title_weight`: a title is the shortest statement of
   what a document is about, and MiniLM's mean pooling dilutes it inside a long chunk.
   The cosine between the query and the document's centroid (the mean of its chunks' vectors)
   is added with weight `centroid_weight`: it says what the whole page is about, where the best
   chunk says only that one passage of it is close — a long page that mentions everything
   has one close passage for many questions, and a diffuse centroid.
4. Documents best first, each with up to `per_document` of its chunks (best first), until
   `top_k` chunks. A chunk's reported score is its document's score.

``rank: chunk`` keeps the chunk-level fusion of the store (Weaviate's definition).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from ragfleet.retrieval.store import Hit

RRF_K = 60


def _list_scores(hits: Sequence[Hit], fusion: str) -> dict[str, float]:
    """Chunk id -> its score in one list, scaled to [0, 1] (relative_score) or 1/(k + rank) (rrf)."""
    if not hits:
        return {}
    if fusion == "rrf":
        # Scaled so that rank 1 scores 1, like the top of a relative_score list: the title's
        # cosine is added on that scale.
        return {hit.id: (RRF_K + 1) / (RRF_K + rank) for rank, hit in enumerate(hits, start=1)}
    low = min(hit.score for hit in hits)
    span = max(hit.score for hit in hits) - low
    return {hit.id: (hit.score - low) / span if span > 0 else 1.0 for hit in hits}


def rank_documents(
    vector_hits: Sequence[Hit],
    bm25_hits: Sequence[Hit],
    *,
    alpha: float,
    fusion: str,
    title_similarity: Mapping[str, float],
    title_weight: float,
    top_k: int,
    per_document: int,
    centroid_similarity: Mapping[str, float] | None = None,
    centroid_weight: float = 0.0,
) -> list[Hit]:
    """The fused result list (see the module docstring); `title_similarity` maps a title to its
    cosine, `centroid_similarity` a document id to its centroid's."""
    chunks: dict[str, Hit] = {}
    chunk_score: dict[str, float] = {}
    doc_score: dict[str, float] = {}
    for weight, hits in ((alpha, vector_hits), (1.0 - alpha, bm25_hits)):
        if weight == 0.0 or not hits:
            continue
        scores = _list_scores(hits, fusion)
        best_in_list: dict[str, float] = {}
        for hit in hits:
            chunks.setdefault(hit.id, hit)
            chunk_score[hit.id] = chunk_score.get(hit.id, 0.0) + weight * scores[hit.id]
            best_in_list[hit.document_id] = max(best_in_list.get(hit.document_id, 0.0), scores[hit.id])
        for document, best in best_in_list.items():
            doc_score[document] = doc_score.get(document, 0.0) + weight * best
    if title_weight:
        boosted: set[str] = set()  # once per document: its title is on every one of its chunks
        for hit in chunks.values():
            title = hit.metadata.get("title")
            if hit.document_id not in boosted and isinstance(title, str) and title in title_similarity:
                doc_score[hit.document_id] += title_weight * title_similarity[title]
                boosted.add(hit.document_id)
    if centroid_weight and centroid_similarity:
        for document in doc_score:
            doc_score[document] += centroid_weight * centroid_similarity.get(document, 0.0)
    by_document: dict[str, list[str]] = {}
    for chunk_id in sorted(chunk_score, key=lambda c: (-chunk_score[c], c)):
        by_document.setdefault(chunks[chunk_id].document_id, []).append(chunk_id)
    results: list[Hit] = []
    for document in sorted(doc_score, key=lambda d: (-doc_score[d], d)):
        for chunk_id in by_document[document][:per_document]:
            results.append(replace(chunks[chunk_id], score=doc_score[document]))
            if len(results) == top_k:
                return results
    return results
