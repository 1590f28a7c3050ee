"""Authentication (API key → principal) and the per-key rate limit, as one dependency.

Keys come in ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Browsers cannot set headers
on a WebSocket, so WebSockets also take the key as a subprotocol (``Sec-WebSocket-Protocol: ragfleet,
ragfleet.key.<key>``, the way Kubernetes takes bearer tokens) — unlike ``?api_key=``, also accepted,
a header stays out of proxies' access logs. Looked-up keys are trusted for ``key_cache_ttl_s`` per
replica, which keeps Redis off the hot path and bounds revocation lag.

A request that this replica has not yet authenticated (no key, or a key not in its cache) first
spends one unit of its client address's anonymous rate limit, so guessing keys or flooding the
open endpoints costs a client its own budget, not Redis's or the other clients'. The address is
the connection's peer, or the client an ingress named in ``X-Forwarded-For`` when the peer is one
of ``forwarded_allow_ips`` (uvicorn resolves it; see ragfleet.common.server).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Annotated

from fastapi import Depends
from redis.exceptions import RedisError
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket

from ragfleet.common.errors import RagfleetError, RateLimited, ServiceUnavailable, Unauthorized
from ragfleet.gateway.config import GatewaySettings
from ragfleet.gateway.keys import KeyStore, Principal, admin_principal, key_digest
from ragfleet.gateway.ratelimit import RateLimiter

# WebSocket close codes in the private range, mirroring HTTP statuses (4000 + status).
WS_UNAUTHORIZED = 4401
WS_RATE_LIMITED = 4429
WS_UNAVAILABLE = 4503

# A browser offers both; the server must choose one, and chooses the one that carries no secret.
WS_SUBPROTOCOL = "ragfleet"
WS_KEY_SUBPROTOCOL_PREFIX = "ragfleet.key."

# Where a route that authenticated a request before its dependencies ran (the search fast path)
# leaves the principal, so that ``require_key`` does not look the key up twice.
PRINCIPAL_SCOPE_KEY = "ragfleet.principal"
# Set instead when an earlier authentication of this request failed: raised again as it was.
AUTH_ERROR_SCOPE_KEY = "ragfleet.auth_error"


def offered_subprotocols(connection: HTTPConnection) -> list[str]:
    header = connection.headers.get("sec-websocket-protocol", "")
    return [protocol.strip() for protocol in header.split(",") if protocol.strip()]


def presented_key(connection: HTTPConnection, *, allow_query: bool = False) -> str | None:
    authorization = connection.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    header = connection.headers.get("x-api-key", "").strip()
    if header:
        return header
    if allow_query:
        for protocol in offered_subprotocols(connection):
            if protocol.startswith(WS_KEY_SUBPROTOCOL_PREFIX):
                return protocol.removeprefix(WS_KEY_SUBPROTOCOL_PREFIX) or None
        return connection.query_params.get("api_key") or None
    return None


class Authenticator:
    def __init__(self, store: KeyStore, limiter: RateLimiter, settings: GatewaySettings) -> None:
        self.store = store
        self.limiter = limiter
        self.settings = settings
        self.cache: dict[str, tuple[Principal, float]] = {}
        self.lookups: dict[str, asyncio.Future[Principal]] = {}
        self.admin = admin_principal(settings)

    async def principal(self, api_key: str | None, client: str = "unknown") -> Principal:
        if not api_key:
            await self.enforce_anonymous_limit(client)
            raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key'")
        digest = key_digest(api_key)
        if self.admin is not None and hmac.compare_digest(digest, self.admin[0]):
            return self.admin[1]
        cached = self.cache.get(digest)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        # One lookup per key at a time: when a busy key's entry expires, the dozens of requests
        # in flight with it wait for the same lookup instead of each paying the address's
        # anonymous budget (behind an ingress every client shares one address, so they used to
        # run it dry and a valid key got 429s every few seconds under load).
        lookup = self.lookups.get(digest)
        if lookup is None:
            lookup = self.lookups[digest] = asyncio.ensure_future(self._lookup(api_key, digest, client))
            lookup.add_done_callback(lambda _: self.lookups.pop(digest, None))
        return await asyncio.shield(lookup)

    async def _lookup(self, api_key: str, digest: str, client: str) -> Principal:
        cached = self.cache.get(digest)
        if cached is None:
            # Not authenticated here yet: a valid key pays this once, a guess every time. A key that
            # was valid here a moment ago (its entry only expired) is re-checked without paying.
            await self.enforce_anonymous_limit(client)
        try:
            principal = await self.store.lookup(api_key)
        except (RedisError, OSError) as exc:
            # Redis is down: a key this replica already checked stays trusted until Redis is back
            # (revocation waits for Redis too), so an outage does not lock every client out.
            if cached is not None:
                return cached[0]
            raise ServiceUnavailable("cannot check the API key right now; retry shortly") from exc
        if principal is None:
            self.cache.pop(digest, None)
            raise Unauthorized("the API key is not valid", code="invalid_api_key")
        if len(self.cache) > 50_000:
            self.cache.clear()
        self.cache[digest] = (principal, time.monotonic() + self.settings.key_cache_ttl_s)
        return principal

    async def enforce_anonymous_limit(self, client: str) -> None:
        rate = self.settings.anonymous_rate_limit_per_s
        burst = self.settings.anonymous_rate_limit_burst
        decision = await self.limiter.check(f"anonymous:{client}", rate, burst)
        if not decision.allowed:
            raise RateLimited(
                f"too many requests without a valid API key from this address (limit {rate:g}/s, "
                f"burst {burst})",
                code="anonymous_rate_limited",
                retry_after_s=decision.retry_after_s,
                details={
                    "retry_after_s": round(decision.retry_after_s, 3),
                    "limit_per_s": rate,
                    "burst": burst,
                },
            )

    async def enforce_rate_limit(self, principal: Principal) -> None:
        rate = principal.rate_per_s or self.settings.rate_limit_per_s
        burst = principal.burst or self.settings.rate_limit_burst
        decision = await self.limiter.check(principal.key_id, rate, burst)
        if not decision.allowed:
            raise RateLimited(
                f"rate limit of {rate:g} requests/s (burst {burst}) exceeded for this API key",
                retry_after_s=decision.retry_after_s,
                details={
                    "retry_after_s": round(decision.retry_after_s, 3),
                    "limit_per_s": rate,
                    "burst": burst,
                },
            )


def get_authenticator(connection: HTTPConnection) -> Authenticator:
    authenticator: Authenticator = connection.app.state.authenticator
    return authenticator


def client_address(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client else "unknown"


async def require_key(connection: HTTPConnection) -> Principal:
    """The caller's principal, after authentication and one unit of its rate limit."""
    authenticator = get_authenticator(connection)
    failed = connection.scope.get(AUTH_ERROR_SCOPE_KEY)
    if isinstance(failed, RagfleetError):
        raise failed
    principal = connection.scope.get(PRINCIPAL_SCOPE_KEY)
    if not isinstance(principal, Principal):
        principal = await authenticator.principal(presented_key(connection), client_address(connection))
    await authenticator.enforce_rate_limit(principal)
    return principal


