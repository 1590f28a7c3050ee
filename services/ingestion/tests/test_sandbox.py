"""The parsing child: a deadline that kills it, a clear error, and a fresh child for the next document."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ragfleet.ingestion.parsers import DocumentError, DocumentFormat
from ragfleet.ingestion.sandbox import ParseOptions, ParserProcess

pytestmark = pytest.mark.integration  # starts a child process

OPTIONS = ParseOptions(max_html_depth=1000, max_pdf_pages=10, chunk_size=400, chunk_overlap=60)


@pytest.fixture
def parser() -> Iterator[ParserProcess]:
    process = ParserProcess(memory_bytes=1024 * 1024 * 1024)
    yield process
    process.close()


def test_overrunning_documents_fail_and_the_next_document_is_parsed(parser: ParserProcess) -> None:
    with pytest.raises(DocumentError) as caught:
        parser.run(b"<p>word</p>" * 200_000, DocumentFormat.HTML, OPTIONS, time_limit_s=0.05)
    assert caught.value.code == "parse_timeout" and "within 0.1s" in caught.value.message
    sections, chunks = parser.run(b"# Title\nSome text.", DocumentFormat.MARKDOWN, OPTIONS, time_limit_s=30)
    assert [s.heading for s in sections] == ["Title"] and "Some text." in chunks[0].text


def test_document_errors_and_memory_bombs_come_back_as_codes(parser: ParserProcess) -> None:
    with pytest.raises(DocumentError) as caught:
        parser.run(b"not a pdf", DocumentFormat.PDF, OPTIONS, time_limit_s=30)
    assert caught.value.code == "invalid_pdf"
    small = ParserProcess(memory_bytes=200 * 1024 * 1024)
    try:
        with pytest.raises(DocumentError) as caught:
            # Decoding 150 MB of text needs far more than the child's 200 MiB of address space.
            small.run(b"x" * 150_000_000, DocumentFormat.TEXT, OPTIONS, time_limit_s=60)
        assert caught.value.code in ("too_large_to_parse", "parser_crashed")
    finally:
        small.close()
