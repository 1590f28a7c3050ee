"""API keys: created by a CLI, stored hashed in Redis, each bound to a tenant and its collections.

A key looks like ``rfk_<key id>_<secret>``: 256 random bits, so one SHA-256 of the whole key is a
safe record of it (no salt or slow hash needed: nothing to brute-force). Redis holds only that
digest; the key itself is printed once, at creation.

    python -m ragfleet.gateway.keys create --tenant acme --collections handbook,faq
    python -m ragfleet.gateway.keys list [--tenant acme]
    python -m ragfleet.gateway.keys revoke <key id>

Keys live in the state Redis. The CLI uses the one the gateway settings name
(``RAGFLEET_GATEWAY_STATE_REDIS_URL`` and friends) when any is set, else the one of a ``make run``
stack started from this directory (its run dir's ``stack.json``; ``--run-dir``), else the default.
``make key`` is ``create`` against that stack.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ragfleet.common.clients import create_redis
from ragfleet.common.contracts import NAME_PATTERN, is_valid_name
from ragfleet.common.errors import Forbidden
from ragfleet.gateway.config import GatewaySettings

ANY_COLLECTION = "*"
KEY_PREFIX = "rfk_"


def key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def _record_key(digest: str) -> str:
    return f"gw:apikey:{digest}"


def _id_key(key_id: str) -> str:
    return f"gw:apikey-id:{key_id}"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, its tenant, what it may read and how fast."""

    key_id: str
    tenant: str
    collections: frozenset[str]
    rate_per_s: float | None = None
    burst: int | None = None
    name: str = ""
    created_at: float = 0.0

    def may_use(self, collection: str) -> bool:
        return ANY_COLLECTION in self.collections or collection in self.collections

    def require_collection(self, collection: str) -> str:
        if not self.may_use(collection):
            raise Forbidden(
                f"this API key may not use collection {collection!r}",
                code="collection_forbidden",
                details={"collection": collection},
            )
        return collection

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "key_id": self.key_id,
                "tenant": self.tenant,
                "collections": sorted(self.collections),
                "rate_per_s": self.rate_per_s,
                "burst": self.burst,
                "name": self.name,
                "created_at": self.created_at,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Principal:
        data = orjson.loads(raw)
        return cls(
            key_id=data["key_id"],
            tenant=data["tenant"],
            collections=frozenset(data["collections"]),
            rate_per_s=data.get("rate_per_s"),
            burst=data.get("burst"),
            name=data.get("name", ""),
            created_at=data.get("created_at", 0.0),
        )


ADMIN_KEY_ID = "admin"


def admin_principal(settings: GatewaySettings) -> tuple[str, Principal] | None:
    """(digest, principal) of the admin key when one is configured."""
    if settings.admin_key is None:
        return None
    validate_names(settings.admin_key_tenant, [ANY_COLLECTION])
    principal = Principal(
        key_id=ADMIN_KEY_ID,
        tenant=settings.admin_key_tenant,
        collections=frozenset({ANY_COLLECTION}),
        name="admin (RAGFLEET_GATEWAY_ADMIN_KEY)",
    )
    return key_digest(settings.admin_key.get_secret_value()), principal


def validate_names(tenant: str, collections: Sequence[str]) -> None:
    if not is_valid_name(tenant):
        raise ValueError(f"tenant {tenant!r} must match {NAME_PATTERN}")
    for collection in collections:
        if collection != ANY_COLLECTION and not is_valid_name(collection):
            raise ValueError(f"collection {collection!r} must match {NAME_PATTERN} (or be '*')")
    if not collections:
        raise ValueError("a key needs at least one collection ('*' for all of the tenant's)")


