"""Fixtures: a fake Kubernetes API server on loopback and a kubeconfig pointing at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ragfleet.testkit.kube.clusters import healthy
from ragfleet.testkit.kube.fake_apiserver import FakeKubeApiServer, Scenario


@dataclass
class FakeCluster:
    server: FakeKubeApiServer
    kubeconfig: Path

    def use(self, scenario: Scenario) -> FakeCluster:
        self.server.set_scenario(scenario)
        return self

    def args(self, *args: str) -> list[str]:
        """CLI arguments with the kubeconfig that points at the fake API."""
        return ["--kubeconfig", str(self.kubeconfig), *args]


@pytest.fixture
def fake_cluster(tmp_path: Path) -> Iterator[FakeCluster]:
    """The fake API serving the healthy scenario; switch with ``fake_cluster.use(...)``."""
    server = FakeKubeApiServer(healthy())
    server.start()
    try:
        yield FakeCluster(server, server.write_kubeconfig(tmp_path / "kubeconfig.yaml"))
    finally:
        server.stop()


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Runs ``ragfleet-ops`` in-process: (exit code, stdout, stderr)."""
    from ragfleet.ops.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
