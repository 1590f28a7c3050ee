"""The semantic cache's threshold, measured: paraphrases that hit, distinct questions that falsely hit.

A cache holding every development-and-held-out question is asked (a) each paraphrase in
`paraphrases.jsonl` — a hit is right when the matched question has the same answering document,
and (b) each question against all the *other* questions — any hit there whose answering
document differs is a false hit. Cosines come from the same model retrieval embeds with.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import orjson

from ragfleet.common.embeddings import Embedder
from ragfleet.eval.dataset import ROOT, Question

PARAPHRASES_FILE = ROOT / "paraphrases.jsonl"
THRESHOLDS = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)


def _answers(question: Question) -> set[str]:
    return {doc for doc, grade in question.relevant.items() if grade == 2}


def measure(
    questions: Sequence[Question], embedder: Embedder, path: Path = PARAPHRASES_FILE
) -> list[dict[str, float]]:
    by_id = {q.id: q for q in questions}
    paraphrases = [
        orjson.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    asked = embedder.embed([q.text for q in questions])
    rephrased = embedder.embed([p["question"] for p in paraphrases])
    rows = []
    for threshold in THRESHOLDS:
        right = wrong = 0
        for paraphrase, vector in zip(paraphrases, rephrased, strict=True):
            similarities = asked @ vector
            best = int(np.argmax(similarities))
            if similarities[best] >= threshold:
                if _answers(questions[best]) & _answers(by_id[paraphrase["of"]]):
                    right += 1
                else:
                    wrong += 1
        false_hits = 0
        for index, question in enumerate(questions):
            similarities = asked @ asked[index]
            similarities[index] = -1.0
            best = int(np.argmax(similarities))
            if similarities[best] >= threshold and not (_answers(questions[best]) & _answers(question)):
                false_hits += 1
        rows.append({
            "threshold": threshold,
            "paraphrase_hit_rate": right / len(paraphrases),
            "paraphrase_wrong": wrong,
            "false_hit_rate": false_hits / len(questions),
        })  # fmt: skip
    return rows


def markdown(rows: Sequence[dict[str, float]], paraphrases: int, questions: int) -> str:
    lines = [
        "## Semantic cache threshold",
        "",
        f"{paraphrases} paraphrases asked of a cache holding all {questions} questions; each question "
        "asked of a cache holding all the others (a hit there with another answering document is a false hit).",
        "",
        "| threshold | paraphrases that hit (right document) | paraphrase hits on a wrong question | false-hit rate on distinct questions |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['threshold']:.2f} | {row['paraphrase_hit_rate']:.3f} | {int(row['paraphrase_wrong'])} "
            f"| {row['false_hit_rate']:.3f} |"
        )
    return "\n".join(lines) + "\n"