Authenticated = Annotated[Principal, Depends(require_key)]


async def authenticate_websocket(websocket: WebSocket) -> Principal | None:
    """Authenticate a WebSocket before accepting it; on failure close it and return None.

    Closing before ``accept`` makes the server answer the handshake with HTTP 403; the close code
    (4401, 4429, 4503) tells clients that read it what went wrong.
    """
    authenticator = get_authenticator(websocket)
    try:
        principal = await authenticator.principal(
            presented_key(websocket, allow_query=True), client_address(websocket)
        )
        await authenticator.enforce_rate_limit(principal)
    except Unauthorized as exc:
        await websocket.close(code=WS_UNAUTHORIZED, reason=exc.message[:120])
        return None
    except RateLimited as exc:
        await websocket.close(code=WS_RATE_LIMITED, reason=exc.message[:120])
        return None
    except ServiceUnavailable as exc:
        await websocket.close(code=WS_UNAVAILABLE, reason=exc.message[:120])
        return None
    return principal


async def accept_websocket(websocket: WebSocket) -> None:
    """Accept, answering with ``ragfleet`` when the client offered subprotocols (browsers drop a
    connection whose answer names none of them); the key-carrying one is never echoed back."""
    offered = offered_subprotocols(websocket)
    await websocket.accept(subprotocol=WS_SUBPROTOCOL if WS_SUBPROTOCOL in offered else None)
