from __future__ import annotations

from pathlib import Path

import pytest

from ragfleet.ingestion.parsers import DocumentError, DocumentFormat, format_for, html_depth, parse

DATA = Path(__file__).parent / "data"


def codes(data: bytes, fmt: DocumentFormat) -> str:
    with pytest.raises(DocumentError) as caught:
        parse(data, fmt)
    return caught.value.code


def test_formats_from_extension_then_media_type() -> None:
    assert format_for("a/b/Guide.MD", None) is DocumentFormat.MARKDOWN
    assert format_for("page.htm", "text/plain") is DocumentFormat.HTML
    assert format_for("upload", "application/pdf; charset=binary") is DocumentFormat.PDF
    assert format_for("tool.exe", "application/octet-stream") is None


def test_markdown_sections_follow_headings_but_not_inside_code_fences() -> None:
    sections = parse(
        b"intro\n# One\nfirst\n```\n# not a heading\n```\n## Two\nsecond", DocumentFormat.MARKDOWN
    )
    assert [s.heading for s in sections] == ["", "One", "Two"]
    assert "# not a heading" in sections[1].text


def test_html_drops_scripts_and_styles_and_keeps_headings() -> None:
    html = b"<html><head><style>x{}</style></head><body><script>evil()</script><h2>Title</h2><ul><li><p>item</p></li></ul></body></html>"
    sections = parse(html, DocumentFormat.HTML)
    assert sections[-1].heading == "Title"
    text = " ".join(s.text for s in sections)
    assert "evil" not in text and "x{}" not in text and text.count("item") == 1


def test_deep_html_is_refused_before_parsing() -> None:
    deep = b"<div>" * 5000 + b"x" + b"</div>" * 5000
    assert html_depth(deep) == 5000
    assert codes(deep, DocumentFormat.HTML) == "html_too_deep"
    assert html_depth(b"<p>a<p>b<br><img src=x><li>c") == 0


def test_hostile_bytes_get_codes() -> None:
    assert codes(b"", DocumentFormat.TEXT) == "empty_document"
    assert codes(b"ab\x00cd" * 10, DocumentFormat.TEXT) == "binary_content"
    assert codes(bytes(range(1, 32)) * 50, DocumentFormat.TEXT) == "binary_content"
    assert codes("caf\xe9".encode("latin-1"), DocumentFormat.MARKDOWN) == "undecodable"
    assert codes(b"not a pdf", DocumentFormat.PDF) == "invalid_pdf"
    assert codes(b"%PDF-1.4 garbage", DocumentFormat.PDF) == "invalid_pdf"
    assert codes((DATA / "scanned-no-text-layer.pdf").read_bytes(), DocumentFormat.PDF) == "no_text_layer"


def test_utf16_with_bom_and_pdf_text_layer() -> None:
    assert parse("hello there".encode("utf-16"), DocumentFormat.TEXT)[0].text == "hello there"
    corpus_pdf = Path(__file__).parents[1] / "sample-corpus" / "vector-search-primer.pdf"
    assert "HNSW" in parse(corpus_pdf.read_bytes(), DocumentFormat.PDF)[0].text


def test_markdown_headings_are_read_without_a_regex() -> None:
    from ragfleet.ingestion.parsers import markdown_heading

    assert markdown_heading("## Title ##") == "Title"
    assert markdown_heading("   # C# tips") == "C# tips"
    assert markdown_heading("# Issue #12") == "Issue #12"
    assert markdown_heading("#hashtag") is None
    assert markdown_heading("    # indented code") is None
    assert markdown_heading("####### seven") is None
    assert markdown_heading("#" + " " * 10_000) is None
    assert markdown_heading("# a" + " " * 10_000 + "#x") == "a" + " " * 10_000 + "#x"


def test_html_keeps_text_outside_blocks_once() -> None:
    html = b"<body><div>Loose <b>bold</b> words</div><p>A paragraph.</p><h1>Next</h1><div>more</div></body>"
    sections = parse(html, DocumentFormat.HTML)
    assert [s.heading for s in sections] == ["", "Next"]
    assert sections[0].text == "Loose bold words\n\nA paragraph."
    assert sections[1].text == "Next\n\nmore"


def test_unclosed_tags_still_count_towards_depth() -> None:
    assert html_depth(b"<b>" * 50 + b"<a href='x'" * 1000) == 50
    assert html_depth(b"<div/><div></div>") == 1
