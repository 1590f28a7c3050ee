"""The Checkov waiver rules: only listed, reasoned findings pass; a stale waiver fails too."""

from __future__ import annotations

import re
from pathlib import Path

from ragfleet.k8scheck.checkov import EXCEPTIONS_FILE, Finding, Waiver, load_exceptions, problems


def _finding(check: str, resource: str) -> Finding:
    return Finding(check, "a check", resource, "defaults")


def test_a_finding_no_waiver_covers_fails_and_a_covered_one_passes() -> None:
    waivers = [Waiver("CKV_K8S_43", re.compile(r"Deployment\.[^.]+\.ragfleet-gateway"), "built per release")]
    assert problems([_finding("CKV_K8S_43", "Deployment.default.ragfleet-gateway")], waivers) == []
    new = problems(
        [
            _finding("CKV_K8S_43", "Deployment.default.ragfleet-gateway"),
            _finding("CKV_K8S_43", "StatefulSet.default.ragfleet-redis-state"),
            _finding("CKV_K8S_40", "Deployment.default.ragfleet-gateway"),
        ],
        waivers,
    )
    assert new == [
        "CKV_K8S_40 (a check): Deployment.default.ragfleet-gateway in defaults",
        "CKV_K8S_43 (a check): StatefulSet.default.ragfleet-redis-state in defaults",
    ]


def test_a_waiver_that_matches_nothing_is_reported() -> None:
    waivers = [Waiver("CKV_K8S_11", re.compile(".*"), "no CPU limits")]
    assert problems([], waivers) == [
        "stale exception in checkov-exceptions.yaml: CKV_K8S_11 .* matches nothing"
    ]


def test_a_waiver_without_a_reason_does_not_count(tmp_path: Path) -> None:
    path = tmp_path / "waivers.yaml"
    path.write_text("- check: CKV_K8S_11\n  resources: .*\n  reason: ''\n")
    assert load_exceptions(path) == []


def test_every_committed_waiver_has_a_reason() -> None:
    raw = EXCEPTIONS_FILE.read_text().count("- check:")
    assert len(load_exceptions()) == raw > 0
