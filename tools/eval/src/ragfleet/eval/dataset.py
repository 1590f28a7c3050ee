"""The evaluation sets: documents (`corpus/*.md`) and graded questions (`questions.jsonl`).

Two sets of different kinds of text, so that a setting chosen on one is checked on the other:
``sqlite`` (`tools/eval/`: the SQLite SQL reference pages, public domain, 47 documents, 64
questions) and ``lua`` (`tools/eval/lua/`: the Lua 5.2 reference manual split by section, Expat
licence, 63 documents, 50 questions).

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
class EvalSet:
    name: str
    root: Path  # holds corpus/*.md and questions.jsonl

    @property
    def corpus_dir(self) -> Path:
        return self.root / "corpus"

    @property
    def questions_file(self) -> Path:
        return self.root / "questions.jsonl"

    def load(self) -> tuple[list[Document], list[Question]]:
        documents = load_documents(self.corpus_dir)
        return documents, load_questions(self.questions_file, documents)


SETS = {"sqlite": EvalSet("sqlite", ROOT), "lua": EvalSet("lua", ROOT / "lua")}


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
