"""``GET/DELETE /v1/sessions/{id}``: a conversation's memory, for the key that started it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.responses import Response

from ragfleet.common.errors import NotFound
from ragfleet.gateway.auth import Authenticated
from ragfleet.gateway.dependencies import MemoryDep
from ragfleet.gateway.memory import check_session_id, session_owner

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])


class SessionView(BaseModel):
    session_id: str
    system_prompt: str | None
    messages: list[dict[str, Any]]
    window: int
    expires_in_s: int | None


def _not_found(session_id: str) -> NotFound:
    return NotFound(f"session {session_id} does not exist or has expired", code="session_not_found")


@router.get("/{session_id}", response_model=SessionView, summary="A conversation's system prompt and window")
async def get_session(session_id: str, principal: Authenticated, memory: MemoryDep) -> SessionView:
    check_session_id(session_id)
    conversation = await memory.load(session_owner(principal), session_id)
    if not conversation.messages and conversation.system_prompt is None:
        raise _not_found(session_id)
    return SessionView(
        session_id=session_id,
        system_prompt=conversation.system_prompt,
        messages=conversation.messages,
        window=memory.window,
        expires_in_s=await memory.ttl(session_owner(principal), session_id),
    )


@router.delete("/{session_id}", status_code=204, summary="Forget a conversation")
async def delete_session(session_id: str, principal: Authenticated, memory: MemoryDep) -> Response:
    check_session_id(session_id)
    if not await memory.delete(session_owner(principal), session_id):
        raise _not_found(session_id)
    return Response(status_code=204)
