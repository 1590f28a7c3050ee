"""The OpenAI request shapes the proxy validates. Unknown fields are kept and forwarded upstream."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    # A string, or a list of content parts ({"type": "text", "text": ...}, images, ...).
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text, whatever its shape (parts other than text are skipped)."""
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "\n".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    n: int | None = Field(None, ge=1, le=16)
    seed: int | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    user: str | None = None

    @property
    def deterministic(self) -> bool:
        """Same request, same answer: what makes a response safe to cache."""
        return (self.temperature == 0 or self.seed is not None) and (self.n or 1) == 1

    @property
    def completion_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def upstream_body(self, upstream_model: str, max_tokens_cap: int | None) -> dict[str, Any]:
        """The body sent upstream: our model name swapped for the upstream's, the token cap applied.

        Streams always ask for usage, so tokens are accounted even when the caller did not ask;
        the usage chunk is dropped on the way back if the caller did not ask for it.
        """
        body = self.model_dump(exclude_none=True)
        body["model"] = upstream_model
        limit = self.completion_limit
        if max_tokens_cap is not None and (limit is None or limit > max_tokens_cap):
            limit = max_tokens_cap
        if limit is not None:
            body.pop("max_completion_tokens", None)
            body["max_tokens"] = limit
        if self.stream:
            body["stream_options"] = {**body.get("stream_options", {}), "include_usage": True}
        return body


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str | list[str] = Field(description="a text or a list of texts (token arrays are not supported)")
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)
