"""Sections in, chunks out: about ``size`` characters each, cut at sentence boundaries, a new
chunk at a heading whenever the heading's section would not fit, and ``overlap`` characters of
whole sentences carried over so that a fact cut in two is still found whole in one chunk."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ragfleet.ingestion.parsers import Section

# A sentence ends at . ! ? (optionally followed by a closing quote or bracket) before whitespace,
# or at a blank line.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+|\n\s*\n")


@dataclass(frozen=True)
class Chunk:
    position: int
    text: str
    heading: str


def split_sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(text) if part and part.strip()]


def _pieces(sentence: str, size: int) -> Iterator[str]:
    """A sentence longer than a chunk is cut at whitespace (or hard, if it has none).

    Cuts move an index along the sentence: slicing off the remainder each time would copy the
    rest of a one-line, 20 MB "sentence" once per piece (quadratic).
    """
    start, end = 0, len(sentence)
    while end - start > size:
        cut = sentence.rfind(" ", start + size // 2, start + size)
        cut = cut if cut >= 0 else start + size
        if piece := sentence[start:cut].strip():
            yield piece
        start = cut
        while start < end and sentence[start].isspace():
            start += 1
    if piece := sentence[start:].strip():
        yield piece


def chunk_sections(sections: Sequence[Section], *, size: int, overlap: int) -> list[Chunk]:
    """Linear in the text: the length of the chunk being built is kept as a running total, not
    summed again for every sentence (a document of many tiny sentences made that quadratic)."""
    if overlap >= size:
        raise ValueError("overlap must be smaller than size")
    chunks: list[Chunk] = []
    current: list[str] = []  # sentences of the chunk being built
    current_len = 0  # sum of len(s) + 1 over current
    fresh = 0  # how many of them are new (not carried over as overlap)
    heading = ""

    def emit() -> None:
        nonlocal current, current_len, fresh
        if fresh:
            chunks.append(Chunk(len(chunks), " ".join(current), heading))
        # Carry whole trailing sentences, up to ``overlap`` characters, into the next chunk.
        carried: list[str] = []
        carried_len = 0
        for sentence in reversed(current):
            if carried_len + len(sentence) + 1 > overlap:
                break
            carried.append(sentence)
            carried_len += len(sentence) + 1
        carried.reverse()
        current, current_len, fresh = carried, carried_len, 0

    for section in sections:
        sentences = [piece for s in split_sentences(section.text) for piece in _pieces(s, size)]
        section_len = sum(len(s) + 1 for s in sentences)
        # A heading starts a fresh chunk (no overlap across sections) unless the whole section
        # still fits in the current one: tiny sections are merged rather than left alone.
        if fresh and current_len + section_len > size:
            emit()
            current, current_len = [], 0
        elif not fresh:
            current, current_len = [], 0
        for sentence in sentences:
            if fresh and current_len + len(sentence) + 1 > size:
                emit()
                if current_len + len(sentence) + 1 > size:
                    current, current_len = [], 0
            if not fresh:
                heading = section.heading  # a chunk is filed under the heading it starts in
            current.append(sentence)
            current_len += len(sentence) + 1
            fresh += 1
    emit()
    return chunks


def document_title(sections: Sequence[Section], metadata: dict[str, Any], fallback: str) -> str:
    """A document's title: its ``title`` metadata, else its first heading, else `fallback` (its id)."""
    title = metadata.get("title")
    if isinstance(title, str) and title.strip():
        return title.strip()
    return next((section.heading for section in sections if section.heading), fallback)


def embedding_text(chunk: Chunk, title: str) -> str:
    """What the model embeds for a chunk: the chunk under its document title and heading.

    A chunk from the middle of a section does not say what it is about ("The conflict target may
    be omitted...") — its title and heading do. Prefixing them (a "contextual chunk header") is
    what `make eval` measured to rank best; see docs/eval.md.
    """
    context = " > ".join(part for part in dict.fromkeys((title, chunk.heading)) if part)
    return f"{context}\n{chunk.text}" if context else chunk.text
