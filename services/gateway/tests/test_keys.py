from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from redis.asyncio import Redis

from ragfleet.devstack.processes import free_port, start_redis
from ragfleet.gateway.config import GatewaySettings
from ragfleet.gateway.keys import KeyStore, validate_names


def run_cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ragfleet.gateway.keys", *args],
        env={"RAGFLEET_GATEWAY_REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.integration
async def test_cli_prints_the_key_once_and_stores_only_its_hash(redis_url: str, redis: Redis) -> None:
    created = run_cli(redis_url, "create", "--tenant", "acme", "--collections", "handbook,faq")
    assert created.returncode == 0, created.stderr
    api_key = created.stdout.strip()
    assert api_key.startswith("rfk_")

    principal = await KeyStore(redis).lookup(api_key)
    assert principal is not None
    assert principal.tenant == "acme"
    assert principal.collections == {"handbook", "faq"}
    stored = [await redis.get(k) for k in await redis.keys("gw:apikey*")]
    assert all(api_key.encode() not in (value or b"") for value in stored)
    assert await redis.exists(f"gw:apikey:{hashlib.sha256(api_key.encode()).hexdigest()}")

    listed = run_cli(redis_url, "list", "--tenant", "acme")
    assert orjson.loads(listed.stdout.splitlines()[0])["key_id"] == principal.key_id
    assert api_key not in listed.stdout

    assert run_cli(redis_url, "revoke", principal.key_id).returncode == 0
    assert await KeyStore(redis).lookup(api_key) is None


def test_names_are_validated() -> None:
    with pytest.raises(ValueError, match="tenant"):
        validate_names("Acme Corp", ["default"])
    with pytest.raises(ValueError, match="collection"):
        validate_names("acme", ["../etc"])
    with pytest.raises(ValueError, match="at least one"):
        validate_names("acme", [])
    validate_names("acme", ["*"])


@pytest.mark.integration
def test_cli_finds_the_make_run_stack_and_its_password(tmp_path: Path) -> None:
    """No setting names a Redis: the CLI takes the running stack's from its run dir's stack.json."""
    port, password = free_port(), "dev-secret-0123456789"
    server = start_redis(port, tmp_path / "redis", role="state", password=password)
    try:
        run_dir = tmp_path / "repo" / ".run"
        run_dir.mkdir(parents=True)
        (run_dir / "stack.json").write_text(
            orjson.dumps(
                {"pid": os.getpid(), "state_redis_url": f"redis://:{password}@127.0.0.1:{port}/0"}
            ).decode()
        )
        created = subprocess.run(
            [
                sys.executable,
                "-m",
                "ragfleet.gateway.keys",
                "create",
                "--tenant",
                "acme",
                "--collections",
                "*",
            ],
            env={"PATH": "/usr/bin:/bin"},
            cwd=tmp_path / "repo",
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert created.returncode == 0, created.stderr
        client = redis.Redis(port=port, password=password)
        digest = hashlib.sha256(created.stdout.strip().encode()).hexdigest()
        assert client.exists(f"gw:apikey:{digest}")
        client.close()

        # The stack stopped (its pid gone): the CLI says where it looked and what to do.
        (run_dir / "stack.json").write_text(orjson.dumps({"pid": 2**22 + 1, "state_redis_url": "x"}).decode())
        failed = subprocess.run(
            [sys.executable, "-m", "ragfleet.gateway.keys", "--redis-url", f"redis://127.0.0.1:{free_port()}/0",
             "list"],
            env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path / "repo", capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert failed.returncode == 1
        assert "cannot reach the state Redis" in failed.stderr and "make run" in failed.stderr
    finally:
        server.stop()


@pytest.mark.integration
async def test_the_admin_key_authenticates_with_an_empty_key_store(start_gateway: Any) -> None:
    admin_key = "admin-" + "k" * 40
    gateway = start_gateway("gw-admin", {"ADMIN_KEY": admin_key, "ADMIN_KEY_TENANT": "ops"})
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        as_admin = await client.get("/v1/sessions/abc", headers={"Authorization": f"Bearer {admin_key}"})
        assert as_admin.status_code == 404, as_admin.text  # authenticated; the session just is not there
        wrong = await client.get("/v1/sessions/abc", headers={"Authorization": f"Bearer {admin_key}x"})
        assert wrong.status_code == 401


def test_a_short_admin_key_is_refused() -> None:
    with pytest.raises(ValueError, match="admin_key"):
        GatewaySettings(admin_key="too-short")
