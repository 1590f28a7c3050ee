"""The evaluation set: documents (`corpus/*.md`, the SQLite docs, public domain) and graded questions.

Questions are split once, by their number, into a development part (what settings are chosen
on) and a held-out part (never used to choose; reported beside it, to show whether a choice
generalises or was fitted to the development questions).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[3]
CORPUS_DIR = ROOT / "corpus"
QUESTIONS_FILE = ROOT / "questions.jsonl"


@dataclass(frozen=True)
class Document:
    id: str
    data: bytes


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    relevant: dict[str, int]

    @property
    def held_out(self) -> bool:
        return int(self.id.lstrip("q")) % 3 == 0  # a third, spread over the whole file


def load_documents(directory: Path = CORPUS_DIR) -> list[Document]:
    return [Document(path.stem, path.read_bytes()) for path in sorted(directory.glob("*.md"))]


def load_questions(path: Path = QUESTIONS_FILE, documents: list[Document] | None = None) -> list[Question]:
    questions = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            raw = orjson.loads(line)
            questions.append(Question(raw["id"], raw["question"], dict(raw["relevant"])))
    if documents is not None:
        known = {doc.id for doc in documents}
        for question in questions:
            unknown = set(question.relevant) - known
            if unknown:
                raise ValueError(f"{question.id} judges unknown documents: {sorted(unknown)}")
    return questions
