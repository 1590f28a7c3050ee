from __future__ import annotations

import hashlib
import subprocess
import sys

import orjson
import pytest
from redis.asyncio import Redis

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
