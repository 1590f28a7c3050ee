"""Write the small PDFs the sample corpus and the tests use, by hand (no PDF library needed).

    uv run python services/ingestion/scripts/make_pdfs.py

A PDF is a few numbered objects and a cross-reference table of their byte offsets; the text
pages use the standard Helvetica font, so no font file is embedded.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent / "sample-corpus"
TEST_DATA = HERE.parent / "tests" / "data"


def _escape(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def build_pdf(pages: list[str], *, text_layer: bool = True) -> bytes:
    """One page per string; without a text layer, each page is only a drawn shape (like a scan)."""
    objects: list[bytes] = []
    page_ids = [3 + 2 * i for i in range(len(pages))]
    font_id = 3 + 2 * len(pages)
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    for page_id, text in zip(page_ids, pages, strict=True):
        if text_layer:
            lines = [ln for para in text.split("\n") for ln in (textwrap.wrap(para, 85) or [""])]
            body = "\n".join(f"({_escape(line)}) Tj T*" for line in lines)
            stream = f"BT /F1 11 Tf 14 TL 60 780 Td\n{body}\nET".encode("latin-1", "replace")
        else:
            stream = b"0.2 0.4 0.8 rg 80 300 420 400 re f 0 0 0 rg 120 340 200 20 re f"
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 842] /Contents {page_id + 1} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body_bytes in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body_bytes + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


CORPUS_PDFS = {
    "ragfleet-operations-guide.pdf": [
        "ragfleet operations guide. This guide is for the SREs who run ragfleet in production. "
        "Every service exposes /healthz for liveness and /readyz for readiness; readiness reports each "
        "dependency by name, so an operator sees at once whether Redis or retrieval is missing.\n"
        "Scaling the ingestion workers. The ingestion API exports ragfleet_ingestion_queue_depth, the "
        "number of tasks waiting in the Celery queue. A KEDA ScaledObject or an HPA on that external "
        "metric adds workers when documents pile up and removes them when the queue drains.",
        "Upgrades. Roll the retrieval replicas one at a time: each one drains in-flight requests for "
        "up to the graceful shutdown period before it exits. The ingestion worker acknowledges a task "
        "only after it finished, so a worker killed during a rolling update loses no document: its task "
        "is delivered to another worker after the visibility timeout.\n"
        "Backups. The embedded index lives on a persistent volume; snapshot it. Redis holds only "
        "rebuildable state: caches, rate-limit buckets and job progress.",
    ],
    "vector-search-primer.pdf": [
        "A primer on vector search. Text is turned into vectors by an embedding model such as "
        "all-MiniLM-L6-v2, which maps a sentence to 384 numbers. Sentences with similar meaning get "
        "vectors that point in similar directions, so the cosine similarity of two vectors measures "
        "how related two texts are.\n"
        "Approximate nearest neighbour indexes such as HNSW build a layered graph over the vectors. A "
        "search walks the graph greedily from the top layer down; the ef parameter trades recall for "
        "speed. Hybrid search mixes vector scores with BM25 keyword scores, which helps with rare "
        "words, product codes and names that embeddings handle poorly.",
    ],
}


def main() -> None:
    for name, pages in CORPUS_PDFS.items():
        (CORPUS / name).write_bytes(build_pdf(pages))
    TEST_DATA.mkdir(parents=True, exist_ok=True)
    (TEST_DATA / "scanned-no-text-layer.pdf").write_bytes(
        build_pdf(["(an image of a page)"] * 2, text_layer=False)
    )


if __name__ == "__main__":
    main()
