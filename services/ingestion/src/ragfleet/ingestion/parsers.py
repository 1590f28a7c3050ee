"""Bytes in, sections of text out: plain text, Markdown, HTML and PDF.

Every way a document can be wrong raises ``DocumentError`` with a stable code, which the worker
records against that document; nothing here may take the worker down.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from enum import StrEnum

from selectolax.lexbor import LexborHTMLParser


class DocumentFormat(StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"
    HTML = "html"
    PDF = "pdf"


EXTENSIONS: dict[str, DocumentFormat] = {
    ".txt": DocumentFormat.TEXT,
    ".text": DocumentFormat.TEXT,
    ".md": DocumentFormat.MARKDOWN,
    ".markdown": DocumentFormat.MARKDOWN,
    ".html": DocumentFormat.HTML,
    ".htm": DocumentFormat.HTML,
    ".pdf": DocumentFormat.PDF,
}
MEDIA_TYPES: dict[str, DocumentFormat] = {
    "text/plain": DocumentFormat.TEXT,
    "text/markdown": DocumentFormat.MARKDOWN,
    "text/x-markdown": DocumentFormat.MARKDOWN,
    "text/html": DocumentFormat.HTML,
    "application/xhtml+xml": DocumentFormat.HTML,
    "application/pdf": DocumentFormat.PDF,
}


class DocumentError(Exception):
    """This document cannot be ingested as it is; retrying will not help."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Section:
    """A run of text under one heading (``heading`` is empty before the first one)."""

    heading: str
    text: str


def format_for(filename: str | None, media_type: str | None) -> DocumentFormat | None:
    """The format named by a file's extension, else by its declared media type; None if unsupported."""
    if filename:
        dot = filename.rfind(".")
        if dot >= 0 and (found := EXTENSIONS.get(filename[dot:].lower())):
            return found
    if media_type:
        return MEDIA_TYPES.get(media_type.split(";")[0].strip().lower())
    return None


def parse(
    data: bytes, fmt: DocumentFormat, *, max_html_depth: int = 1000, max_pdf_pages: int = 2000
) -> list[Section]:
    if not data.strip():
        raise DocumentError("empty_document", "the document is empty")
    if fmt is DocumentFormat.PDF:
        sections = _parse_pdf(data, max_pdf_pages)
    else:
        text = decode_text(data)
        if fmt is DocumentFormat.HTML:
            sections = _parse_html(text, max_html_depth)
        elif fmt is DocumentFormat.MARKDOWN:
            sections = _parse_markdown(text)
        else:
            sections = [Section("", _normalise(text))]
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise DocumentError("no_text", "the document holds no extractable text")
    return sections


# --- text -------------------------------------------------------------------------------------

