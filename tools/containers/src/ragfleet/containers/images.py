"""``make images`` and ``make push``: every ragfleet image from the one Dockerfile.

The images and their build arguments are listed here once (the chart names the same images:
``<image.registry>/ragfleet-<service>:<tag>``). After the build each image's size and build time
are reported; labels carry the source, revision and version (OCI annotations).
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ragfleet.containers.base import BaseImages
from ragfleet.containers.engine import REPO_ROOT, Engine, EngineError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Image:
    service: str  # workspace package ragfleet-<service>, image ragfleet-<service>
    module: str  # default command: python -m <module>
    port: int
    package_dir: str

    def ref(self, registry: str, tag: str) -> str:
        return f"{registry}/ragfleet-{self.service}:{tag}"


IMAGES = (
    Image("gateway", "ragfleet.gateway", 8000, "services/gateway"),
    Image("retrieval", "ragfleet.retrieval", 8010, "services/retrieval"),
    Image("llm-proxy", "ragfleet.llm_proxy", 8020, "services/llm-proxy"),
    Image("ingestion", "ragfleet.ingestion", 8030, "services/ingestion"),
    Image("loadtests", "ragfleet.loadtests.run", 8089, "loadtests"),
)


@dataclass(frozen=True)
class Built:
    ref: str
    seconds: float
    size_bytes: int


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def revision() -> str:
    rev = _git("rev-parse", "HEAD") or "unknown"
    return (
        f"{rev}-dirty" if rev != "unknown" and _git("status", "--porcelain", "--untracked-files=no") else rev
    )


def source_url() -> str:
    return (
        os.environ.get("RAGFLEET_IMAGE_SOURCE")
        or _git("remote", "get-url", "origin")
        or ("https://github.com/ragfleet/ragfleet")
    )


def package_version(image: Image) -> str:
    data = tomllib.loads((REPO_ROOT / image.package_dir / "pyproject.toml").read_text())
    return str(data["project"]["version"])


def ca_bundle(explicit: str | None) -> Path | None:
    """The extra CA bundle for build steps: EXTRA_CA_BUNDLE, else the machine's SSL_CERT_FILE.

    A machine whose environment names a CA bundle (a network that re-signs TLS) needs it inside
    the build steps too; it goes in as a build secret, mounted for one step, never into a layer.
    """
    for candidate in (explicit, os.environ.get("SSL_CERT_FILE")):
        if candidate:
            path = Path(candidate)
            if not path.is_file():
                raise EngineError(f"CA bundle {path} is not a file")
            return path
    return None


def build_images(
    engine: Engine,
    *,
    registry: str,
    tag: str,
    base: BaseImages | None,
    extra_ca_bundle: str | None = None,
    only: list[str] | None = None,
) -> list[Built]:
    """Build the images; ``base`` (the local bases of ``make base-images``) replaces the
    Dockerfile's default python and uv images, which need a registry."""
    unknown = sorted(set(only or ()) - {image.service for image in IMAGES})
    if unknown:
        raise EngineError(
            f"no such image: {', '.join(unknown)} (images: {' '.join(i.service for i in IMAGES)})"
        )
    wanted = [image for image in IMAGES if not only or image.service in only]
    # SERVICES: the virtualenvs the Dockerfile's shared build stage makes, the same for every
    # image of this run, so the engine builds that stage once and every image reuses it.
    common_args = {
        "REVISION": revision(),
        "SOURCE": source_url(),
        "SERVICES": " ".join(image.service for image in wanted),
    }
    if base is not None:
        common_args |= {"PYTHON_IMAGE": base.python, "UV_IMAGE": base.uv}
    bundle = ca_bundle(extra_ca_bundle)
    secrets = {"ca_bundle": bundle} if bundle else {}
    built: list[Built] = []
    for image in wanted:
        ref = image.ref(registry, tag)
        started = time.monotonic()
        engine.build(
            tag=ref,
            context=REPO_ROOT,
            containerfile=REPO_ROOT / "Dockerfile",
            build_args=common_args
            | {
                "SERVICE": image.service,
                "MODULE": image.module,
                "PORT": str(image.port),
                "VERSION": tag if tag not in ("", "dev", "latest") else package_version(image),
            },
            secrets=secrets,
        )
        built.append(Built(ref, time.monotonic() - started, engine.image_size(ref)))
    return built


def report(built: list[Built]) -> str:
    lines = [f"{'image':<48} {'size':>10} {'build':>8}"]
    for b in built:
        lines.append(f"{b.ref:<48} {b.size_bytes / 1e6:>8.0f} MB {b.seconds:>7.0f}s")
    return "\n".join(lines)


def push_images(engine: Engine, *, registry: str, tag: str, only: list[str] | None = None) -> None:
    for image in IMAGES:
        if only and image.service not in only:
            continue
        ref = image.ref(registry, tag)
        if not engine.image_exists(ref):
            raise EngineError(f"{ref} is not built: run `make images REGISTRY={registry} TAG={tag}` first")
        log.info("pushing %s", ref)
        engine.push(ref)
