from __future__ import annotations

from ragfleet.common.text import STOPWORDS, tokenize


def test_tokenizer_folds_case_and_width_and_splits_on_punctuation() -> None:
    assert tokenize("The Café's  NEW_feature, v2.0!") == ["café", "s", "new", "feature", "v2", "0"]
    # Full-width letters (as East Asian input methods type them) and a German sharp s.
    assert tokenize("\uff32\uff25\uff24\uff29\uff33 Straße") == ["redis", "strasse"]


def test_stopwords_and_overlong_tokens_are_dropped() -> None:
    assert tokenize("What is the cache of this replica, and why?") == ["cache", "replica"]
    assert tokenize("x" * 64 + " " + "y" * 65) == ["x" * 64]
    assert all(word == word.casefold() for word in STOPWORDS)
