"""No test double inside a package that an image installs (#20): the doubles live in ragfleet-testkit only."""

from __future__ import annotations

import re
from importlib.metadata import requires
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
# The packages `make images` builds an image from (the Dockerfile's SERVICE argument).
IMAGE_PACKAGES = [
    "ragfleet-gateway",
    "ragfleet-retrieval",
    "ragfleet-llm-proxy",
    "ragfleet-ingestion",
    "ragfleet-loadtests",
]


def workspace_closure(package: str) -> set[str]:
    """``package`` and every ragfleet package it depends on, transitively (extras included)."""
    seen: set[str] = set()
    todo = [package]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for requirement in requires(name) or []:
            dependency = re.split(r"[\s\[<>=!;~]", requirement, maxsplit=1)[0]
            if dependency.startswith("ragfleet-"):
                todo.append(dependency)
    return seen


@pytest.mark.parametrize("package", IMAGE_PACKAGES)
def test_no_image_package_depends_on_the_testkit(package: str) -> None:
    assert "ragfleet-testkit" not in workspace_closure(package)


def test_no_double_left_in_a_shipped_source_tree() -> None:
    shipped = (
        [p for p in (ROOT / "services").glob("*/src")]
        + [ROOT / "tools" / name / "src" for name in ("devstack", "ops")]
        + [ROOT / "loadtests" / "src"]
    )
    doubles = [
        path.relative_to(ROOT)
        for tree in shipped
        for path in tree.rglob("*")
        if re.search(r"(^|_)(fake|testing|pytest_plugin)", path.stem) and "__pycache__" not in path.parts
    ]
    assert doubles == []
