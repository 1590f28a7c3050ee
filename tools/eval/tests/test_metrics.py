"""The rank metrics on hand-computed cases, and the shipped question set's consistency."""

from __future__ import annotations

import math

import pytest

from ragfleet.eval.dataset import SETS, load_documents, load_questions
from ragfleet.eval.metrics import documents, first_relevant_rank, ndcg, score


def test_first_relevant_rank_counts_only_the_top_grade() -> None:
    relevant = {"a": 2, "b": 1}
    assert first_relevant_rank(["b", "x", "a"], relevant) == 3
    assert first_relevant_rank(["x", "y"], relevant) is None


def test_ndcg_is_one_for_the_ideal_order_and_less_otherwise() -> None:
    relevant = {"a": 2, "b": 1}
    assert ndcg(["a", "b", "x"], relevant) == pytest.approx(1.0)
    swapped = (1 / 1 + 3 / math.log2(3)) / (3 / 1 + 1 / math.log2(3))
    assert ndcg(["b", "a"], relevant) == pytest.approx(swapped)
    assert ndcg(["x"], relevant) == 0.0


def test_scores_average_over_questions() -> None:
    scores = score([["a"], ["x", "b"], ["x"]], [{"a": 2}, {"b": 2}, {"c": 2}])
    assert scores.hit_at_1 == pytest.approx(1 / 3)
    assert scores.hit_at_3 == pytest.approx(2 / 3)
    assert scores.mrr_at_10 == pytest.approx((1 + 0.5) / 3)


def test_chunk_results_become_a_document_ranking_at_each_documents_best_chunk() -> None:
    assert documents(["a", "b", "a", "c", "b"]) == ["a", "b", "c"]


def test_the_question_set_judges_only_documents_of_the_corpus_and_holds_out_a_third() -> None:
    docs = load_documents()
    questions = load_questions(documents=docs)
    assert len(docs) >= 40 and len(questions) >= 60
    held = [q for q in questions if q.held_out]
    assert 0.3 <= len(held) / len(questions) <= 0.36
    assert all(2 in q.relevant.values() for q in questions)


@pytest.mark.parametrize("name", sorted(SETS))
def test_every_set_judges_only_its_own_documents_and_holds_out_a_third(name: str) -> None:
    docs, questions = SETS[name].load()  # load() refuses a judgement of an unknown document
    assert len(docs) >= 40 and len(questions) >= 50
    assert len({q.id for q in questions}) == len(questions)
    held = [q for q in questions if q.held_out]
    assert 0.3 <= len(held) / len(questions) <= 0.36
    assert all(2 in q.relevant.values() for q in questions)
