"""Checkov, a peer's Kubernetes policy suite, on every rendering; deliberate findings are listed
with their reasons in tools/k8scheck/checkov-exceptions.yaml and anything else fails.

Checkov runs through ``uvx`` at a pinned version, in a tool environment of its own: its ~100
dependencies stay out of the project's virtualenv. One run covers every rendering (its start-up
is most of its cost).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from ragfleet.k8scheck.toolchain import REPO_ROOT, ToolchainError

CHECKOV_VERSION = "3.3.30"
EXCEPTIONS_FILE = REPO_ROOT / "tools" / "k8scheck" / "checkov-exceptions.yaml"


@dataclass(frozen=True)
class Waiver:
    check: str
    resources: re.Pattern[str]
    reason: str


@dataclass(frozen=True)
class Finding:
    check: str
    name: str
    resource: str
    rendering: str


def load_exceptions(path: Path = EXCEPTIONS_FILE) -> list[Waiver]:
    entries = yaml.safe_load(path.read_text()) or []
    return [
        Waiver(e["check"], re.compile(e["resources"]), e["reason"].strip())
        for e in entries
        if e.get("reason", "").strip()  # an exception without a reason is no exception
    ]


def run_checkov(renderings: dict[str, str]) -> list[Finding]:
    """Failed checks of every rendering (name -> manifest text), from one Checkov run."""
    uvx = shutil.which("uvx")
    if not uvx:
        raise ToolchainError("uvx (part of uv) is needed to run Checkov")
    options = ["--framework", "kubernetes", "--skip-download", "--quiet", "--compact", "--output", "json"]
    with tempfile.TemporaryDirectory(prefix="ragfleet-checkov-") as tmp:
        for name, text in renderings.items():
            (Path(tmp) / f"{name}.yaml").write_text(text)
        result = subprocess.run(
            [uvx, "--from", f"checkov=={CHECKOV_VERSION}", "checkov", "--directory", tmp, *options],
            capture_output=True,
            text=True,
            check=False,
        )
    # Exit 1 means "some check failed"; anything else without a JSON report is Checkov's own failure.
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise ToolchainError(
            f"checkov did not run (exit {result.returncode}): {result.stderr[-2000:]}"
        ) from None
    reports = report if isinstance(report, list) else [report]
    return [
        Finding(f["check_id"], f["check_name"], f["resource"], Path(f["file_path"]).stem)
        for r in reports
        if isinstance(r, dict) and "results" in r
        for f in r["results"]["failed_checks"]
    ]


def problems(findings: list[Finding], exceptions: list[Waiver]) -> list[str]:
    """Findings no exception covers, and exceptions that cover nothing any more."""
    out = []
    used: set[int] = set()
    for finding in sorted(set(findings), key=lambda f: (f.check, f.resource, f.rendering)):
        covering = [
            i
            for i, e in enumerate(exceptions)
            if e.check == finding.check and e.resources.fullmatch(finding.resource)
        ]
        used.update(covering)
        if not covering:
            out.append(f"{finding.check} ({finding.name}): {finding.resource} in {finding.rendering}")
    for i, e in enumerate(exceptions):
        if i not in used:
            out.append(
                f"stale exception in {EXCEPTIONS_FILE.name}: {e.check} {e.resources.pattern} matches nothing"
            )
    return out
