from __future__ import annotations

import pytest

from ragfleet.k8scheck.toolchain import Toolchain, ToolchainError, ensure_all


@pytest.fixture(scope="session")
def tools() -> Toolchain:
    """helm, kubectl, hadolint and the CRD validators, installed into .tools/ on first use."""
    try:
        return ensure_all()
    except ToolchainError as error:
        pytest.skip(f"the Kubernetes toolchain cannot be installed here: {error}")
