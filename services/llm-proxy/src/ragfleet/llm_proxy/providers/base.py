"""What every provider speaks: chunks, failures that say whether a retry can help, the provider protocol."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from ragfleet.llm_proxy.schemas import ChatCompletionRequest


@dataclass(frozen=True, slots=True)
class Chunk:
    """One ``chat.completion.chunk``: its JSON text as received (relayed unchanged) and its parsed form."""

    data: str
    parsed: dict[str, Any]

    @property
    def has_output(self) -> bool:
        """True once the model produced something: text, a tool call or a finish reason."""
        for choice in self.parsed.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content") or delta.get("tool_calls") or choice.get("finish_reason"):
                return True
        return False

    @property
    def usage_only(self) -> bool:
        return not self.parsed.get("choices") and self.parsed.get("usage") is not None


class UpstreamFailure(Exception):
    """An upstream call that failed. ``retryable`` failures count against the breaker and may be retried."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        retryable: bool = True,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason  # a bounded metric label: http_429, http_5xx, timeout, connect, dropped, ...
        self.message = message
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class ChatProvider(Protocol):
    """``stream`` yields batches of chunks — those that arrived together, never waiting for more —
    and raises ``UpstreamFailure``; it ends normally only on a complete stream."""

    uses_breaker: bool

    async def complete(self, request: ChatCompletionRequest, body: dict[str, Any]) -> dict[str, Any]: ...

    def stream(self, request: ChatCompletionRequest, body: dict[str, Any]) -> AsyncIterator[list[Chunk]]: ...

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]: ...
