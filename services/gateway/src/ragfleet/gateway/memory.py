"""Conversation memory: a system prompt plus a sliding window of the last N messages, in Redis.

Per conversation, ``gw:conv:<owner>:<session>`` is a list of JSON messages trimmed to the window
on every append, and ``gw:conv:<owner>:<session>:system`` the system prompt. Both expire after
``memory_ttl_s``; any read or write refreshes the expiry.

The owner is the API key that started the conversation (``session_owner``: its tenant and key id),
not only its tenant: a conversation holds passages of the collections that key may read, so another
key — of the same tenant, bound to other collections — must not read, extend or re-prompt it. To
any other key a session id is simply not found. Session ids are the server's (random, handed out
with the first answer); a chat naming an id the server did not give this key is refused.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ragfleet.common.errors import BadRequest
from ragfleet.gateway.keys import Principal

log = logging.getLogger("ragfleet.gateway.memory")

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def check_session_id(session_id: str) -> str:
    if not SESSION_ID.match(session_id):
        raise BadRequest("session_id must be 1-128 characters of letters, digits, '-' or '_'")
    return session_id


@dataclass
class Conversation:
    session_id: str
    system_prompt: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    ttl_s: int | None = None

    def history(self) -> list[dict[str, str]]:
        """The messages as the LLM sees them (role and content only)."""
        return [{"role": m["role"], "content": m["content"]} for m in self.messages]


def session_owner(principal: Principal) -> str:
    """Whose conversations these are: the key that started them (see the module's docstring)."""
    return f"{principal.tenant}:{principal.key_id}"


class ConversationStore:
    def __init__(self, redis: Redis, *, window: int, ttl_s: int) -> None:
        self.redis = redis
        self.window = window
        self.ttl_s = ttl_s

    @staticmethod
    def _keys(owner: str, session_id: str) -> tuple[str, str]:
        base = f"gw:conv:{owner}:{session_id}"
        return base, f"{base}:system"

    async def load(self, owner: str, session_id: str) -> Conversation:
        """The conversation so far; empty while Redis is down (memory is best effort: the chat
        still answers, without history)."""
        messages_key, system_key = self._keys(owner, session_id)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.lrange(messages_key, 0, -1)
                pipe.get(system_key)
                pipe.expire(messages_key, self.ttl_s)
                pipe.expire(system_key, self.ttl_s)
                raw_messages, system_prompt, *_ = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("conversation memory unavailable, answering without history: %s", exc)
            return Conversation(session_id=session_id)
        return Conversation(
            session_id=session_id,
            system_prompt=system_prompt.decode() if system_prompt else None,
            messages=[orjson.loads(m) for m in raw_messages],
            ttl_s=self.ttl_s if raw_messages or system_prompt else None,
        )

    async def append(
        self,
        owner: str,
        session_id: str,
        messages: list[dict[str, str]],
        *,
        system_prompt: str | None = None,
    ) -> None:
        messages_key, system_key = self._keys(owner, session_id)
        now = round(time.time(), 3)
        encoded = [orjson.dumps({**m, "at": now}) for m in messages]
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                if encoded:
                    pipe.rpush(messages_key, *encoded)
                    pipe.ltrim(messages_key, -self.window, -1)
                    pipe.expire(messages_key, self.ttl_s)
                if system_prompt is not None:
                    pipe.set(system_key, system_prompt, ex=self.ttl_s)
                else:
                    pipe.expire(system_key, self.ttl_s)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            # The answer is already made; losing this turn from the memory must not fail it.
            log.warning("conversation memory unavailable, this turn is not remembered: %s", exc)

    async def exists(self, owner: str, session_id: str) -> bool:
        return bool(await self.redis.exists(*self._keys(owner, session_id)))

    async def delete(self, owner: str, session_id: str) -> bool:
        return bool(await self.redis.delete(*self._keys(owner, session_id)))

    async def ttl(self, owner: str, session_id: str) -> int | None:
        remaining = await self.redis.ttl(self._keys(owner, session_id)[0])
        return int(remaining) if remaining and remaining > 0 else None
