"""Document ranking: documents by their best chunk in each list plus the title's cosine, then
their best chunks, at most `per_document` each."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import pytest

from ragfleet.retrieval.search.ranking import RRF_K, rank_documents
from ragfleet.retrieval.store import DocumentCandidates, Hit


def hit(chunk: str, score: float, title: str | None = None) -> Hit:
    document = chunk.split(":")[0]
    return Hit(chunk, document, f"text of {chunk}", score, {"title": title or document.upper()})


def rank(
    vector: list[Hit],
    bm25: list[Hit],
    *,
    alpha: float,
    centroid_similarity: Mapping[str, float] | None = None,
    **options: object,
) -> list[Hit]:
    candidates = DocumentCandidates.from_hits([vector, bm25])
    cosines = None
    if centroid_similarity:
        cosines = np.array([centroid_similarity.get(d, 0.0) for d in candidates.documents])
    return rank_documents(candidates, weights=[alpha, 1.0 - alpha], centroid_similarity=cosines, **options)  # type: ignore[arg-type]


def ranked(vector: list[Hit], bm25: list[Hit], **options: object) -> list[str]:
    settings = {"alpha": 0.5, "fusion": "relative_score", "title_similarity": {}, "title_weight": 0.0,
                "top_k": 10, "per_document": 2, **options}  # fmt: skip
    return [h.id for h in rank(vector, bm25, **settings)]  # type: ignore[arg-type]


def test_a_document_with_many_middling_chunks_does_not_crowd_out_the_results() -> None:
    vector = [
        hit("long:1", 0.80),
        hit("long:2", 0.79),
        hit("long:3", 0.78),
        hit("short:0", 0.75),
        hit("x:0", 0.1),
    ]
    assert ranked(vector, [], alpha=1.0) == ["long:1", "long:2", "short:0", "x:0"]
    assert ranked(vector, [], alpha=1.0, per_document=1) == ["long:1", "short:0", "x:0"]


def test_both_lists_count_at_the_documents_best_chunk() -> None:
    vector = [hit("a:0", 0.9), hit("b:0", 0.8), hit("c:0", 0.1)]
    bm25 = [hit("b:1", 12.0), hit("c:0", 3.0), hit("a:0", 1.0)]
    # a: 0.5*1 + 0.5*0 = 0.5; b: 0.5*0.875 + 0.5*1 = 0.94; c: 0 + 0.5*0.18
    assert ranked(vector, bm25)[:3] == ["b:1", "b:0", "a:0"]
    assert ranked(vector, bm25, alpha=1.0)[0] == "a:0"


def test_the_title_similarity_lifts_its_document_once() -> None:
    vector = [hit("a:0", 0.9), hit("a:1", 0.85), hit("b:0", 0.8, title="Drop view"), hit("z:0", 0.5)]
    plain = ranked(vector, [], alpha=1.0)
    assert plain[0] == "a:0"
    lifted = rank(
        vector, [], alpha=1.0, fusion="relative_score", title_similarity={"Drop view": 0.9},
        title_weight=0.5, top_k=10, per_document=2,
    )  # fmt: skip
    assert lifted[0].id == "b:0"
    assert lifted[0].score == pytest.approx(0.75 + 0.45)  # its document's: (0.8-0.5)/0.4 + 0.5*0.9


def test_rrf_is_scaled_like_relative_scores_and_top_k_is_respected() -> None:
    vector = [hit(f"d{i}:0", 1.0 - i / 100) for i in range(30)]
    results = rank(
        vector, [], alpha=1.0, fusion="rrf", title_similarity={}, title_weight=0.0, top_k=5, per_document=2
    )
    assert len(results) == 5 and results[0].score == 1.0 and results[1].score < 1.0


def test_the_centroid_similarity_lifts_the_page_about_the_question() -> None:
    # "long" has one close passage; "focused" is about the question as a whole.
    vector = [hit("long:7", 0.9), hit("focused:0", 0.85), hit("z:0", 0.5)]
    assert ranked(vector, [], alpha=1.0)[0] == "long:7"
    centroids = {"long": 0.2, "focused": 0.7, "z": 0.1}
    lifted = ranked(vector, [], alpha=1.0, centroid_similarity=centroids, centroid_weight=1.0)
    assert lifted[:2] == ["focused:0", "long:7"]
    # Weight 0 (or no centroids, as from a backend without them) leaves the ranking alone.
    assert ranked(vector, [], alpha=1.0, centroid_similarity=centroids, centroid_weight=0.0)[0] == "long:7"
    assert ranked(vector, [], alpha=1.0, centroid_similarity={}, centroid_weight=1.0)[0] == "long:7"


# The definition the array version must give exactly: the dict-and-Hit implementation it replaced.
def _by_definition(
    vector_hits: Sequence[Hit], bm25_hits: Sequence[Hit], *, alpha: float, fusion: str,
    title_similarity: Mapping[str, float], title_weight: float, top_k: int, per_document: int,
    centroid_similarity: Mapping[str, float], centroid_weight: float,
) -> list[Hit]:  # fmt: skip
    def list_scores(hits: Sequence[Hit]) -> dict[str, float]:
        if fusion == "rrf":
            return {h.id: (RRF_K + 1) / (RRF_K + rank) for rank, h in enumerate(hits, start=1)}
        low = min(h.score for h in hits)
        span = max(h.score for h in hits) - low
        return {h.id: (h.score - low) / span if span > 0 else 1.0 for h in hits}

    chunks: dict[str, Hit] = {}
    chunk_score: dict[str, float] = {}
    doc_score: dict[str, float] = {}
    for weight, hits in ((alpha, vector_hits), (1.0 - alpha, bm25_hits)):
        if weight == 0.0 or not hits:
            continue
        scores = list_scores(hits)
        best: dict[str, float] = {}
        for h in hits:
            chunks.setdefault(h.id, h)
            chunk_score[h.id] = chunk_score.get(h.id, 0.0) + weight * scores[h.id]
            best[h.document_id] = max(best.get(h.document_id, 0.0), scores[h.id])
        for document, value in best.items():
            doc_score[document] = doc_score.get(document, 0.0) + weight * value
    if title_weight:
        boosted: set[str] = set()
        for h in chunks.values():
            title = h.metadata.get("title")
            if h.document_id not in boosted and isinstance(title, str) and title in title_similarity:
                doc_score[h.document_id] += title_weight * title_similarity[title]
                boosted.add(h.document_id)
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


@pytest.mark.parametrize("seed", range(40))
def test_the_array_ranking_gives_exactly_what_the_definition_gives(seed: int) -> None:
    """Random candidate lists with shared chunks, equal scores (ties broken by id), titles that
    differ between a document's chunks, missing centroids, both fusions and every kind of alpha."""
    rng = random.Random(seed)
    documents = [f"d{i}" for i in range(rng.randint(1, 12))]

    def candidates(n: int, coarse: bool) -> list[Hit]:
        ids = rng.sample([f"{d}:{j}" for d in documents for j in range(4)], min(n, 4 * len(documents)))
        scores = sorted((round(rng.random(), 1 if coarse else 6) for _ in ids), reverse=True)
        return [
            Hit(c, c.split(":")[0], c, s, {"title": rng.choice(["T1", "T2", 3, None])}, 0)
            for c, s in zip(ids, scores, strict=True)
        ]

    vector = candidates(rng.randint(0, 30), rng.random() < 0.5)
    bm25 = candidates(rng.randint(0, 30), rng.random() < 0.5)
    options = {
        "alpha": rng.choice([0.0, 1.0, 0.6, rng.random()]),
        "fusion": rng.choice(["rrf", "relative_score"]),
        "title_similarity": rng.choice([{}, {"T1": 0.5, "T2": 0.25}, {"T2": rng.random()}]),
        "title_weight": rng.choice([0.0, 0.25]),
        "top_k": rng.randint(1, 20),
        "per_document": rng.randint(1, 3),
        "centroid_weight": rng.choice([0.0, 1.0]),
        "centroid_similarity": rng.choice([{}, {d: round(rng.random(), 1) for d in documents[::2]}]),
    }
    expected = _by_definition(vector, bm25, **options)  # type: ignore[arg-type]
    got = rank(vector, bm25, **options)  # type: ignore[arg-type]
    assert [(h.id, h.document_id) for h in got] == [(h.id, h.document_id) for h in expected]
    assert [h.score for h in got] == pytest.approx([h.score for h in expected], abs=1e-12)
