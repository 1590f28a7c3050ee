"""Build the second evaluation set's corpus (`tools/eval/lua/corpus/`) from the Lua 5.2 manual
in Debian's `lua5.2-doc` package.

Why a second set: settings chosen on one text can fit that text (the SQLite pages are SQL
statement references with titles like "DROP VIEW"); a language manual of long prose sections,
numbered headings and library function entries is another kind of text, so a default change
must hold on both. The Lua manual is under the Expat (MIT) licence (Debian's copyright file
for lua5.2-doc says `License: Expat`), so the converted sections are committed:

    apt-get download lua5.2-doc && dpkg-deb -x lua5.2-doc_*.deb /tmp/lua-doc
    uv run python -m ragfleet.eval.build_lua_corpus /tmp/lua-doc/usr/share/doc/lua5.2/manual.html

The manual is one HTML page; each numbered section ("3.3.5 &ndash; For Statement") becomes one
document, from its heading to the next numbered heading, its title the heading's text.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ragfleet.eval.build_corpus import convert

_SECTION = re.compile(r'<h([1-3])>\s*([0-9.]+) &ndash; <a name="([0-9.]+)">(.*?)</a>\s*</h\1>', re.S)
_TAGS = re.compile(r"<[^>]+>")


def sections(html: str) -> list[tuple[str, str, str]]:
    """(number, title, the section's HTML) in the manual's order."""
    found = list(_SECTION.finditer(html))
    end_of_manual = html.find("<h1>", found[-1].end()) if found else -1
    out = []
    for i, match in enumerate(found):
        stop = (
            found[i + 1].start()
            if i + 1 < len(found)
            else (end_of_manual if end_of_manual > 0 else len(html))
        )
        title = _TAGS.sub("", match.group(4)).strip()
        out.append((match.group(2), title, html[match.end() : stop]))
    return out


def document_id(number: str, title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return f"s{number.replace('.', '_')}-{slug}"[:63].rstrip("-")


def main(argv: list[str]) -> int:
    source = Path(argv[0])
    target = Path(argv[1]) if len(argv) > 1 else Path(__file__).parents[3] / "lua" / "corpus"
    target.mkdir(parents=True, exist_ok=True)
    html = source.read_text(encoding="utf-8", errors="replace")
    for number, title, body in sections(html):
        page = f"<html><head><title>{title}</title></head><body>{body}</body></html>"
        (target / f"{document_id(number, title)}.md").write_text(convert(page), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
