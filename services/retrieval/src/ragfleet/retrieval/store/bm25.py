"""A small in-memory BM25 index over integer labels (Lucene's BM25 formula, k1=1.2, b=0.75).

Written here rather than taken from a library: rank-bm25 and bm25s build static indexes (no
incremental add/remove by id) and neither knows our labels or filters; this one is ~150 lines,
updates in place, and scores a query with numpy over per-term posting arrays that are cached
until the term's postings change.

Tokenizer: NFKC + casefold, runs of letters/digits, a short English stopword list. No stemming:
it is language-specific and makes exact-term matches (ids, product names) worse.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter

import numpy as np

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "he",
        "her",
        "his",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "our",
        "she",
        "so",
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
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "will",
        "with",
        "you",
        "your",
    ]
)
MAX_TOKEN_CHARS = 64


def tokenize(text: str) -> list[str]:
    normalised = unicodedata.normalize("NFKC", text).casefold()
    return [t for t in _TOKEN.findall(normalised) if t not in STOPWORDS and len(t) <= MAX_TOKEN_CHARS]


class BM25Index:
    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._postings: dict[str, dict[int, int]] = {}
        self._doc_terms: dict[int, Counter[str]] = {}
        self._doc_len = np.zeros(1024, dtype=np.float32)
        self._total_len = 0
        # term -> (labels, term frequencies) as arrays; dropped when the term's postings change.
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self._doc_terms)

    def add(self, label: int, text: str) -> None:
        if label in self._doc_terms:
            self.remove(label)
        terms = Counter(tokenize(text))
        self._doc_terms[label] = terms
        if label >= len(self._doc_len):
            grown = np.zeros(max(label + 1, 2 * len(self._doc_len)), dtype=np.float32)
            grown[: len(self._doc_len)] = self._doc_len
            self._doc_len = grown
        length = sum(terms.values())
        self._doc_len[label] = length
        self._total_len += length
        for term, tf in terms.items():
            self._postings.setdefault(term, {})[label] = tf
            self._arrays.pop(term, None)

    def remove(self, label: int) -> None:
        terms = self._doc_terms.pop(label, None)
        if terms is None:
            return
        self._total_len -= int(self._doc_len[label])
        self._doc_len[label] = 0
        for term in terms:
            posting = self._postings.get(term)
            if posting is not None:
                posting.pop(label, None)
                if not posting:
                    del self._postings[term]
            self._arrays.pop(term, None)

    def _posting_arrays(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        cached = self._arrays.get(term)
        if cached is None:
            posting = self._postings.get(term)
            if not posting:
                return None
            labels = np.fromiter(posting.keys(), dtype=np.int64, count=len(posting))
            tfs = np.fromiter(posting.values(), dtype=np.float32, count=len(posting))
            cached = (labels, tfs)
            self._arrays[term] = cached
        return cached

    def search(self, text: str, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The `k` best (label, score) pairs with a positive score; `allowed` is a boolean mask by label."""
        n_docs = len(self._doc_terms)
        if n_docs == 0 or k <= 0:
            return []
        avg_len = max(self._total_len / n_docs, 1e-9)
        dense = np.zeros(len(self._doc_len), dtype=np.float32)
        matched = False
        for term, query_tf in Counter(tokenize(text)).items():
            arrays = self._posting_arrays(term)
            if arrays is None:
                continue
            labels, tfs = arrays
            df = len(labels)
            idf = math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
            norm = self.k1 * (1.0 - self.b + self.b * self._doc_len[labels] / avg_len)
            dense[labels] += query_tf * idf * tfs * (self.k1 + 1.0) / (tfs + norm)
            matched = True
        if not matched:
            return []
        # Lucene's idf is always > 0, so every chunk holding a query term scores > 0. (A dense
        # scan is also far cheaper than np.unique over the concatenated postings.)
        candidates = np.flatnonzero(dense)
        if allowed is not None:
            candidates = candidates[candidates < len(allowed)]
            candidates = candidates[allowed[candidates]]
        if len(candidates) == 0:
            return []
        cand_scores = dense[candidates]
        if len(candidates) > k:
            top = np.argpartition(-cand_scores, k)[:k]
            candidates, cand_scores = candidates[top], cand_scores[top]
        order = np.argsort(-cand_scores, kind="stable")
        return [(int(candidates[i]), float(cand_scores[i])) for i in order if cand_scores[i] > 0]
