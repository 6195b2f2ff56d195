"""Puts the service desk (assistant/visit_flow.py) in front of any chat service.

A message that names a symptom always goes to the wrapped service, so red flags are screened by the
triage engine first; only the rest (booking, "where is ...", "what next", mobile clinics) may be
answered by the desk. Desk replies are template-worded: the same with the language model on or off.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

from assistant.agent.pipeline import ChatEvent
from assistant.agent.router import names_symptoms
from assistant.session import ConversationSession
from assistant.visit_flow import ServiceDesk
from tools.triage import detect_lang

_PIECE_CHARS = 24


class DeskChatService:
    def __init__(self, inner: Any, desk: ServiceDesk) -> None:
        self.inner = inner
        self.desk = desk

    def __getattr__(self, name: str) -> Any:  # queue_depth, llm_ready, name, close ... of the inner one
        return getattr(self.inner, name)

    async def turn(
        self, session: ConversationSession, text: str, *, cancel: asyncio.Event | None = None
    ) -> AsyncIterator[Any]:
        if text and text.strip() and not names_symptoms(text):
            lang = session.lang or detect_lang(text)
            work = session.model_copy(deep=True)  # a failed or cancelled desk turn changes nothing
            reply = await asyncio.to_thread(self.desk.handle, work, text, lang)
            if reply is not None:
                if cancel is not None and cancel.is_set():
                    return
                session.desk = work.desk
                session.lang = session.lang or lang
                message_id = uuid.uuid4().hex[:12]
                card = {"message_id": message_id, "card": None, "desk": reply.payload()}
                yield ChatEvent(type="card", data=card)
                for start in range(0, len(reply.text), _PIECE_CHARS):
                    piece = reply.text[start : start + _PIECE_CHARS]
                    yield ChatEvent(type="token", data={"message_id": message_id, "text": piece})
                yield ChatEvent(
                    type="done",
                    data={"message_id": message_id, "text": reply.text, "llm_used": False, "kind": "desk"},
                )
                return
        session.desk.pop("offer", None)  # the conversation moved on: a bare "1" is no longer a slot choice
        async for event in self.inner.turn(session, text, cancel=cancel):
            yield event
