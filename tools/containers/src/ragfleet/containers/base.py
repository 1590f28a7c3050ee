"""``make base-images``: the base images built locally, for machines that reach no registry.

- ``ragfleet-base/debian:bookworm``: ``debootstrap --variant=minbase bookworm`` imported as an
  image (about a minute; needs root and Debian's mirror, which apt already reaches here).
- ``ragfleet-base/python:3.11``: Debian's own python3 (3.11) on it, standing in for
  python:3.11-slim.
- ``ragfleet-base/uv:<version>``: ``FROM scratch`` with the uv binaries of uv's PyPI wheel, the
  version the Dockerfile's ``UV_IMAGE`` names (the uv that wrote uv.lock).
- ``ragfleet-base/nginx`` and ``ragfleet-base/redis``: Debian's NGINX and Redis, uid 10001, for
  ``make test-containers`` (its ingress stand-in and the chart's bundled Redis).

Each image is skipped when the engine already has it (``--rebuild`` forces it): layers may be
reused, never required.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ragfleet.containers.engine import REPO_ROOT, Engine, EngineError

log = logging.getLogger(__name__)

BASE_DIR = REPO_ROOT / "tools" / "containers" / "base"
PREFIX = "localhost/ragfleet-base"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SECURITY = "http://deb.debian.org/debian-security"


def uv_version(dockerfile: Path = REPO_ROOT / "Dockerfile") -> str:
    """The uv version of the Dockerfile's ``ARG UV_IMAGE=...:<version>`` (one place to change)."""
    match = re.search(r"^ARG UV_IMAGE=\S+:(\d+\.\d+\.\d+)\s*$", dockerfile.read_text(), re.MULTILINE)
    if match is None:
        raise EngineError(f"{dockerfile}: no `ARG UV_IMAGE=...:<version>` line")
    return match.group(1)


@dataclass(frozen=True)
class BaseImages:
    """The references ``make images`` and the harness use."""

    debian: str = f"{PREFIX}/debian:{DEBIAN_SUITE}"
    python: str = f"{PREFIX}/python:3.11-{DEBIAN_SUITE}"
    nginx: str = f"{PREFIX}/nginx:{DEBIAN_SUITE}"
    redis: str = f"{PREFIX}/redis:{DEBIAN_SUITE}"

    @property
    def uv(self) -> str:
        return f"{PREFIX}/uv:{uv_version()}"


def _debootstrap(engine: Engine, ref: str) -> None:
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).exists():
        raise EngineError(
            "debootstrap is missing: `bash tools/bootstrap.sh --containers` as root installs it"
        )
    with tempfile.TemporaryDirectory(prefix="ragfleet-rootfs-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        log.info("debootstrap --variant=minbase %s (about a minute)", DEBIAN_SUITE)
        result = subprocess.run(
            [debootstrap, "--variant=minbase", DEBIAN_SUITE, str(rootfs), DEBIAN_MIRROR],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise EngineError(f"debootstrap failed:\n{(result.stdout + result.stderr)[-3000:]}")
        # Point updates and security fixes at the image's apt too (debootstrap writes only the suite).
        (rootfs / "etc/apt/sources.list").write_text(
            f"deb {DEBIAN_MIRROR} {DEBIAN_SUITE} main\n"
            f"deb {DEBIAN_MIRROR} {DEBIAN_SUITE}-updates main\n"
            f"deb {DEBIAN_SECURITY} {DEBIAN_SUITE}-security main\n"
        )
        # What a container never needs: package caches, docs and man pages, the debootstrap log.
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
            for child in (rootfs / sub).glob("*"):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                elif child.name != "lock":
                    child.unlink(missing_ok=True)
        shutil.rmtree(rootfs / "debootstrap", ignore_errors=True)
        engine.import_rootfs(rootfs, ref)


def _uv_context(dest: Path, version: str) -> None:
    """Extract uv and uvx from the uv wheel (pip download, the same way k8scheck gets helm)."""
    from ragfleet.k8scheck.toolchain import _pip_download

    downloads = REPO_ROOT / ".tools" / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    wheels = sorted(downloads.glob(f"uv-{version}-*manylinux*x86_64*.whl"))
    if not wheels:
        _pip_download("uv", version, downloads)
        wheels = sorted(downloads.glob(f"uv-{version}-*.whl"))
    if not wheels:
        raise EngineError(f"pip downloaded no uv {version} wheel into {downloads}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        for name in ("uv", "uvx"):
            member = f"uv-{version}.data/scripts/{name}"
            (dest / name).write_bytes(wheel.read(member))
            (dest / name).chmod(0o755)


def build_base_images(engine: Engine, *, rebuild: bool = False) -> BaseImages:
    refs = BaseImages()
    if rebuild or not engine.image_exists(refs.debian):
        _debootstrap(engine, refs.debian)
    for ref, containerfile in (
        (refs.python, "python.Containerfile"),
        (refs.nginx, "nginx.Containerfile"),
        (refs.redis, "redis.Containerfile"),
    ):
        if rebuild or not engine.image_exists(ref):
            engine.build(
                tag=ref,
                context=BASE_DIR,
                containerfile=BASE_DIR / containerfile,
                build_args={"DEBIAN_IMAGE": refs.debian},
            )
    if rebuild or not engine.image_exists(refs.uv):
        with tempfile.TemporaryDirectory(prefix="ragfleet-uv-") as tmp:
            _uv_context(Path(tmp), uv_version())
            engine.build(tag=refs.uv, context=Path(tmp), containerfile=BASE_DIR / "uv.Containerfile")
    return refs
