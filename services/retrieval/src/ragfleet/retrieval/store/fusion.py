"""Hybrid fusion of a vector ranking and a BM25 ranking, as Weaviate defines it."""

from __future__ import annotations

RRF_K = 60  # the constant of reciprocal rank fusion (Cormack et al.), as Weaviate and Elastic use


def fuse(
    vector_hits: list[tuple[int, float]],
    bm25_hits: list[tuple[int, float]],
    *,
    alpha: float,
    fusion: str,
) -> list[tuple[int, float]]:
    """Hybrid fusion, as Weaviate defines it. `alpha` weighs the vector side (1 = vector only).

    rrf: alpha / (60 + rank_vector) + (1 - alpha) / (60 + rank_bm25), ranks from 1.
    relative_score: each list's scores min-max scaled to [0, 1], then the same weighted sum.
    A chunk missing from one list gets 0 from that side.
    """
    fused: dict[int, float] = {}
    for weight, hits in ((alpha, vector_hits), (1.0 - alpha, bm25_hits)):
        if not hits or weight == 0.0:
            continue
        if fusion == "rrf":
            contributions = [weight / (RRF_K + rank) for rank in range(1, len(hits) + 1)]
        else:
            scores = [score for _, score in hits]
            low, high = min(scores), max(scores)
            span = high - low
            contributions = [weight * ((s - low) / span if span > 0 else 1.0) for s in scores]
        for (label, _), contribution in zip(hits, contributions, strict=True):
            fused[label] = fused.get(label, 0.0) + contribution
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))
