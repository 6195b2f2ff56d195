"""The service desk sits in front of the chat service: symptoms always reach triage first."""

from __future__ import annotations

import asyncio
from typing import Any
from zoneinfo import ZoneInfo

from assistant.desk_chat import DeskChatService
from assistant.session import ConversationSession
from assistant.visit_flow import ServiceDesk
from server.rules_chat import RulesOnlyChatService

TZ = ZoneInfo("Asia/Shanghai")


def _run(service: Any, session: ConversationSession, text: str) -> list[Any]:
    async def collect() -> list[Any]:
        return [event async for event in service.turn(session, text)]

    return asyncio.run(collect())


def _service() -> DeskChatService:
    # No booking port: the desk must say so rather than fail.
    return DeskChatService(RulesOnlyChatService(), ServiceDesk(clinic_id="demo-general-hospital", tz=TZ))


def test_a_red_flag_inside_a_booking_request_goes_to_triage_not_the_desk() -> None:
    session = ConversationSession(lang="zh")
    events = _run(_service(), session, "帮我挂个号，我胸口压着疼，出冷汗")
    cards = [e.data["card"] for e in events if e.type == "card"]
    assert cards and cards[0]["level"] == "emergency_ambulance"
    assert "120" in events[-1].data["text"]
    assert not any("desk" in e.data for e in events)


def test_a_booking_request_without_symptoms_is_answered_by_the_desk() -> None:
    session = ConversationSession(lang="zh")
    events = _run(_service(), session, "帮我挂明天上午皮肤科的号")
    desk = [e.data["desk"] for e in events if e.type == "card"]
    assert desk and desk[0]["kind"] == "notice"
    assert "预约服务暂时不可用" in events[-1].data["text"]
    assert events[-1].data["llm_used"] is False


def test_after_an_emergency_the_desk_does_not_book_and_repeats_120() -> None:
    session = ConversationSession(lang="en")
    service = _service()
    _run(service, session, "crushing chest pain and sweating")
    events = _run(service, session, "book me an appointment please")
    desk = [e.data["desk"] for e in events if e.type == "card"][0]
    assert desk["call_120"] is True
    assert "Call 120" in events[-1].data["text"]


def test_a_message_for_nobody_goes_to_the_chat_service() -> None:
    session = ConversationSession(lang="zh")
    events = _run(_service(), session, "头痛两天了")
    assert any(e.type == "card" and e.data.get("card") for e in events)
    assert not any("desk" in e.data for e in events)
