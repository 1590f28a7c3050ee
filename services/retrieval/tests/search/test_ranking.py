"""Document ranking: documents by their best chunk in each list plus the title's cosine, then
their best chunks, at most `per_document` each."""

from __future__ import annotations

import pytest

from ragfleet.retrieval.search.ranking import rank_documents
from ragfleet.retrieval.store import Hit


def hit(chunk: str, score: float, title: str | None = None) -> Hit:
    document = chunk.split(":")[0]
    return Hit(chunk, document, f"text of {chunk}", score, {"title": title or document.upper()})


def ranked(vector: list[Hit], bm25: list[Hit], **options: object) -> list[str]:
    settings = {"alpha": 0.5, "fusion": "relative_score", "title_similarity": {}, "title_weight": 0.0,
                "top_k": 10, "per_document": 2, **options}  # fmt: skip
    return [h.id for h in rank_documents(vector, bm25, **settings)]  # type: ignore[arg-type]


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
    lifted = rank_documents(
        vector, [], alpha=1.0, fusion="relative_score", title_similarity={"Drop view": 0.9},
        title_weight=0.5, top_k=10, per_document=2,
    )  # fmt: skip
    assert lifted[0].id == "b:0"
    assert lifted[0].score == pytest.approx(0.75 + 0.45)  # its document's: (0.8-0.5)/0.4 + 0.5*0.9


def test_rrf_is_scaled_like_relative_scores_and_top_k_is_respected() -> None:
    vector = [hit(f"d{i}:0", 1.0 - i / 100) for i in range(30)]
    results = rank_documents(
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
