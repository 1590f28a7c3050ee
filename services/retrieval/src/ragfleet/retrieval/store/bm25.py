"""A small in-memory BM25 index over integer labels (Lucene's BM25 formula, k1=1.2, b=0.75).

Written here rather than taken from a library: rank-bm25 and bm25s build static indexes (no
incremental add/remove by id) and neither knows our labels or filters; this one updates in
place, and scores a query with numpy over per-term posting arrays that are cached until the
term's postings change. The tokenizer is ragfleet's shared one (`ragfleet.common.text`); BM25
indexes the Snowball English stem of each of its words (`analyze`), so that "views" meets "view"
and "deleting" meets "delete": on the eval sets (docs/eval.md) that lifted BM25 alone from 0.51 to
0.60 development hit@1. Exact identifiers still match themselves: a word and its stem are stemmed
the same way on both sides.

Persistence: `to_arrays()` flattens the postings into a few arrays that a snapshot stores, and
`from_arrays()` serves from those arrays as they are, without tokenizing any text again. A
loaded term's postings stay read-only arrays until a write touches the term; only then are they
copied into a dict that takes in-place updates. So a restart costs reading the arrays, and the
postings of the (many) terms no write touches never become Python objects at all.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import snowballstemmer

from ragfleet.common.text import TOKENIZER_VERSION, tokenize

# What the postings were made with: the shared tokenizer's version times ten plus the stemming's
# own, so that a change to either rebuilds persisted postings instead of mixing old and new terms.
ANALYZER_VERSION = TOKENIZER_VERSION * 10 + 1

_stemmers = threading.local()  # a Snowball stemmer keeps state while it stems: one per thread


@lru_cache(maxsize=1 << 18)
def _stem(word: str) -> str:
    # Snowball in pure Python costs ~100 µs a word; vocabularies are small and skewed, so the
    # cache answers nearly every word after the first few documents.
    stemmer = getattr(_stemmers, "english", None)
    if stemmer is None:
        stemmer = _stemmers.english = snowballstemmer.stemmer("english")
    return str(stemmer.stemWord(word))


def analyze(text: str) -> list[str]:
    """The terms BM25 indexes and searches for `text`: its words (`tokenize`), stemmed."""
    return [_stem(word) for word in tokenize(text)]


@dataclass(slots=True)
class BM25Arrays:
    """A BM25 index's postings as flat arrays, term by term (what a snapshot stores)."""

    terms: list[str]  # the vocabulary; term i's postings are [indptr[i], indptr[i + 1])
    indptr: np.ndarray  # int64, len(terms) + 1
    labels: np.ndarray  # int32, one per posting
    tfs: np.ndarray  # float32 term frequencies, one per posting
    analyzer_version: int = ANALYZER_VERSION


