"""BM25's analyzer: stemmed terms, and postings of another analyzer never served as they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson

from ragfleet.retrieval.store.base import Chunk, SearchQuery
from ragfleet.retrieval.store.bm25 import ANALYZER_VERSION, BM25Index, analyze
from ragfleet.retrieval.store.embedded import EmbeddedVectorStore

DIM = 8


def test_analyze_stems_the_shared_tokenizers_words() -> None:
    assert analyze("Deleting the VIEWS, then dropped tables") == ["delet", "view", "drop", "tabl"]
    # Inflections of a word meet; stopwords stay out; identifiers with digits stay themselves.
    assert analyze("index") == analyze("indexes") == analyze("indexed")
    assert analyze("how do I") == []
    assert analyze("sqlite3_open utf8") == ["sqlite3", "open", "utf8"]


def test_an_inflected_query_finds_the_passage() -> None:
    index = BM25Index()
    index.add(0, "DROP VIEW removes a view created by CREATE VIEW.")
    index.add(1, "ALTER TABLE renames a table or adds a column.")
    index.add(2, "Triggers run when rows change.")
    # Neither "dropping" nor "views" is a word of passage 0; their stems are.
    assert [label for label, _ in index.search("dropping views", 3)] == [0]
    assert [label for label, _ in index.search("renaming tables", 3)] == [1]


def _chunks() -> list[Chunk]:
    rng = np.random.default_rng(0)
    texts = ["Dropping a view", "Creating tables", "Collected garbage", "Rolled back savepoints"]
    return [
        Chunk(id=f"c{i}", document_id=f"d{i}", text=t, vector=rng.standard_normal(DIM).astype(np.float32))
        for i, t in enumerate(texts)
    ]


async def test_postings_of_the_unstemmed_analyzer_are_rebuilt_on_load(tmp_path: Path) -> None:
    store = EmbeddedVectorStore(tmp_path, dim=DIM)
    await store.upsert("t", "c", _chunks())
    await store.close()
    (meta_path,) = (tmp_path / "t" / "c").glob("snapshot-*/meta.json")
    meta = orjson.loads(meta_path.read_bytes())
    assert meta["bm25_tokenizer"] == ANALYZER_VERSION
    # As written before stemming (analyzer version 1: the tokenizer's words as they are), with
    # postings of unstemmed words: served as saved, "views" would find nothing.
    meta["bm25_tokenizer"] = 1
    meta_path.write_bytes(orjson.dumps(meta))

    reopened = EmbeddedVectorStore(tmp_path, dim=DIM)
    hits = await reopened.search("t", "c", SearchQuery(text="drop views", mode="bm25", top_k=4))
    assert [h.id for h in hits] == ["c0"]
    assert reopened._require("t", "c").bm25_source == "rebuilt"
    await reopened.close()