# Control characters other than tab, newline, carriage return and form feed: text never has many.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM) or UTF-16 with a BOM; anything else, or binary, is refused."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise DocumentError("undecodable", f"invalid UTF-16 at byte {exc.start}") from exc
    else:
        if b"\x00" in data[:65536]:
            raise DocumentError("binary_content", "the document contains NUL bytes: binary data, not text")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DocumentError(
                "undecodable", f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
            ) from exc
    sample = text[:65536]
    if sample and len(_CONTROL.findall(sample)) > len(sample) * 0.01:
        raise DocumentError(
            "binary_content", "the document is mostly control characters: binary data, not text"
        )
    return text


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = re.sub(r"[ \t\f\v]+", " ", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# --- Markdown ---------------------------------------------------------------------------------

# Every pattern on untrusted text here must be linear: no two adjacent quantifiers that can match
# the same characters (the old heading pattern ``\s+(.+?)\s*#*\s*$`` was cubic in a line of
# spaces). Headings are therefore read with string methods, not a regex.
_MD_FENCES = ("```", "~~~")


def markdown_heading(line: str) -> str | None:
    """The text of an ATX heading line (``## Title ##``), or None when the line is not one."""
    stripped = line.lstrip(" ")
    if len(line) - len(stripped) > 3 or not stripped.startswith("#"):
        return None
    level = len(stripped) - len(stripped.lstrip("#"))
    rest = stripped[level:]
    if level > 6 or (rest and not rest[0].isspace()):
        return None
    text = rest.strip()
    # A closing run of '#' counts only when a space separates it from the title (or it is all).
    closed = text.rstrip("#")
    if not closed or closed[-1].isspace():
        text = closed.rstrip()
    return text or None


def _is_fence(line: str) -> bool:
    stripped = line.lstrip(" ")
    return len(line) - len(stripped) <= 3 and stripped.startswith(_MD_FENCES)


def _parse_markdown(text: str) -> list[Section]:
    sections: list[Section] = []
    heading, in_fence = "", False
    lines: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if _is_fence(line):
            in_fence = not in_fence
        title = None if in_fence else markdown_heading(line)
        if title is not None:
            sections.append(Section(heading, _normalise("\n".join(lines))))
            heading, lines = title, [title]
        else:
            lines.append(line)
    sections.append(Section(heading, _normalise("\n".join(lines))))
    return sections


# --- HTML -------------------------------------------------------------------------------------

# A start or end tag: its name, then anything up to the next '>' that is not another '<'. The
# possessive quantifiers (``*+``) never give characters back, so a failed match costs the
# characters up to the next '<' once: linear, where the old lazy ``[^>]*?`` rescanned to the end
# of the input from every '<' of an unclosed tag (quadratic).
_TAG = re.compile(rb"<(/?)([a-zA-Z][a-zA-Z0-9-]*+)([^<>]*+)>")
# Elements that never have a closing tag, or whose closing tag HTML lets authors leave out.
_NO_DEPTH = frozenset(
    b"area base br col embed hr img input link meta source track wbr "
    b"p li dt dd tr td th thead tbody tfoot option optgroup colgroup caption rb rt rtc rp".split()
)
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
# Elements whose text is taken whole (what is nested inside them is part of that text).
_BLOCKS = frozenset({"p", "li", "pre", "blockquote", "td", "th", "dt", "dd", "figcaption", "title"})


def html_depth(raw: bytes) -> int:
    """Deepest element nesting, counted with a flat scan (no tree, no recursion)."""
    depth = deepest = 0
    for match in _TAG.finditer(raw):
        if match.group(2).lower() in _NO_DEPTH or match.group(3).endswith(b"/"):
            continue
        if match.group(1):
            depth = max(0, depth - 1)
        else:
            depth += 1
            deepest = max(deepest, depth)
    return deepest


def _parse_html(text: str, max_depth: int) -> list[Section]:
    # The HTML parser's cost grows with the square of nesting depth (minutes for 200k nested
    # divs), so depth is measured by a linear scan first and pathological documents refused.
    depth = html_depth(text.encode("utf-8", "replace"))
    if depth > max_depth:
        raise DocumentError("html_too_deep", f"HTML nested {depth} levels deep (limit {max_depth})")
    tree = LexborHTMLParser(text)
    tree.strip_tags(["script", "style", "noscript", "template", "svg", "head"])
    root = tree.body or tree.root
    if root is None:
        return []
    sections: list[Section] = []
    heading = ""
    parts: list[str] = []
    loose: list[str] = []  # text outside any block (a bare <div>'s), joined as it comes

    def flush_loose() -> None:
        if joined := " ".join("".join(loose).split()):
            parts.append(joined)
        loose.clear()

    # One depth-first walk, each node visited once: a block's text is taken whole and its subtree
    # skipped (asking every block whether it sits inside another would cost depth x blocks).
    node = root.child
    while node is not None:
        tag = node.tag
        descend = False
        if tag == "-text":
            loose.append(node.text_content or "")
        elif tag in _HEADINGS or tag in _BLOCKS:
            flush_loose()
            block_text = " ".join(node.text(separator=" ").split())
            if block_text and tag in _HEADINGS:
                sections.append(Section(heading, "\n\n".join(parts)))
                heading, parts = block_text, [block_text]
            elif block_text:
                parts.append(block_text)
        else:
            descend = node.child is not None
            if tag in ("br", "div", "section", "article", "header", "footer", "main", "nav", "aside"):
                loose.append(" ")
        if descend:
            node = node.child
            continue
        # Next sibling, or the next sibling of the nearest ancestor that has one.
        while node is not None and node.next is None:
            node = node.parent
            if node is None or node.mem_id == root.mem_id:
                node = None
                break
        node = node.next if node is not None else None
    flush_loose()
    sections.append(Section(heading, "\n\n".join(parts)))
    return sections


# --- PDF --------------------------------------------------------------------------------------


def _parse_pdf(data: bytes, max_pages: int) -> list[Section]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    if not data.lstrip()[:5] == b"%PDF-":
        raise DocumentError("invalid_pdf", "not a PDF: the file does not start with %PDF-")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise DocumentError("encrypted_pdf", "the PDF is encrypted")
        if len(reader.pages) > max_pages:
            raise DocumentError(
                "too_many_pages", f"the PDF has {len(reader.pages)} pages (limit {max_pages})"
            )
        pages = [page.extract_text() or "" for page in reader.pages]
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        raise DocumentError(
            "invalid_pdf", f"the PDF cannot be read: {type(exc).__name__}: {exc}"[:300]
        ) from exc
    if not any(page.strip() for page in pages):
        raise DocumentError(
            "no_text_layer", "the PDF has no text layer (scanned images?); OCR it before ingesting"
        )
    return [Section(f"page {number}", _normalise(text)) for number, text in enumerate(pages, 1)]
