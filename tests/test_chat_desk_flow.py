"""From symptoms to a booking in the chat (websocket /ws/chat) with the real app, and on to the
patient's pushes (/ws/patient) and reminders (/api/reminders).

The demo schedule depends on the weekday and the app's clock is real, so the tests never assume a
day: they take whatever slots the desk offers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assistant.settings import Settings
from server.app import create_app

PROTOCOL = "daozhen.chat.v1"
ZH_ROUTE_WORDS = ("乘电梯", "楼梯", "扶梯")
EN_ROUTE_WORDS = ("lift", "stairs", "escalator", "elevator")


class _NoRetrievalNeeded:
    """The rules-only chat needs no vector search: skip building the knowledge base."""

    knowledge_version = "test"


@dataclass
class Turn:
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def desk(self) -> dict[str, Any] | None:
        found = [e["desk"] for e in self.events if e["type"] == "card" and e.get("desk")]
        return found[-1] if found else None

    @property
    def card(self) -> dict[str, Any] | None:
        found = [e["card"] for e in self.events if e["type"] == "card" and e.get("card")]
        return found[-1] if found else None

    @property
    def text(self) -> str:
        end = self.events[-1]
        assert end["type"] == "done", end
        return str(end["text"])


class Chat:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    def say(self, text: str) -> Turn:
        self.ws.send_json({"type": "user_text", "text": text})
        turn = Turn()
        while True:
            message = self.ws.receive_json()
            if message["type"] in ("ping", "pong"):
                continue
            turn.events.append(message)
            if message["type"] in ("done", "error"):
                return turn


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("desk-flow")


@pytest.fixture(scope="module")
def client(data_dir: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=data_dir, llm_backend="none")
    app = create_app(settings, knowledge_loader=lambda _settings: _NoRetrievalNeeded())
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def zh_chat(client: TestClient) -> Iterator[Chat]:
    with client.websocket_connect("/ws/chat") as ws:
        ws.send_json({"type": "hello", "protocol": PROTOCOL, "lang": "zh"})
        assert ws.receive_json()["type"] == "session"
        yield Chat(ws)


@pytest.fixture
def en_chat(client: TestClient) -> Iterator[Chat]:
    with client.websocket_connect("/ws/chat") as ws:
        ws.send_json({"type": "hello", "protocol": PROTOCOL, "lang": "en"})
        assert ws.receive_json()["type"] == "session"
        yield Chat(ws)


def numbered_lines(text: str) -> list[str]:
    return re.findall(r"^\d+\. .+$", text, flags=re.MULTILINE)


def patient_notifications(client: TestClient, token: str, wanted_kind: str) -> list[dict[str, Any]]:
    """Connects to /ws/patient, collects notifications until one of `wanted_kind` came, acks them."""
    got: list[dict[str, Any]] = []
    with client.websocket_connect(f"/ws/patient?token={token}&lang=zh") as ws:
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["protocol"] == "notify.v1"
        for _ in range(50):
            message = ws.receive_json()
            if message["type"] != "notification":
                continue
            got.append(message)
            ws.send_json({"type": "ack", "id": message["id"]})
            acked = ws.receive_json()
            while acked["type"] == "ping":
                acked = ws.receive_json()
            assert acked["type"] == "acked" and acked["ids"] == [message["id"]]
            if message["kind"] == wanted_kind:
                break
    return got


# --------------------------------------------------------------------------------------------
# Whole conversations
# --------------------------------------------------------------------------------------------


def test_zh_rash_to_booking_with_route_steps_push_and_reminders(
    client: TestClient, zh_chat: Chat, data_dir: Path
) -> None:
    triage = zh_chat.say("我是成年人，身上起红疹一个星期了")
    assert triage.card is not None and triage.card["level"] in ("routine", "urgent", "self_care")
    assert any(d["id"] == "dermatology" for d in triage.card["departments"])

    offer = zh_chat.say("帮我挂明天上午的号")
    desk = offer.desk
    assert desk is not None and desk["kind"] == "slots" and desk["department_id"] == "dermatology"
    assert 1 <= len(desk["options"]) <= 4
    assert "回复序号" in offer.text and desk["options"][0]["label"] in offer.text
    assert "patient_token" not in desk  # no patient yet

    booked = zh_chat.say("1")
    desk = booked.desk
    assert desk is not None and desk["kind"] == "booked"
    appointment = desk["appointment"]
    assert appointment["department_id"] == "dermatology" and appointment["appointment_id"]
    assert f"预约号 {appointment['appointment_id']}" in booked.text
    start = datetime.fromisoformat(appointment["start"])
    assert start.strftime("%H:%M") in booked.text and f"{start.month}月{start.day}日" in booked.text
    # The route: from the main entrance to the room, floor changes spelled out.
    route = desk["route"]
    assert route["to"] == "clinic_dermatology" and route["steps"]
    assert "皮肤科诊室" in booked.text and route["head"] in booked.text
    assert any(word in booked.text for word in ZH_ROUTE_WORDS)
    assert route["floorplan_url"].startswith("/api/navigation/floorplan.svg?")
    # Numbered next steps of the visit.
    assert "接下来的步骤：" in booked.text
    assert len(numbered_lines(booked.text.split("接下来的步骤：")[1])) >= 3
    assert desk["visit_id"] and desk["steps"][0]["step"] == "registered"

    # The token came once, and it is a working patient token.
    token = desk["patient_token"]
    assert isinstance(token, str) and len(token) > 20
    patient_id = client.app.state.patients.authenticate(token)
    assert patient_id and patient_id.startswith("p-")

    # Starting the visit pushed a visit_step, queued until the patient connects.
    pushed = patient_notifications(client, token, "visit_step")
    step = [n for n in pushed if n["kind"] == "visit_step"]
    assert step and step[0]["payload"]["visit_id"] == desk["visit_id"]
    assert step[0]["payload"]["event"] == "start" and step[0]["payload"]["guidance"]["what_next"]
    assert client.get("/api/notifications", headers={"Authorization": f"Bearer {token}"}).json() == {
        "notifications": []
    }  # acked: not pushed again

    # Revisit reminders: the evening before at 20:00 and 2 h before, whichever are still ahead.
    listed = client.get("/api/reminders", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200
    reminders = listed.json()["reminders"]
    assert {r["reminder_id"] for r in reminders} == {r["reminder_id"] for r in desk["reminders"]}
    now = datetime.now(start.tzinfo)
    allowed = {start - timedelta(hours=2), start.replace(hour=20, minute=0) - timedelta(days=1)}
    for reminder in reminders:
        assert reminder["kind"] == "revisit" and reminder["patient_id"] == patient_id
        first = datetime.fromisoformat(reminder["first_at"])
        assert first in allowed and first > now - timedelta(minutes=5)
        assert "皮肤科诊室" in reminder["spec"]["title_zh"]
    if start - timedelta(hours=2) > now + timedelta(minutes=5):
        assert reminders, "a visit more than 2 h ahead gets at least the 2-hours-before reminder"
    if reminders:
        assert "已为您设好就诊提醒" in booked.text

    # The token is handed out once and never persisted with the session.
    again = zh_chat.say("帮我挂号")
    assert again.desk is not None and again.desk["kind"] == "slots"
    second = zh_chat.say("1")  # booked, or refused: one booking per department and half-day
    assert second.desk is not None and second.desk["kind"] in ("booked", "slots")
    assert "patient_token" not in second.desk
    for db in data_dir.glob("*.sqlite3*"):
        assert token.encode() not in db.read_bytes(), db.name


def test_en_cough_for_three_weeks_to_booking(client: TestClient, en_chat: Chat) -> None:
    triage = en_chat.say("I am 40 and I have had a cough for 3 weeks")
    assert triage.card is not None
    departments = [d["id"] for d in triage.card["departments"]]
    assert departments and triage.card["level"] not in ("emergency", "emergency_ambulance")

    offer = en_chat.say("book an appointment")
    assert offer.desk is not None and offer.desk["kind"] == "slots"
    assert "reply with the number to book" in offer.text
    assert offer.desk["department_id"] in departments or offer.desk["department_id"] == "general_practice"

    booked = en_chat.say("1")
    desk = booked.desk
    assert desk is not None and desk["kind"] == "booked"
    assert booked.text.startswith("Booked: ") and desk["appointment"]["appointment_id"] in booked.text
    route = desk["route"]
    assert route and route["steps"] and route["head"].startswith("From ")
    assert any(word in booked.text.lower() for word in EN_ROUTE_WORDS) or route["head"] in booked.text
    assert "Your next steps:" in booked.text
    assert len(numbered_lines(booked.text.split("Your next steps:")[1])) >= 3
    token = desk["patient_token"]
    pushed = patient_notifications(client, token, "visit_step")
    assert [n["kind"] for n in pushed].count("visit_step") == 1
    assert pushed[-1]["payload"]["guidance"]["lang"] == "en"
    listed = client.get("/api/reminders", headers={"Authorization": f"Bearer {token}"}).json()
    assert len(listed["reminders"]) == len(desk["reminders"])
    if desk["reminders"]:
        assert "Visit reminders are set for" in booked.text
        assert all(r["spec"]["title_en"].startswith("Follow-up visit at") for r in listed["reminders"])

    # Cancelling the booking stops its reminders: nobody is reminded of a visit that is off.
    cancelled = en_chat.say("cancel my booking")
    assert cancelled.desk is not None and cancelled.desk["kind"] == "cancelled"
    listed = client.get("/api/reminders", headers={"Authorization": f"Bearer {token}"}).json()
    assert all(r["status"] == "stopped" for r in listed["reminders"])


# --------------------------------------------------------------------------------------------
# Bad input: clear messages, no booking
# --------------------------------------------------------------------------------------------


def test_choosing_a_number_that_was_not_offered(zh_chat: Chat) -> None:
    offer = zh_chat.say("帮我挂皮肤科的号")
    assert offer.desk is not None
    offered = len(offer.desk["options"])
    assert 2 <= offered <= 4
    wrong = zh_chat.say("9")
    assert wrong.desk == {"kind": "error"}
    assert wrong.text == f"请回复 1 到 {offered} 之间的序号。"
    # The offer still stands: a valid number books.
    booked = zh_chat.say("2")
    assert booked.desk is not None and booked.desk["kind"] == "booked"
    start = datetime.fromisoformat(booked.desk["appointment"]["start"])
    label = offer.desk["options"][1]["label"]
    assert (
        label.startswith("2. ")
        and f"{start.month}月{start.day}日" in label
        and start.strftime("%H:%M") in label
    )


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("帮我挂下周八皮肤科的号", "bad_weekday", "星期只有一到日"),
        ("帮我挂13月5日皮肤科的号", "bad_month", "没有13月"),
    ],
)
def test_a_malformed_date_is_explained_and_nothing_is_booked(
    client: TestClient, zh_chat: Chat, text: str, code: str, message: str
) -> None:
    reply = zh_chat.say(text)
    assert reply.desk is not None and reply.desk["kind"] == "error" and reply.desk["code"] == code
    assert message in reply.text
    assert "已为您预约" not in reply.text and "patient_token" not in reply.desk
    # No offer was made, so a bare number now is no slot choice.
    after = zh_chat.say("1")
    assert after.desk is None or after.desk["kind"] != "booked"


def test_booking_after_an_emergency_repeats_120_and_books_nothing(zh_chat: Chat) -> None:
    triage = zh_chat.say("我胸口压着疼，出冷汗，喘不上气")
    assert triage.card is not None and triage.card["level"] in ("emergency_ambulance", "emergency")
    reply = zh_chat.say("帮我挂明天上午的号")
    assert reply.desk is not None and reply.desk["kind"] == "notice" and reply.desk["call_120"] is True
    assert "120" in reply.text and "不要等挂号" in reply.text
    assert "appointment" not in reply.desk and "options" not in reply.desk
    assert reply.desk["route"]["to"] == "emergency_room"
    assert zh_chat.say("1").desk is None  # nothing was offered


def test_a_slot_taken_between_offer_and_confirm_gets_a_fresh_offer(client: TestClient, zh_chat: Chat) -> None:
    offer = zh_chat.say("帮我挂皮肤科的号")
    assert offer.desk is not None
    taken = offer.desk["options"][0]["slot_id"]
    booking = client.app.state.booking.service
    booking.book("p-someone-else", taken, "test-take-first-slot")

    reply = zh_chat.say("1")
    desk = reply.desk
    assert desk is not None and desk["kind"] == "slots"
    assert reply.text.startswith("没有约上：")
    assert desk["error"]["code"] and desk["error"]["message"] in reply.text
    assert desk["options"] and taken not in [o["slot_id"] for o in desk["options"]]
    # The patient was created in this turn: its token comes now (the booking did not happen).
    assert client.app.state.patients.authenticate(desk["patient_token"])
    booked = zh_chat.say("1")  # the fresh offer works
    assert booked.desk is not None and booked.desk["kind"] == "booked"
    assert "patient_token" not in booked.desk


def test_en_slot_taken_says_could_not_book(client: TestClient, en_chat: Chat) -> None:
    offer = en_chat.say("book an appointment in dermatology")
    assert offer.desk is not None and offer.desk["department_id"] == "dermatology"
    client.app.state.booking.service.book("p-other-en", offer.desk["options"][0]["slot_id"], "test-en")
    reply = en_chat.say("1")
    assert reply.text.startswith("Could not book: ") and reply.desk is not None
    assert reply.desk["kind"] == "slots" and reply.desk["options"]


def test_route_to_an_unknown_place(zh_chat: Chat, en_chat: Chat) -> None:
    reply = zh_chat.say("火星实验室怎么走")
    assert reply.desk == {"kind": "error", "code": "unknown_place"}
    assert "我没找到您要去的地方" in reply.text
    reply = en_chat.say("where is the planetarium")
    assert reply.desk is not None and reply.desk["code"] == "unknown_place"
    assert reply.text.startswith("I could not find that place")
