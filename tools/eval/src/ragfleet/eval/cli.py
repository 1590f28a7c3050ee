"""`make eval`: every eval set x chunking x search setting through the retrieval API, a report, a choice.

Settings are chosen on the development questions only (best MRR@10 averaged over the sets, then
hit@1); each set's held-out third is reported beside them to show whether the choice carries over.
"""

from __future__ import annotations

import argparse
import logging
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from ragfleet.common.embeddings import Embedder
from ragfleet.eval import semantic
from ragfleet.eval.dataset import ROOT, SETS, EvalSet, Question
from ragfleet.eval.metrics import Scores, score
from ragfleet.eval.runner import (
    Chunking,
    EmbeddingCache,
    Setting,
    ask,
    client_for,
    index_corpus,
    retrieval_service,
)

log = logging.getLogger("ragfleet.eval")

REPO = ROOT.parents[1]
# The default (600/90, ingestion's chunk_size_chars/chunk_overlap_chars) and the one it replaced.
CHUNKINGS = [Chunking(600, 90), Chunking(1000, 150)]


def quick_grid() -> list[Setting]:
    """The defaults and their nearest neighbours: for comparing chunkings (``--quick``)."""
    grid = [Setting("request defaults")]
    for alpha in (0.5, 0.6, 0.7):
        for centroid in (0.0, 1.0):
            grid.append(
                Setting(
                    f"hybrid relative_score a={alpha}, document rank, title 0.25, centroid {centroid}",
                    {"mode": "hybrid", "fusion": "relative_score", "alpha": alpha, "title_weight": 0.25,
                     "centroid_weight": centroid},
                )
            )  # fmt: skip
    grid.append(Setting("vector, chunk rank", {"mode": "vector", "rank": "chunk"}))
    return grid


def settings_grid() -> list[Setting]:
    grid = [Setting("request defaults")]
    for mode in ("vector", "bm25"):
        grid.append(Setting(f"{mode}, chunk rank", {"mode": mode, "rank": "chunk"}))
    for fusion in ("relative_score", "rrf"):
        for alpha in (0.5, 0.7):
            grid.append(
                Setting(
                    f"hybrid {fusion} a={alpha}, chunk rank",
                    {"mode": "hybrid", "fusion": fusion, "alpha": alpha, "rank": "chunk"},
                )
            )
    grid.append(
        Setting(
            "vector, document rank, title 0.5",
            {"mode": "vector", "title_weight": 0.5, "centroid_weight": 0.0},
        )
    )
    grid.append(
        Setting(
            "vector, document rank, title 0.25, centroid 1.0",
            {"mode": "vector", "title_weight": 0.25, "centroid_weight": 1.0},
        )
    )
    for fusion in ("relative_score", "rrf"):
        for alpha in (0.5, 0.6, 0.7, 0.8):
            for title in (0.0, 0.5, 1.0):
                grid.append(
                    Setting(
                        f"hybrid {fusion} a={alpha}, document rank, title {title}",
                        {
                            "mode": "hybrid",
                            "fusion": fusion,
                            "alpha": alpha,
                            "title_weight": title,
                            "centroid_weight": 0.0,
                        },
                    )
                )
    # The document's centroid (session 6): the mean of its chunks' vectors, against the query.
    for alpha in (0.5, 0.6, 0.7, 0.8):
        for title in (0.25, 0.5):
            for centroid in (0.5, 1.0, 1.5):
                grid.append(
                    Setting(
                        f"hybrid relative_score a={alpha}, document rank, title {title}, centroid {centroid}",
                        {"mode": "hybrid", "fusion": "relative_score", "alpha": alpha,
                         "title_weight": title, "centroid_weight": centroid},
                    )
                )  # fmt: skip
    return grid


def _row(eval_set: str, chunking: Chunking, setting: Setting, dev: Scores, held: Scores) -> dict[str, Any]:
    return {"set": eval_set, "chunking": str(chunking), "setting": setting.name, "request": setting.request,
            "dev": dev.as_dict(), "held_out": held.as_dict()}  # fmt: skip


def run(
    eval_sets: Sequence[EvalSet], work_dir: Path, chunkings: Sequence[Chunking], grid: Sequence[Setting]
) -> list[dict[str, Any]]:
    cache = EmbeddingCache(Embedder(), work_dir)
    rows = []
    with retrieval_service(work_dir / f"stack-{time.time():.0f}") as url, client_for(url) as client:
        for eval_set in eval_sets:
            documents, questions = eval_set.load()
            dev = [q for q in questions if not q.held_out]
            held = [q for q in questions if q.held_out]
            for chunking in chunkings:
                started = time.perf_counter()
                collection = f"{eval_set.name}-{chunking.collection}"
                chunks = index_corpus(client, documents, chunking, cache, collection)
                log.info("indexed %s %s: %d chunks in %.0f s", eval_set.name, chunking, chunks,
                         time.perf_counter() - started)  # fmt: skip
                for setting in grid:
                    dev_scores = score(ask(client, collection, dev, setting), [q.relevant for q in dev])
                    held_scores = score(ask(client, collection, held, setting), [q.relevant for q in held])
                    rows.append(_row(eval_set.name, chunking, setting, dev_scores, held_scores))
    return rows


