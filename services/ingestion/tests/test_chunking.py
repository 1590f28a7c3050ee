from __future__ import annotations

import itertools

from ragfleet.ingestion.chunking import chunk_sections, split_sentences
from ragfleet.ingestion.parsers import Section


def test_sentences_split_at_punctuation_and_blank_lines() -> None:
    assert split_sentences('One. "Two?" Three!\n\nFour') == ["One.", '"Two?"', "Three!", "Four"]


def test_chunks_stay_under_size_cut_at_sentences_and_overlap() -> None:
    text = " ".join(f"Sentence {i} is here." for i in range(100))
    chunks = chunk_sections([Section("H", text)], size=200, overlap=40)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert all(len(c.text) <= 200 for c in chunks)
    assert all(c.text.endswith(".") for c in chunks)
    for previous, current in itertools.pairwise(chunks):
        assert current.text.split(". ")[0] + "." in previous.text  # the overlap repeats a sentence
    assert "Sentence 99 is here." in chunks[-1].text


def test_headings_start_chunks_and_small_sections_merge() -> None:
    sections = [
        Section("A", "Alpha. " * 20),
        Section("B", "Beta. " * 30),
        Section("C", "Tiny."),
        Section("D", "Also tiny."),
    ]
    chunks = chunk_sections(sections, size=200, overlap=30)
    assert chunks[0].heading == "A" and chunks[0].text.startswith("Alpha")
    b_chunks = [c for c in chunks if c.heading == "B"]
    assert b_chunks and b_chunks[0].text.startswith("Beta")  # no overlap across a heading
    assert chunks[-1].text.endswith("Tiny. Also tiny.")


def test_long_sentences_are_cut_and_chunking_is_deterministic() -> None:
    sections = [Section("", "word " * 500)]
    first = chunk_sections(sections, size=150, overlap=20)
    assert all(len(c.text) <= 150 for c in first)
    assert first == chunk_sections(sections, size=150, overlap=20)
