"""``ragfleet-ops create-key`` against the fake API: a Secret with a fresh key, never printed,
never overwritten."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from ragfleet.ops.keys import KEY_PREFIX

# The fake Kubernetes API is a real HTTP server on a loopback port: integration by the marker rule.
pytestmark = pytest.mark.integration


def _secret_value(stored: dict[str, Any], key: str) -> str:
    if "stringData" in stored:
        return str(stored["stringData"][key])
    return base64.b64decode(stored["data"][key]).decode()


def test_create_key_writes_a_fresh_key_into_a_secret_and_prints_none(
    fake_cluster: Any, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    code, out, err = run_cli(
        *fake_cluster.args("create-key", "-n", "ragfleet", "--secret", "ragfleet-admin-key")
    )
    assert code == 0, err
    stored = fake_cluster.server.secrets[("ragfleet", "ragfleet-admin-key")]
    value = _secret_value(stored, "admin-key")
    assert value.startswith(KEY_PREFIX + "admin_") and len(value) > 40
    assert value not in out and value not in err
    assert "Created Secret ragfleet-admin-key" in out
    assert stored["metadata"]["labels"] == {"app.kubernetes.io/part-of": "ragfleet"}

    # A second run keeps the key every client may already use.
    code, out, _ = run_cli(
        *fake_cluster.args("create-key", "-n", "ragfleet", "--secret", "ragfleet-admin-key")
    )
    assert code == 0 and "already exists" in out
    assert (
        _secret_value(fake_cluster.server.secrets[("ragfleet", "ragfleet-admin-key")], "admin-key") == value
    )


def test_each_new_secret_gets_its_own_key(
    fake_cluster: Any, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    for name in ("one", "two"):
        assert (
            run_cli(*fake_cluster.args("create-key", "-n", "ragfleet", "--secret", name, "--key", "k"))[0]
            == 0
        )
    one, two = (_secret_value(fake_cluster.server.secrets[("ragfleet", n)], "k") for n in ("one", "two"))
    assert one != two
