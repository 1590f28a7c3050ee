"""Rank metrics over document ids. `ranking` is best first, without duplicates; `relevant` maps a
document id to its graded relevance (2: answers the question, 1: related; absent: not relevant).

hit@k counts a question as found when a document graded at the top grade of that question is in
the first k; MRR@10 is the mean reciprocal rank of the first such document; nDCG@10 uses every
grade (gain 2^grade - 1), so ranking a related page above an unrelated one counts too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def first_relevant_rank(ranking: Sequence[str], relevant: Mapping[str, int]) -> int | None:
    top = max(relevant.values())
    for rank, doc in enumerate(ranking, start=1):
        if relevant.get(doc, 0) == top:
            return rank
    return None


def ndcg(ranking: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    dcg = sum(
        (2 ** relevant.get(doc, 0) - 1) / math.log2(rank + 1) for rank, doc in enumerate(ranking[:k], 1)
    )
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum((2**grade - 1) / math.log2(rank + 1) for rank, grade in enumerate(ideal, 1))
    return dcg / idcg if idcg else 0.0


@dataclass(frozen=True)
class Scores:
    questions: int
    hit_at_1: float
    hit_at_3: float
    hit_at_5: float
    mrr_at_10: float
    ndcg_at_10: float

    def as_dict(self) -> dict[str, float]:
        return {
            "questions": self.questions,
            "hit@1": round(self.hit_at_1, 4),
            "hit@3": round(self.hit_at_3, 4),
            "hit@5": round(self.hit_at_5, 4),
            "mrr@10": round(self.mrr_at_10, 4),
            "ndcg@10": round(self.ndcg_at_10, 4),
        }


def score(rankings: Sequence[Sequence[str]], judgements: Sequence[Mapping[str, int]]) -> Scores:
    if len(rankings) != len(judgements) or not rankings:
        raise ValueError("one ranking per judged question, and at least one")
    ranks = [first_relevant_rank(r, j) for r, j in zip(rankings, judgements, strict=True)]
    n = len(ranks)

    def hit(k: int) -> float:
        return sum(1 for r in ranks if r is not None and r <= k) / n

    return Scores(
        questions=n,
        hit_at_1=hit(1),
        hit_at_3=hit(3),
        hit_at_5=hit(5),
        mrr_at_10=sum(1 / r for r in ranks if r is not None and r <= 10) / n,
        ndcg_at_10=sum(ndcg(r, j) for r, j in zip(rankings, judgements, strict=True)) / n,
    )


def documents(chunk_document_ids: Sequence[str]) -> list[str]:
    """A chunk result list as a document ranking: each document at the rank of its best chunk."""
    return list(dict.fromkeys(chunk_document_ids))
