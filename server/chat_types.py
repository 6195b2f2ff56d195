"""What the server needs from a chat service (assistant/agent/pipeline.py's ChatService, the
rules-only fallback, or a fake in tests): one async generator per user turn.

The server reads only `event.type` and `event.data`, so any object with those attributes works.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from assistant.session import ConversationSession

EventType = Literal["card", "token", "done", "error", "question", "session"]


class ChatEvent(BaseModel):
    """One piece of a turn, in order: "card" (structured result, first and fast), "token"
    (prose), then "done" {text, llm_used}; "error" {code, message} ends a turn early."""

    type: EventType
    data: dict[str, Any] = Field(default_factory=dict)


class ChatService(Protocol):
    def turn(
        self, session: ConversationSession, text: str, *, cancel: asyncio.Event | None = None
    ) -> AsyncIterator[Any]:  # yields ChatEvent-like objects
        """Runs one user turn on `session` (mutating it) and streams its events. Stops soon after
        `cancel` is set (the client went away or the server gave up on the turn)."""
        ...