def _combined(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per chunking x setting: each score averaged over the sets (each set counts once)."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault((row["chunking"], row["setting"]), []).append(row)
    combined = []
    for (chunking, setting), group in grouped.items():
        mean = {
            part: {m: sum(r[part][m] for r in group) / len(group) for m in group[0][part]}
            for part in ("dev", "held_out")
        }
        combined.append({"chunking": chunking, "setting": setting, "sets": [r["set"] for r in group], **mean})
    return combined


def best(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return max(_combined(rows), key=lambda r: (r["dev"]["mrr@10"], r["dev"]["hit@1"], r["dev"]["ndcg@10"]))


def _cells(row: dict[str, Any]) -> list[str]:
    return [
        f"{r['hit@1']:.3f} / {r['hit@5']:.3f} / {r['mrr@10']:.3f} / {r['ndcg@10']:.3f}"
        for r in (row["dev"], row["held_out"])
    ]


def markdown(rows: Sequence[dict[str, Any]], questions: dict[str, list[Question]], took_s: float) -> str:
    choice = best(rows)
    counts = ", ".join(
        f"{name}: {len(qs)} questions ({sum(not q.held_out for q in qs)} development, "
        f"{sum(q.held_out for q in qs)} held out)"
        for name, qs in questions.items()
    )
    lines = [
        "# make eval — results",
        "",
        f"Generated by `make eval` in {took_s:.0f} s on {platform.node()} ({platform.machine()}, "
        f"{platform.python_version()}). Sets — {counts}. Document-level: a search's chunks become a "
        "document ranking at each document's best chunk. Each cell: hit@1 / hit@5 / MRR@10 / nDCG@10.",
        "",
        f"**Best on the development questions (mean over the sets):** chunking {choice['chunking']}, "
        f"{choice['setting']} (held out, mean: hit@1 {choice['held_out']['hit@1']:.3f}, "
        f"MRR@10 {choice['held_out']['mrr@10']:.3f}).",
        "",
        "## Mean over the sets",
        "",
        "| chunking | setting | development | held out |",
        "| --- | --- | --- | --- |",
    ]
    for row in _combined(rows):
        cells = _cells(row)
        lines.append(f"| {row['chunking']} | {row['setting']} | {cells[0]} | {cells[1]} |")
    for name in questions:
        lines += [
            "",
            f"## Set `{name}`",
            "",
            "| chunking | setting | development | held out |",
            "| --- | --- | --- | --- |",
        ]
        for row in rows:
            if row["set"] == name:
                cells = _cells(row)
                lines.append(f"| {row['chunking']} | {row['setting']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ragfleet-eval", description=__doc__)
    parser.add_argument(
        "--work-dir", type=Path, default=REPO / ".run" / "eval", help="embedding cache, stack"
    )
    parser.add_argument("--report", type=Path, default=REPO / "docs" / "eval-results.md")
    parser.add_argument("--json", type=Path, default=None, help="also write every row as JSON here")
    parser.add_argument(
        "--chunking",
        action="append",
        default=None,
        help="SIZE/OVERLAP (repeatable; default 600/90 and 1000/150)",
    )
    parser.add_argument(
        "--set",
        action="append",
        choices=sorted(SETS),
        default=None,
        help="eval set (repeatable; default all)",
    )
    parser.add_argument("--quick", action="store_true", help="only the defaults and their neighbours")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per search otherwise
    chunkings = [Chunking(*map(int, c.split("/"))) for c in args.chunking] if args.chunking else CHUNKINGS
    eval_sets = [SETS[name] for name in (args.set or SETS)]
    questions = {eval_set.name: eval_set.load()[1] for eval_set in eval_sets}
    started = time.perf_counter()
    rows = run(eval_sets, args.work_dir, chunkings, quick_grid() if args.quick else settings_grid())
    took = time.perf_counter() - started
    report = markdown(rows, questions, took)
    if "sqlite" in questions:  # the paraphrases are of the SQLite questions
        sqlite_questions = questions["sqlite"]
        semantic_rows = semantic.measure(sqlite_questions, Embedder())
        paraphrases = len(semantic.PARAPHRASES_FILE.read_text(encoding="utf-8").splitlines())
        report += "\n" + semantic.markdown(semantic_rows, paraphrases, len(sqlite_questions))
    args.report.write_text(report, encoding="utf-8")
    if args.json:
        args.json.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
    choice = best(rows)
    log.info("best on development questions (mean over sets): %s, %s: %s; held out %s", choice["chunking"], choice["setting"],
             choice["dev"], choice["held_out"])  # fmt: skip
    log.info("report: %s", args.report)
    return 0
