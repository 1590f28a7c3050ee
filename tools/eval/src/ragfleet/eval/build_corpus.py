"""Rebuild `tools/eval/corpus/` from the SQLite documentation in Debian's `sqlite3-doc` package.

The SQLite documentation is in the public domain (Debian's copyright file for sqlite3-doc says
`License: public-domain`), so the converted pages are committed and `make eval` needs nothing
else. This script is how they were made, so anyone can check or redo it:

    apt-get download sqlite3-doc && dpkg-deb -x sqlite3-doc_*.deb /tmp/sqlite-doc
    uv run python -m ragfleet.eval.build_corpus /tmp/sqlite-doc/usr/share/doc/sqlite3

Each page becomes one Markdown document: its <title> as the top heading, its headings and
paragraphs in order; syntax diagrams (SVG) and navigation are dropped.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from selectolax.lexbor import LexborHTMLParser

# The SQL language pages, the type system and the table/index features around them: one
# reference text of ~50 documents, small enough to embed in a couple of minutes on 2 cores.
_LANG_PAGES = (
    "aggfunc altertable analyze attach comment conflict corefunc createindex createtable "
    "createtrigger createview createvtab datefunc delete detach dropindex droptable "
    "droptrigger dropview explain expr indexedby insert keywords mathfunc naming reindex "
    "replace returning savepoint select transaction update upsert vacuum with"
)
_OTHER_PAGES = "datatype3 autoinc rowidtable withoutrowid partialindex expridx gencol stricttables nulls isolation quirks"
PAGES = [f"lang_{name}" for name in _LANG_PAGES.split()] + _OTHER_PAGES.split()

_DROP = "svg, script, style, div.nosearch, div.menu, div.fancy_toc, div.imgcontainer"
_WS = re.compile(r"\s+")


def convert(html: str) -> str:
    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    title = _WS.sub(" ", title_node.text()).strip() if title_node else ""
    for node in tree.css(_DROP):
        node.decompose()
    lines = [f"# {title}", ""]
    body = tree.body
    assert body is not None
    for node in body.css("h1, h2, h3, h4, p, li, pre, dt, dd"):
        text = _WS.sub(" ", node.text()).strip()
        if not text or text.endswith(": hide") or text.startswith("This page last modified"):
            continue
        if node.tag in ("h1", "h2", "h3", "h4"):
            lines += ["", "#" * (int(node.tag[1]) + 1) + " " + text, ""]
        elif node.tag == "li":
            lines.append(f"- {text}")
        else:
            lines += [text, ""]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def main(argv: list[str]) -> int:
    source = Path(argv[0])
    target = Path(argv[1]) if len(argv) > 1 else Path(__file__).parents[3] / "corpus"
    target.mkdir(parents=True, exist_ok=True)
    for name in PAGES:
        html = (source / f"{name}.html").read_text(encoding="utf-8", errors="replace")
        (target / f"{name}.md").write_text(convert(html), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
