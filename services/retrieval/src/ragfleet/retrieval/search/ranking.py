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

import numpy as np

from ragfleet.retrieval.store import DocumentCandidates, Hit

RRF_K = 60


def _list_scores(scores: np.ndarray, fusion: str) -> np.ndarray:
    """One list's scores (best first) scaled to [0, 1] (relative_score) or 1/(k + rank) (rrf)."""
    if fusion == "rrf":
        # Scaled so that rank 1 scores 1, like the top of a relative_score list: the title's
        # cosine is added on that scale.
        return (RRF_K + 1) / (RRF_K + np.arange(1, len(scores) + 1, dtype=np.float64))
    low = scores.min()
    span = scores.max() - low
    return (scores - low) / span if span > 0 else np.ones(len(scores))


def _best_first(indexes: np.ndarray, scores: np.ndarray, names: Sequence[str]) -> list[int]:
    """`indexes` by score, highest first, equal scores by name: the order of sorting
    (-score, name) pairs, which numpy alone cannot give (it does not compare the names), so only
    exact ties, which are rare, go through Python's sort."""
    order = indexes[np.argsort(-scores[indexes], kind="stable")]
    ordered = scores[order]
    if (ordered[1:] == ordered[:-1]).any():
        return sorted(indexes.tolist(), key=lambda i: (-scores[i], names[i]))
    return order.tolist()


def rank_documents(
    candidates: DocumentCandidates,
    *,
    weights: Sequence[float],
    fusion: str,
    title_similarity: Mapping[str, float],
    title_weight: float,
    top_k: int,
    per_document: int,
    centroid_similarity: np.ndarray | None = None,
    centroid_weight: float = 0.0,
) -> list[Hit]:
    """The fused result list (see the module docstring). `weights` goes with the candidate lists
    (alpha for the vector list, 1 - alpha for BM25's); `title_similarity` maps a title to its
    cosine, `centroid_similarity` a document (by its index in `candidates.documents`) to its
    centroid's. Arrays over the candidates: a `Hit` only for the chunks returned."""
    chunk_documents = candidates.chunk_documents
    chunk_score = np.zeros(len(chunk_documents))
    doc_score = np.zeros(len(candidates.documents))
    counted = np.zeros(len(chunk_documents), dtype=bool)  # in a list of weight > 0
    used: list[np.ndarray] = []
    documents_of: list[int] = chunk_documents.tolist()
    for weight, (chunks, scores) in zip(weights, candidates.lists, strict=True):
        if weight == 0.0 or not len(chunks):
            continue
        scaled = _list_scores(scores, fusion)
        chunk_score[chunks] += weight * scaled  # a chunk is at most once in a list
        best_in_list = np.zeros(len(doc_score))
        np.maximum.at(best_in_list, chunk_documents[chunks], scaled)
        doc_score += weight * best_in_list  # + 0.0 for the documents not in this list: unchanged
        counted[chunks] = True
        used.append(chunks)
    if title_weight and title_similarity:
        # Once per document, the first of its chunks (in list order) whose title has a cosine:
        # a title is on every one of a document's chunks.
        boosted: set[int] = set()
        for chunks in used:
            for chunk in chunks.tolist():
                document = documents_of[chunk]
                if document in boosted:
                    continue
                title = candidates.metadata[chunk].get("title")
                if isinstance(title, str) and title in title_similarity:
                    doc_score[document] += title_weight * title_similarity[title]
                    boosted.add(document)
    if centroid_weight and centroid_similarity is not None:
        doc_score += centroid_weight * centroid_similarity
    chunk_order = _best_first(np.flatnonzero(counted), chunk_score, candidates.chunk_ids)
    by_document: dict[int, list[int]] = {}
    for chunk in chunk_order:
        by_document.setdefault(documents_of[chunk], []).append(chunk)
    present = np.fromiter(by_document, dtype=np.intp, count=len(by_document))
    results: list[Hit] = []
    for document in _best_first(present, doc_score, candidates.documents):
        score = float(doc_score[document])
        for chunk in by_document[document][:per_document]:
            results.append(candidates.hit(chunk, score))
            if len(results) == top_k:
                return results
    return results
