"""CPU cost of document ranking's centroid term: `CollectionIndex.document_vectors` for a search's
~50 candidate documents, the first time (computed from the chunk vectors) and after (kept until a
write touches the document). Prints one line; quoted in docs/eval.md.

    uv run python services/retrieval/bench/bench_centroid.py [--docs 2000] [--chunks-per-doc 50]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ragfleet.retrieval.store.base import Chunk
from ragfleet.retrieval.store.collection_index import CollectionIndex
from ragfleet.retrieval.store.index_settings import IndexSettings

DIM = 384
CANDIDATES = 50  # search/service.py: CANDIDATES chunks per list, at most that many documents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--chunks-per-doc", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.docs * args.chunks_per_doc
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    with tempfile.TemporaryDirectory() as directory:
        index = CollectionIndex.open(Path(directory) / "c", DIM, IndexSettings())
        chunks = [
            Chunk(id=f"c{i}", document_id=f"d{i // args.chunks_per_doc}", text=f"w{i}", vector=vectors[i])
            for i in range(n)
        ]
        for start in range(0, n, 5000):
            index.upsert(chunks[start : start + 5000])
        cold, warm = [], []
        for _ in range(args.rounds):
            documents = [f"d{j}" for j in rng.choice(args.docs, CANDIDATES, replace=False)]
            index._centroid_fresh[:] = False  # as if no search had asked for these documents yet
            started = time.process_time()
            index.document_vectors(documents)
            cold.append(time.process_time() - started)
            started = time.process_time()
            index.document_vectors(documents)
            warm.append(time.process_time() - started)
        index.close()
    print(  # noqa: T201  # a benchmark's one line of output
        f"{args.docs} documents x {args.chunks_per_doc} chunks, {CANDIDATES} candidate documents: CPU per "
        f"search {np.median(cold) * 1e3:.2f} ms computed, {np.median(warm) * 1e3:.3f} ms kept (medians)"
    )


if __name__ == "__main__":
    main()
