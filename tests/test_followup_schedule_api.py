"""Scheduling follow-up conversations through the real app (server.app.create_app): a patient
schedules post_surgery, the reminders appear at GET /api/reminders with due times on day 1/3/7 in
clinic local time; bad input (unknown plan, malformed anchor, an anchor whose every check is past)
is a 422 with a zh/en message, never a 500; an answer with a buried red flag to the scheduled
conversation raises a clinic flag a clinician sees at GET /api/handoff/flags."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from assistant.settings import Settings

CLINIC_CODE = "followup-schedule-code"
PASSWORD = "correct-horse-42"
SHANGHAI = ZoneInfo("Asia/Shanghai")
BURIED = "挺好的，就是今天早上胸口压着疼，出冷汗，别的都还行"


class _NoKnowledgeBase:
    """Scheduling needs no retrieval: the knowledge base is not loaded in the background."""

    knowledge_version = "test"


@dataclass
class Ctx:
    client: TestClient
    patient: dict[str, str]
    patient_id: str
    clinician: dict[str, str]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Ctx]:
    from server.app import create_app

    settings = Settings(data_dir=tmp_path, llm_backend="none", clinic_code=CLINIC_CODE)
    app = create_app(settings, knowledge_loader=lambda _settings: _NoKnowledgeBase())
    with TestClient(app) as client:
        created = client.post("/api/patients", json={"display_name": "张阿姨"})
        assert created.status_code == 201, created.text
        signup = client.post(
            "/api/fever/accounts",
            json={
                "role": "clinician",
                "username": "nurse_li",
                "password": PASSWORD,
                "display_name": "李护士",
                "clinic_code": CLINIC_CODE,
            },
        )
        assert signup.status_code == 201, signup.text
        yield Ctx(
            client,
            _bearer(created.json()["token"]),
            created.json()["patient_id"],
            _bearer(signup.json()["token"]),
        )


def _schedule(ctx: Ctx, lang: str = "zh", **body: Any) -> Any:
    return ctx.client.post(f"/api/followup/plans?lang={lang}", json=body, headers=ctx.patient)


# ------------------------------------------------------------------------------ scheduling


def test_plans_are_listed_with_zh_and_en_names(ctx: Ctx) -> None:
    response = ctx.client.get("/api/followup/plans?lang=en")
    assert response.status_code == 200
    plans = {p["plan_id"]: p for p in response.json()["plans"]}
    assert {"post_surgery", "post_discharge_general", "hypertension_checkin"} <= set(plans)
    surgery = plans["post_surgery"]
    assert (surgery["name_zh"], surgery["name_en"], surgery["name"]) == (
        "术后随访",
        "After surgery",
        "After surgery",
    )
    assert [c["day"] for c in surgery["checks"]] == [1, 3, 7]


def test_post_surgery_schedules_reminders_on_day_1_3_7_local(ctx: Ctx) -> None:
    surgery = (datetime.now(SHANGHAI) + timedelta(hours=1)).replace(second=0, microsecond=0)
    response = _schedule(ctx, plan_id="post_surgery", anchor=surgery.isoformat())
    assert response.status_code == 201, response.text
    data = response.json()
    assert data["timezone"] == "Asia/Shanghai" and data["name"] == "术后随访"
    assert data["skipped"] == []
    expected = {
        "day1": surgery.date() + timedelta(days=1),
        "day3": surgery.date() + timedelta(days=3),
        "day7": surgery.date() + timedelta(days=7),
    }
    got = {c["check_id"]: datetime.fromisoformat(c["due_at"]) for c in data["schedule"]}
    assert set(got) == set(expected)
    for check_id, due in got.items():
        assert due.utcoffset() == timedelta(hours=8)  # shown in clinic local time
        assert (due.date(), due.hour, due.minute) == (expected[check_id], 9, 0)
    day1 = next(c for c in data["schedule"] if c["check_id"] == "day1")
    assert [q["question_id"] for q in day1["questions"]][0] == "ps.wound_redness"
    assert "伤口" in day1["questions"][0]["text"]

    listed = ctx.client.get("/api/reminders", headers=ctx.patient)
    assert listed.status_code == 200
    reminders = [r for r in listed.json()["reminders"] if r["kind"] == "followup_question"]
    assert len(reminders) == 3
    by_check = {r["spec"]["data"]["check_id"]: r for r in reminders}
    for check_id, reminder in by_check.items():
        assert reminder["spec"]["data"]["conversation_id"] == data["conversation_id"]
        fire = datetime.fromisoformat(reminder["next_fire_at"]).astimezone(SHANGHAI)
        assert (fire.date(), fire.hour) == (expected[check_id], 9)
        assert reminder["reminder_id"] == next(
            c["reminder_id"] for c in data["schedule"] if c["check_id"] == check_id
        )
    # Nobody else sees them.
    other = ctx.client.post("/api/patients", json={}).json()["token"]
    assert ctx.client.get("/api/reminders", headers=_bearer(other)).json()["reminders"] == []


def test_naive_anchor_is_clinic_local_time_and_past_checks_are_skipped(ctx: Ctx) -> None:
    # Surgery 2 days ago (naive = Shanghai time): day 1 has gone, days 3 and 7 are still ahead.
    surgery = datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0) - timedelta(days=2)
    response = _schedule(ctx, "en", plan_id="post_surgery", anchor=surgery.isoformat())
    assert response.status_code == 201, response.text
    data = response.json()
    assert [c["check_id"] for c in data["schedule"]] == ["day3", "day7"]
    assert [c["check_id"] for c in data["skipped"]] == ["day1"]
    assert datetime.fromisoformat(data["schedule"][0]["due_at"]).date() == surgery.date() + timedelta(days=3)
    assert data["schedule"][0]["questions"][0]["text"].startswith("Is the skin")
    reminders = ctx.client.get("/api/reminders", headers=ctx.patient).json()["reminders"]
    assert sorted(r["spec"]["data"]["check_id"] for r in reminders) == ["day3", "day7"]


def test_anchor_defaults_to_now(ctx: Ctx) -> None:
    response = _schedule(ctx, plan_id="post_er_visit")
    assert response.status_code == 201, response.text
    due = datetime.fromisoformat(response.json()["schedule"][0]["due_at"])
    assert due.date() == datetime.now(SHANGHAI).date() + timedelta(days=1)


# ------------------------------------------------------------------------------ bad input


def test_unknown_plan_is_422_in_both_languages(ctx: Ctx) -> None:
    zh = _schedule(ctx, plan_id="heart_transplant")
    assert zh.status_code == 422 and zh.json()["error"]["code"] == "unknown_plan"
    assert "没有这个随访计划" in zh.json()["error"]["message"]
    en = _schedule(ctx, "en", plan_id="heart_transplant")
    assert en.status_code == 422 and "Unknown follow-up plan" in en.json()["error"]["message"]


@pytest.mark.parametrize("anchor", ["yesterday-ish", "2026-13-45T09:00", "2026-11-23T25:00", "12/11/2026"])
def test_malformed_anchor_is_422(ctx: Ctx, anchor: str) -> None:
    response = _schedule(ctx, plan_id="post_surgery", anchor=anchor)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "bad_anchor"
    assert "ISO" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"plan_id": "post_surgery", "anchor": 1700000000},  # a number is not an ISO time
        {"plan_id": "post_surgery", "surgeon": "Dr Who"},  # unknown field
        {"anchor": "2026-11-23T09:00"},  # no plan
    ],
)
def test_malformed_body_is_422_invalid_field(ctx: Ctx, body: dict[str, Any]) -> None:
    response = ctx.client.post("/api/followup/plans?lang=en", json=body, headers=ctx.patient)
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_field"
    assert response.json()["error"]["message"].startswith("Invalid field")


def test_anchor_with_every_check_past_is_time_in_past(ctx: Ctx) -> None:
    long_ago = (date.today() - timedelta(days=30)).isoformat() + "T10:00:00+08:00"
    for lang, words in (("zh", "已经过去"), ("en", "in the past")):
        response = _schedule(ctx, lang, plan_id="post_surgery", anchor=long_ago)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "time_in_past"
        assert words in response.json()["error"]["message"]
    assert ctx.client.get("/api/reminders", headers=ctx.patient).json()["reminders"] == []
    ancient = _schedule(ctx, plan_id="post_surgery", anchor="0001-01-01T00:00:00+14:00")
    assert ancient.status_code == 422, ancient.text


def test_far_future_anchor_and_other_bad_requests_are_clear(ctx: Ctx) -> None:
    far = _schedule(ctx, "en", plan_id="post_surgery", anchor="9999-12-31T23:59:59")
    assert far.status_code == 422 and far.json()["error"]["code"] == "anchor_too_far"
    bad_json = ctx.client.post(
        "/api/followup/plans",
        content=b"{not json",
        headers={**ctx.patient, "Content-Type": "application/json"},
    )
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "bad_json"
    anonymous = ctx.client.post("/api/followup/plans", json={"plan_id": "post_surgery"})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "auth_required"
    assert "登录" in anonymous.json()["error"]["message"]


# ------------------------------------------------------------------------------ answer -> clinic flag


def test_buried_red_flag_in_a_scheduled_conversation_reaches_the_clinic(ctx: Ctx) -> None:
    surgery = datetime.now(SHANGHAI) - timedelta(hours=20)
    scheduled = _schedule(ctx, plan_id="post_surgery", anchor=surgery.isoformat()).json()
    conversation_id = scheduled["conversation_id"]
    reminder = ctx.client.get("/api/reminders", headers=ctx.patient).json()["reminders"][0]
    data = reminder["spec"]["data"]
    question = data["questions"][0]

    answered = ctx.client.post(
        "/api/followup/answer",
        json={
            "conversation_id": data["conversation_id"],
            "plan_id": data["plan_id"],
            "check_id": data["check_id"],
            "question_id": question["question_id"],
            "text": BURIED,
        },
        headers=ctx.patient,
    )
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert body["conversation"]["conversation_id"] == conversation_id
    assert body["outcome"]["escalation"]["call_120"] is True
    assert "120" in body["outcome"]["message"]

    flags = ctx.client.get("/api/handoff/flags", headers=ctx.clinician)
    assert flags.status_code == 200
    [flag] = flags.json()["flags"]
    assert flag["conversation_id"] == conversation_id and flag["patient_id"] == ctx.patient_id
    assert flag["level"] == "emergency_ambulance" and flag["call_120"] is True
    assert "RF-CARD-01" in flag["rule_ids"]
    # The patient cannot read the clinic's flags.
    assert ctx.client.get("/api/handoff/flags", headers=ctx.patient).status_code == 401
    # The clinician's SBAR of the scheduled conversation names the plan.
    sbar = ctx.client.get(f"/api/handoff/sessions/{conversation_id}?lang=zh", headers=ctx.clinician)
    assert sbar.status_code == 200 and "术后随访" in sbar.text


def test_a_check_in_reading_reaches_the_linked_chronic_record(ctx: Ctx) -> None:
    """Home blood pressure from a hypertension check-in lands in the clinic's chronic registry (the
    record linked to this patient), so the overdue / worsening list sees it."""
    registered = ctx.client.post(
        "/api/chronic/patients",
        json={
            "name": "张阿姨",
            "conditions": ["hypertension"],
            "last_visit": (date.today() - timedelta(days=30)).isoformat(),
            "linked_patient_id": ctx.patient_id,
        },
        headers=ctx.clinician,
    )
    assert registered.status_code == 201, registered.text
    record_id = registered.json()["patient_id"]
    scheduled = _schedule(ctx, plan_id="hypertension_checkin")
    assert scheduled.status_code == 201, scheduled.text
    conversation_id = scheduled.json()["conversation_id"]
    answer = {"conversation_id": conversation_id, "question_id": "htn.bp", "text": "今天早上量的是12/8"}
    answered = ctx.client.post("/api/followup/answer", json=answer, headers=ctx.patient)
    assert answered.status_code == 200, answered.text
    assert answered.json()["chronic_records"] == [record_id]
    record = ctx.client.get(f"/api/chronic/patients/{record_id}", headers=ctx.clinician).json()
    readings = [(r["systolic"], r["diastolic"]) for r in record["readings"]]
    assert (90, 60) in readings  # 12/8 kPa converted once, by the follow-up parser
    # an incomplete value is asked again and writes nothing
    again = {**answer, "text": "180/"}
    retried = ctx.client.post("/api/followup/answer", json=again, headers=ctx.patient)
    assert retried.json()["outcome"]["status"] == "retry" and retried.json()["chronic_records"] == []
