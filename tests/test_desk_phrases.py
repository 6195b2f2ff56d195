"""The service desk on our own dev set of phrasings (evals/data/desk_dev.jsonl): which desk
answer each message gets, with a real booking service, patients and escort in a temp folder.
A message naming a symptom must not get a desk answer (kind null): it goes to triage first."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from assistant.agent.router import names_symptoms
from assistant.session import ConversationSession
from assistant.settings import Settings
from assistant.visit_flow import ServiceDesk
from server.booking.service import BookingService
from server.escort.service import EscortService
from server.escort.store import EscortStore
from server.patients import PatientDirectory
from tools.booking.catalogue import load_directory

ROWS = [
    json.loads(line)
    for line in (Path(__file__).resolve().parents[1] / "evals" / "data" / "desk_dev.jsonl").read_text(
        encoding="utf-8"
    ).splitlines()
    if line.strip()
]


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceDesk]:
    folder = tmp_path_factory.mktemp("desk")
    settings = Settings(data_dir=folder)
    booking = BookingService(folder / "booking.sqlite3", load_directory(), tz=settings.timezone)
    yield ServiceDesk(
        clinic_id="demo-general-hospital",
        tz=settings.tz,
        booking=booking,
        patients=PatientDirectory(folder / "patients.sqlite3"),
        escort=EscortService(EscortStore(folder / "escort.sqlite3"), notify=None, tz=settings.tz),
    )
    booking.close()


def _answer(desk: ServiceDesk, session: ConversationSession, text: str, lang: str) -> Any:
    if names_symptoms(text):
        return None  # the chat sends it to triage (assistant/desk_chat.py)
    return desk.handle(session, text, lang)


@pytest.mark.parametrize("row", ROWS, ids=[r["text"][:30] for r in ROWS])
def test_desk_dev_set(desk: ServiceDesk, row: dict[str, Any]) -> None:
    reply = _answer(desk, ConversationSession(lang=row["lang"]), row["text"], row["lang"])
    if row["kind"] is None:
        assert reply is None
        return
    assert reply is not None and reply.kind == row["kind"], reply
    if "department" in row:
        assert reply.data["department_id"] == row["department"]
        assert reply.data["options"], "the demo schedule has free slots within a week"
    if "target" in row:
        assert reply.data["route"]["to"] == row["target"]
        assert reply.data["route"]["step_free"] is row.get("step_free", False)
    if "code" in row:
        assert reply.data["code"] == row["code"]


def test_the_date_asked_before_the_department_still_counts(desk: ServiceDesk) -> None:
    # a morning with a dermatology session in the booking window (the demo schedule is weekly)
    free = desk.booking.search_slots("demo-general-hospital", "dermatology", half_day="am", limit=1)
    day = date.fromisoformat(str(free[0]["start"])[:10])
    session = ConversationSession(lang="zh")
    first = _answer(desk, session, f"预约{day.month}月{day.day}日上午的号", "zh")
    assert first is not None and first.kind == "notice"
    second = _answer(desk, session, "皮肤科", "zh")
    assert second is not None and second.kind == "slots" and second.data["options"]
    assert not second.data["alternatives"]
    labels = [o["label"] for o in second.data["options"]]
    assert all(f"{day.month}月{day.day}日" in label and "上午" in label for label in labels)


def test_a_day_beyond_the_booking_window_is_a_clear_message_not_an_offer(desk: ServiceDesk) -> None:
    far = date.today() + timedelta(days=30)
    reply = _answer(desk, ConversationSession(lang="zh"), f"帮我挂{far.month}月{far.day}日的皮肤科", "zh")
    assert reply is not None and reply.kind == "error" and reply.data["code"] == "not_open_yet"
    assert "7 天" in reply.text


def test_where_should_i_go_after_triage_routes_to_the_triaged_department(desk: ServiceDesk) -> None:
    session = ConversationSession(lang="zh")
    session.handle_user_message("手臂上起红疹子很痒两周了，30岁，没有其他不舒服")
    reply = _answer(desk, session, "我该去哪里？怎么走", "zh")
    assert reply is not None and reply.kind == "route"
    assert reply.data["route"]["to"] == "clinic_dermatology"