class BM25Index:
    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        # Terms written since the index was created or loaded: label -> term frequency.
        self._postings: dict[str, dict[int, int]] = {}
        # Documents added since then: their distinct terms (what remove() must visit).
        self._doc_terms: dict[int, tuple[str, ...]] = {}
        # What from_arrays() loaded, read-only. A term leaves `_loaded_rows` when a write copies
        # its postings into `_postings`; a document leaves `_loaded_docs` when it is removed.
        self._loaded = BM25Arrays(
            [], np.zeros(1, dtype=np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)
        )
        self._loaded_rows: dict[str, int] = {}
        self._loaded_docs = np.zeros(0, dtype=bool)
        self._loaded_by_doc: tuple[np.ndarray, np.ndarray] | None = None  # built on the first remove
        self._doc_count = 0
        self._doc_len = np.zeros(1024, dtype=np.float32)
        self._total_len = 0
        # term -> (labels, term frequencies) as arrays; dropped when the term's postings change.
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return self._doc_count

    # --- persistence --------------------------------------------------------------------------

    @classmethod
    def from_arrays(
        cls, arrays: BM25Arrays, doc_labels: np.ndarray, k1: float = 1.2, b: float = 0.75
    ) -> BM25Index:
        """The index `to_arrays()` described; `doc_labels` are all its documents' labels
        (including any without a single indexable word, which count in the average length)."""
        if arrays.analyzer_version != ANALYZER_VERSION:
            raise ValueError(f"postings made by analyzer v{arrays.analyzer_version}, not v{ANALYZER_VERSION}")
        index = cls(k1, b)
        size = max(1024, int(doc_labels.max()) + 1 if len(doc_labels) else 0)
        index._loaded = arrays
        index._loaded_rows = {term: row for row, term in enumerate(arrays.terms)}
        index._loaded_docs = np.zeros(size, dtype=bool)
        index._loaded_docs[doc_labels] = True
        index._doc_count = len(doc_labels)
        lengths = np.bincount(arrays.labels, weights=arrays.tfs, minlength=size)  # float64: exact sums
        index._doc_len = lengths.astype(np.float32)
        index._total_len = int(lengths.sum())
        return index

    def to_arrays(self) -> BM25Arrays:
        terms: list[str] = []
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        for term in [*self._loaded_rows, *self._postings]:
            arrays = self._read_postings(term)
            if arrays is not None:
                terms.append(term)
                parts.append(arrays)
        indptr = np.zeros(len(parts) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(labels) for labels, _ in parts])
        if not parts:
            return BM25Arrays(terms, indptr, np.zeros(0, np.int32), np.zeros(0, np.float32))
        labels = np.concatenate([labels for labels, _ in parts]).astype(np.int32)
        tfs = np.concatenate([tfs for _, tfs in parts]).astype(np.float32)
        return BM25Arrays(terms, indptr, labels, tfs)

    # --- writes -------------------------------------------------------------------------------

    def add(self, label: int, text: str) -> None:
        self.remove(label)
        counts = Counter(analyze(text))
        self._doc_terms[label] = tuple(counts)
        if label >= len(self._doc_len):
            grown = np.zeros(max(label + 1, 2 * len(self._doc_len)), dtype=np.float32)
            grown[: len(self._doc_len)] = self._doc_len
            self._doc_len = grown
        length = sum(counts.values())
        self._doc_len[label] = length
        self._total_len += length
        self._doc_count += 1
        for term, tf in counts.items():
            self._writable_postings(term)[label] = tf
            self._arrays.pop(term, None)

    def remove(self, label: int) -> None:
        terms = self._doc_terms.pop(label, None)
        if terms is None:
            if label >= len(self._loaded_docs) or not self._loaded_docs[label]:
                return
            terms = self._loaded_terms_of(label)
            self._loaded_docs[label] = False
        self._total_len -= int(self._doc_len[label])
        self._doc_len[label] = 0
        self._doc_count -= 1
        for term in terms:
            posting = self._writable_postings(term)
            posting.pop(label, None)
            if not posting:
                del self._postings[term]
            self._arrays.pop(term, None)

    def _writable_postings(self, term: str) -> dict[int, int]:
        posting = self._postings.get(term)
        if posting is None:
            row = self._loaded_rows.pop(term, None)
            if row is None:
                posting = {}
            else:
                start, end = self._loaded.indptr[row], self._loaded.indptr[row + 1]
                labels = self._loaded.labels[start:end].tolist()
                posting = dict(
                    zip(labels, self._loaded.tfs[start:end].astype(np.int64).tolist(), strict=True)
                )
            self._postings[term] = posting
        return posting

    def _loaded_terms_of(self, label: int) -> tuple[str, ...]:
        """The terms of a loaded document, from a document-major copy of the loaded postings."""
        if self._loaded_by_doc is None:
            loaded = self._loaded
            rows = np.repeat(np.arange(len(loaded.terms), dtype=np.int64), np.diff(loaded.indptr))
            order = np.argsort(loaded.labels, kind="stable")
            indptr = np.zeros(len(self._loaded_docs) + 1, dtype=np.int64)
            indptr[1:] = np.cumsum(np.bincount(loaded.labels, minlength=len(self._loaded_docs)))
            self._loaded_by_doc = (indptr, rows[order])
        indptr, rows = self._loaded_by_doc
        return tuple(self._loaded.terms[row] for row in rows[indptr[label] : indptr[label + 1]].tolist())

    # --- reads --------------------------------------------------------------------------------

    def _read_postings(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        posting = self._postings.get(term)
        if posting:
            labels = np.fromiter(posting.keys(), dtype=np.int64, count=len(posting))
            tfs = np.fromiter(posting.values(), dtype=np.float32, count=len(posting))
            return labels, tfs
        row = self._loaded_rows.get(term)
        if row is None:
            return None
        start, end = self._loaded.indptr[row], self._loaded.indptr[row + 1]
        return self._loaded.labels[start:end], self._loaded.tfs[start:end]

    def _posting_arrays(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        cached = self._arrays.get(term)
        if cached is None:
            cached = self._read_postings(term)
            if cached is None:
                return None
            self._arrays[term] = cached
        return cached

    def search(self, text: str, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The `k` best (label, score) pairs with a positive score; `allowed` is a boolean mask by label."""
        n_docs = self._doc_count
        if n_docs == 0 or k <= 0:
            return []
        avg_len = max(self._total_len / n_docs, 1e-9)
        dense = np.zeros(len(self._doc_len), dtype=np.float32)
        matched = False
        for term, query_tf in Counter(analyze(text)).items():
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
