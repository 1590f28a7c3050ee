"""The word tokenizer of ragfleet's lexical scoring: retrieval's BM25 index and llm-proxy's
extractive answers. One tokenizer and one stopword list, so a question meets a passage the same
way in both places.

NFKC + casefold (so "Ｃａｆé" meets "café" and "STRASSE" meets "straße"), runs of letters and
digits (an underscore or punctuation splits: "new_feature" -> "new", "feature"), a short
English stopword list, no stemming here: stemming is language-specific, and what needs it adds
it on top (retrieval's BM25 indexes Snowball English stems of these words: `bm25.analyze`,
measured in docs/eval.md). Pure functions, no imports beyond the standard library.
"""

from __future__ import annotations

import re
import unicodedata

# Bump whenever tokenize() changes its output: indexes persisted with another version are rebuilt.
TOKENIZER_VERSION = 1

# Longer "words" are base64 blobs, hashes or URLs run together: they only bloat the index.
MAX_TOKEN_CHARS = 64

# English function words: articles, pronouns, auxiliaries, conjunctions, common prepositions
# and question words. They occur in most passages, so they rank nothing.
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "after",
        "all",
        "also",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "being",
        "both",
        "but",
        "by",
        "can",
        "did",
        "do",
        "does",
        "each",
        "for",
        "from",
        "had",
        "has",
        "have",
        "he",
        "her",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "just",
        "me",
        "more",
        "most",
        "my",
        "no",
        "not",
        "of",
        "on",
        "only",
        "or",
        "other",
        "our",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    ]
)

_WORD = re.compile(r"[^\W_]+")


def tokenize(text: str) -> list[str]:
    """The indexable words of `text`, in order, with repeats: normalised, stopwords dropped."""
    normalised = unicodedata.normalize("NFKC", text).casefold()
    return [
        word for word in _WORD.findall(normalised) if word not in STOPWORDS and len(word) <= MAX_TOKEN_CHARS
    ]
