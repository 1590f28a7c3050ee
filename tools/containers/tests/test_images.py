"""The image build's inputs: the context lets every workspace member in, the podman settings are
written once, the uv version has one source."""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

from ragfleet.containers.base import uv_version
from ragfleet.containers.engine import Engine, EngineError
from ragfleet.containers.images import IMAGES, build_images

ROOT = Path(__file__).resolve().parents[3]


def _excluded(path: str, patterns: list[str]) -> bool:
    # Only plain exclusions are allowed (no `!`), so "excluded" is: any pattern matches the path
    # or one of its parents, `**/` matching at any depth as both BuildKit and Buildah read it.
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        for candidate in candidates:
            if fnmatch.fnmatch(candidate, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatch(candidate.rsplit("/", 1)[-1], pattern[3:])
            ):
                return True
    return False


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_the_dockerignore_has_no_exceptions_buildah_reads_differently() -> None:
    assert not [p for p in dockerignore() if p.startswith("!") or p == "*"]


def test_every_workspace_member_reaches_the_build_context() -> None:
    members = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
    dirs = sorted({p.parent for glob in members for p in ROOT.glob(f"{glob}/pyproject.toml")})
    assert len(dirs) >= 10
    patterns = dockerignore()
    for member in dirs:
        rel = member.relative_to(ROOT).as_posix()
        assert not _excluded(f"{rel}/pyproject.toml", patterns), rel
        assert not _excluded(f"{rel}/src/ragfleet/x.py", patterns), rel
    assert _excluded("services/gateway/tests/test_x.py", patterns)
    assert _excluded(".venv/bin/python", patterns)


def test_every_image_package_exists() -> None:
    for image in IMAGES:
        project = tomllib.loads((ROOT / image.package_dir / "pyproject.toml").read_text())["project"]
        assert project["name"] == f"ragfleet-{image.service}"


def test_uv_version_comes_from_the_dockerfile(tmp_path: Path) -> None:
    assert uv_version().count(".") == 2
    other = tmp_path / "Dockerfile"
    other.write_text("ARG UV_IMAGE=ghcr.io/astral-sh/uv:1.2.3\n")
    assert uv_version(other) == "1.2.3"


def _configure_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "configure_podman", ROOT / "tools/containers/configure_podman.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_podman_settings_are_added_once_and_keep_the_rest() -> None:
    configure = _configure_module().configure
    fresh = configure("")
    assert tomllib.loads(fresh) == {"engine": {"runtime": "runc"}, "containers": {"default_ulimits": []}}
    assert configure(fresh) == fresh
    existing = '[containers]\nlog_driver = "k8s-file"\n\n[network]\nnetwork_backend = "netavark"\n'
    merged = tomllib.loads(configure(existing))
    assert merged["containers"] == {"log_driver": "k8s-file", "default_ulimits": []}
    assert merged["engine"] == {"runtime": "runc"} and merged["network"]["network_backend"] == "netavark"
    chosen = '[engine]\nruntime = "crun"\n'
    assert tomllib.loads(configure(chosen))["engine"]["runtime"] == "crun"  # an admin's choice wins


def test_the_dockerfile_builds_a_virtualenv_for_every_image_by_default() -> None:
    # `docker build --build-arg SERVICE=x .` by hand (no SERVICES) must work for every image.
    match = re.search(r'^ARG SERVICES="([^"]*)"$', (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert match, "the Dockerfile has no ARG SERVICES default"
    assert match.group(1).split() == [image.service for image in IMAGES]


def test_an_unknown_image_is_refused_before_anything_builds() -> None:
    engine = Engine("podman", "/nonexistent/podman")  # never called: the name is checked first
    with pytest.raises(EngineError, match="no such image: gatway"):
        build_images(engine, registry="r", tag="t", base=None, only=["gatway"])
