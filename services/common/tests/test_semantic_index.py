"""The semantic index in process, and how replicas share what they answered."""

from __future__ import annotations

import numpy as np

from ragfleet.common.semantic_cache import SemanticIndex


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


SCOPE = ("acme", "pets", 3, "params-hash")


def test_a_close_question_in_the_same_scope_hits_and_nothing_crosses_scopes() -> None:
    index = SemanticIndex("test", threshold=0.9)
    index.add(SCOPE, unit(1, 0, 0), {"q": "which animal purrs"})
    hit = index.lookup(SCOPE, unit(0.99, 0.1, 0))
    assert hit is not None and hit.request == {"q": "which animal purrs"} and hit.similarity > 0.9
    assert index.lookup(SCOPE, unit(0, 1, 0)) is None  # not a paraphrase
    assert index.lookup(("other", "pets", 3, "params-hash"), unit(1, 0, 0)) is None
    index.drop_older("acme", "pets", 4)  # a write bumped the version: the old scope can never match
    assert index.lookup(SCOPE, unit(1, 0, 0)) is None


def test_a_shared_question_reaches_another_replica_with_its_request_intact() -> None:
    here, there = SemanticIndex("test", threshold=0.9), SemanticIndex("test", threshold=0.9)
    request = {"collection": "pets", "top_k": 3, "alpha": 0.8, "q": "which animal purrs"}
    here.add(SCOPE, unit(1, 2, 3), request)
    message = here.share(SCOPE, unit(1, 2, 3), request)

    there.add_shared(message)
    hit = there.lookup(SCOPE, unit(1, 2, 3.1))
    assert hit is not None and hit.request == request

    # A process's own share comes back to it over the channel: not added twice.
    here.add_shared(message)
    assert here._scopes[SCOPE].size == 1
    assert here.channel == there.channel == "ragfleet:semantic:test"


def test_a_shared_question_of_another_dimension_is_ignored() -> None:
    index = SemanticIndex("test")
    index.add(SCOPE, unit(1, 0, 0), {"q": "a"})
    other = SemanticIndex("test").share(SCOPE, unit(1, 0, 0, 0), {"q": "b"})
    index.add_shared(other)
    assert index._scopes[SCOPE].size == 1
