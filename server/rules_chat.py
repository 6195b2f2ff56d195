"""Rules-only chat service: the conversation without any language model.

It is both the server's stand-in until the agent pipeline is wired and the real fallback when no
model is available: the card comes from the triage engine (via ConversationSession), the reply
text from the session's templates, streamed in small pieces so clients handle it exactly like
model output.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

from assistant.session import ConversationSession, TurnReply
from server.chat_types import ChatEvent
from tools.rulebook import load_rulebook
from tools.triage_models import Level, TriageResult

_BREAK_AFTER = re.compile(r"(?<=[，。！？；：、,.!?;:\n])")


def card_from_result(result: TriageResult, kind: str, question: Any | None = None) -> dict[str, Any]:
    """The structured card a client renders: what the engine decided, never model prose."""
    care = load_rulebook().advice.care_settings.get(result.care_setting.value)
    # Same fields as assistant.agent.pipeline.build_card, so clients see one card shape.
    return {
        "reply_kind": kind,  # "emergency" | "question" | "assessment"
        "lang": result.lang,
        "level": result.level.value,
        "level_label": result.level_label,
        "call_120": result.level == Level.emergency_ambulance,
        "care_setting": result.care_setting.value,
        "care_setting_label": care.get(result.lang) if care else result.care_setting.value,
        "departments": [d.model_dump(mode="json") for d in result.departments],
        "red_flags": [f.model_dump(mode="json") for f in result.red_flags],
        "advice": result.advice,
        "citations": [c.model_dump(mode="json") for c in result.citations],
        "question": question.model_dump(mode="json") if question is not None else None,
        "uncertain": result.uncertain,
        "warnings": [w.model_dump(mode="json") for w in result.warnings],
        "disclaimer": result.disclaimer,
        "engine_version": result.engine_version,
        "knowledge_version": result.knowledge_version,
    }


def card_from_reply(reply: TurnReply) -> dict[str, Any] | None:
    if reply.result is None:
        return None
    return card_from_result(reply.result, reply.kind, reply.question)


def text_pieces(text: str, max_chars: int = 24) -> list[str]:
    """Splits text at punctuation into pieces of at most max_chars; "".join(pieces) == text."""
    pieces: list[str] = []
    for part in _BREAK_AFTER.split(text):
        while len(part) > max_chars:
            pieces.append(part[:max_chars])
            part = part[max_chars:]
        if not part:
            continue
        if pieces and len(pieces[-1]) + len(part) <= max_chars // 2:
            pieces[-1] += part  # glue very short fragments ("，") to the previous piece
        else:
            pieces.append(part)
    return pieces


class RulesOnlyChatService:
    """Implements the chat service interface with ConversationSession alone (llm_used is False)."""

    name = "rules"
    queue_depth = 0  # no model queue

    def __init__(self, *, piece_chars: int = 24, piece_delay_s: float = 0.0) -> None:
        self.piece_chars = piece_chars
        self.piece_delay_s = piece_delay_s

    async def turn(
        self, session: ConversationSession, text: str, *, cancel: asyncio.Event | None = None
    ) -> AsyncIterator[ChatEvent]:
        # The engine is CPU work (milliseconds): run it in a thread so other sessions' cards and
        # streams are not held up, on a copy so a cancelled turn leaves the session as it was.
        work = session.model_copy(deep=True)
        reply = await asyncio.to_thread(work.handle_user_message, text)
        for name in type(session).model_fields:
            setattr(session, name, getattr(work, name))

        if reply.kind == "error":
            yield ChatEvent(
                type="error", data={"code": reply.error_code or "bad_input", "message": reply.text}
            )
            return
        card = card_from_reply(reply)
        if card is not None:
            yield ChatEvent(type="card", data={"card": card})
        for piece in text_pieces(reply.text, self.piece_chars):
            if cancel is not None and cancel.is_set():
                return
            yield ChatEvent(type="token", data={"text": piece})
            await asyncio.sleep(self.piece_delay_s)  # also lets other connections run between pieces
        yield ChatEvent(type="done", data={"text": reply.text, "llm_used": False, "kind": reply.kind})


def warm_up_rules() -> None:
    """Loads the rulebook, templates and extractor so the first real card is fast."""
    ConversationSession(lang="zh").handle_user_message("头痛两天")
    ConversationSession(lang="en").handle_user_message("headache for two days")