class KeyStore:
    """Keys in Redis: ``gw:apikey:<sha256>`` → principal JSON, ``gw:apikey-id:<id>`` → sha256."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def create(
        self,
        tenant: str,
        collections: Sequence[str],
        *,
        name: str = "",
        rate_per_s: float | None = None,
        burst: int | None = None,
    ) -> tuple[str, Principal]:
        validate_names(tenant, collections)
        key_id = secrets.token_hex(6)
        api_key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        principal = Principal(
            key_id=key_id,
            tenant=tenant,
            collections=frozenset(collections),
            rate_per_s=rate_per_s,
            burst=burst,
            name=name,
            created_at=round(time.time(), 3),
        )
        digest = key_digest(api_key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(_record_key(digest), principal.to_json())
            pipe.set(_id_key(key_id), digest)
            await pipe.execute()
        return api_key, principal

    async def lookup(self, api_key: str) -> Principal | None:
        raw = await self.redis.get(_record_key(key_digest(api_key)))
        return Principal.from_json(raw) if raw else None

    async def revoke(self, key_id: str) -> bool:
        digest = await self.redis.get(_id_key(key_id))
        if not digest:
            return False
        await self.redis.delete(_record_key(digest.decode()), _id_key(key_id))
        return True

    async def list(self, tenant: str | None = None) -> list[Principal]:
        found: list[Principal] = []
        async for id_key in self.redis.scan_iter(match=_id_key("*"), count=500):
            digest = await self.redis.get(id_key)
            raw = await self.redis.get(_record_key(digest.decode())) if digest else None
            if raw:
                principal = Principal.from_json(raw)
                if tenant is None or principal.tenant == tenant:
                    found.append(principal)
        return sorted(found, key=lambda p: (p.tenant, p.created_at))


# The settings that name the state Redis: set any of them and the CLI uses the settings.
_REDIS_SETTINGS = frozenset({"redis_url", "state_redis_url", "state_redis_password", "state_redis_username"})


def running_stack_redis(run_dir: Path) -> str | None:
    """The state Redis URL of the ``make run`` stack whose run dir this is, if it is running.

    ``stack.json`` is written by ragfleet.devstack at start (owner-only permissions: the URL carries
    the dev password) and removed at stop: ``{"pid": ..., "state_redis_url": ...}``.
    """
    try:
        info = orjson.loads((run_dir / "stack.json").read_bytes())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None
    url = info.get("state_redis_url")
    return str(url) if url else None


def resolve_redis_url(args: argparse.Namespace, settings: GatewaySettings) -> tuple[str, str]:
    """(URL of the state Redis, where it came from), in the order the module docstring gives."""
    if args.redis_url:
        return args.redis_url, "--redis-url"
    if _REDIS_SETTINGS & settings.model_fields_set:
        return settings.state_redis, "the gateway settings (RAGFLEET_GATEWAY_*REDIS*)"
    found = running_stack_redis(args.run_dir)
    if found:
        return found, f"the make run stack of {args.run_dir}"
    return settings.state_redis, "the default settings (no make run stack found in " + f"{args.run_dir})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ragfleet.gateway.keys", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--redis-url", default=None, help="the state Redis (overrides everything else)")
    parser.add_argument(
        "--run-dir", type=Path, default=Path(".run"), help="a make run stack's run dir (default .run)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--collections", required=True, help="comma-separated; '*' for all of the tenant's")
    create.add_argument("--name", default="", help="a label for humans")
    create.add_argument("--rate", type=float, default=None, help="requests per second (default: the setting)")
    create.add_argument("--burst", type=int, default=None, help="burst size (default: the setting)")
    create.add_argument("--json", action="store_true", help="print the key and its record as JSON")
    listing = commands.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--tenant", default=None)
    revoke = commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    return parser


async def _run(args: argparse.Namespace, settings: GatewaySettings) -> int:
    url, source = resolve_redis_url(args, settings)
    redis = create_redis(settings, "state", url=url)
    store = KeyStore(redis)
    out = sys.stdout
    try:
        try:
            await redis.ping()
        except (RedisError, OSError) as exc:
            sys.stderr.write(
                f"error: cannot reach the state Redis named by {source}: {exc}. Start `make run` "
                "(then run this from its directory), or set RAGFLEET_GATEWAY_STATE_REDIS_URL "
                "(and RAGFLEET_GATEWAY_STATE_REDIS_PASSWORD) or --redis-url\n"
            )
            return 1
        if args.command == "create":
            collections = [c.strip() for c in args.collections.split(",") if c.strip()]
            api_key, principal = await store.create(
                args.tenant, collections, name=args.name, rate_per_s=args.rate, burst=args.burst
            )
            if args.json:
                record = orjson.loads(principal.to_json())
                out.write(orjson.dumps({"api_key": api_key, **record}).decode() + "\n")
            else:
                out.write(api_key + "\n")
                sys.stderr.write(
                    f"key id {principal.key_id}, tenant {principal.tenant}, collections "
                    f"{','.join(sorted(principal.collections))}; store it now, it is not shown again\n"
                )
        elif args.command == "list":
            for principal in await store.list(args.tenant):
                out.write(principal.to_json().decode() + "\n")
        elif args.command == "revoke":
            if not await store.revoke(args.key_id):
                sys.stderr.write(f"no key with id {args.key_id}\n")
                return 1
            sys.stderr.write(f"revoked {args.key_id}\n")
        return 0
    finally:
        await redis.aclose()  # type: ignore[attr-defined]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_run(args, GatewaySettings()))
    except ValueError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
