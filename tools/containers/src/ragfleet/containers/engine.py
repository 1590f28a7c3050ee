"""The container engine: Docker (BuildKit) or Podman (Buildah), behind the few commands both share.

``CONTAINER_ENGINE=docker|podman`` picks one; unset, a Docker that answers wins, then Podman.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[5]


class EngineError(RuntimeError):
    """A container command failed; the message carries its output."""


@dataclass(frozen=True)
class Engine:
    name: str  # "docker" or "podman"
    binary: str

    def run(
        self, *args: str, check: bool = True, capture: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        command = [self.binary, *args]
        log.debug("%s", " ".join(command))
        result = subprocess.run(command, capture_output=capture, text=True, check=False, timeout=timeout)
        if check and result.returncode != 0:
            output = ((result.stderr or "") + (result.stdout or ""))[-3000:]
            raise EngineError(f"{' '.join(command[:4])} ... exited {result.returncode}:\n{output}")
        return result

    def build(
        self,
        *,
        tag: str,
        context: Path,
        containerfile: Path | None = None,
        build_args: dict[str, str] | None = None,
        secrets: dict[str, Path] | None = None,
        target: str | None = None,
    ) -> None:
        """Build one image, streaming the engine's output to our stderr (builds take minutes)."""
        args = ["build", "--tag", tag]
        if self.name == "podman":
            # Buildah caches intermediate layers only when asked; Docker always does.
            args.append("--layers")
        if containerfile is not None:
            args += ["--file", str(containerfile)]
        for key, value in (build_args or {}).items():
            args += ["--build-arg", f"{key}={value}"]
        for key, path in (secrets or {}).items():
            args += ["--secret", f"id={key},src={path}"]
        if target:
            args += ["--target", target]
        args.append(str(context))
        env = dict(os.environ, DOCKER_BUILDKIT="1")
        command = [self.binary, *args]
        log.info("%s", " ".join(command))
        result = subprocess.run(command, env=env, check=False)
        if result.returncode != 0:
            raise EngineError(f"building {tag} failed (exit {result.returncode}); the build output is above")

    def image_exists(self, ref: str) -> bool:
        if self.name == "podman":
            return self.run("image", "exists", ref, check=False).returncode == 0
        return self.run("image", "inspect", ref, check=False).returncode == 0

    def image_size(self, ref: str) -> int:
        return int(self.run("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip())

    def import_rootfs(self, rootfs: Path, ref: str) -> None:
        """``tar -C rootfs -c . | <engine> import - ref``."""
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        result = subprocess.run(
            [self.binary, "import", "-", ref], stdin=tar.stdout, capture_output=True, text=True, check=False
        )
        if tar.stdout is not None:
            tar.stdout.close()
        if tar.wait() != 0 or result.returncode != 0:
            raise EngineError(f"importing {rootfs} as {ref} failed:\n{result.stderr[-2000:]}")

    def push(self, ref: str) -> None:
        self.run("push", ref, capture=False)


def _answers(binary: str) -> bool:
    try:
        return subprocess.run([binary, "info"], capture_output=True, timeout=20, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def detect(preferred: str | None = None, names: Sequence[str] = ("docker", "podman")) -> Engine:
    """The engine named by ``CONTAINER_ENGINE`` (or ``preferred``), else the first that answers."""
    wanted = preferred or os.environ.get("CONTAINER_ENGINE") or ""
    if wanted:
        if wanted not in names:
            raise EngineError(f"CONTAINER_ENGINE={wanted!r}: expected one of {', '.join(names)}")
        binary = shutil.which(wanted)
        if binary is None:
            raise EngineError(f"CONTAINER_ENGINE={wanted} but {wanted} is not on PATH")
        return Engine(wanted, binary)
    for name in names:
        binary = shutil.which(name)
        if binary and _answers(binary):
            return Engine(name, binary)
    raise EngineError(
        "no container engine answers: install Docker, or podman + buildah "
        "(`bash tools/bootstrap.sh --containers` as root), or set CONTAINER_ENGINE"
    )
