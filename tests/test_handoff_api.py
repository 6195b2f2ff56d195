"""REST of server/handoff: SBAR and FHIR for clinicians only (fever accounts), unknown sessions
404, follow-up answers for patients (server/patients bearer tokens) that raise clinic flags."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from assistant.session import ConversationSession
from assistant.settings import Settings
from server.fever import routes as fever_routes
from server.fever.runtime import FeverRuntime
from server.handoff import HandoffRuntime
from server.handoff import routes as handoff_routes
from server.patients import PatientDirectory
from server.store import Decision, SessionStore

CLINIC_CODE = "handoff-ward-code"
PASSWORD = "correct-horse-42"
BURIED = "挺好的，就是今天早上胸口压着疼，出冷汗，别的都还行"


@dataclass
class Ctx:
    client: TestClient
    settings: Settings
    patients: PatientDirectory
    clinician: dict[str, str]
    family: dict[str, str]
    patient: dict[str, str]
    other_patient: dict[str, str]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _account(client: TestClient, role: str, username: str) -> dict[str, str]:
    body: dict[str, Any] = {
        "role": role,
        "username": username,
        "password": PASSWORD,
        "display_name": username,
    }
    if role == "clinician":
        body["clinic_code"] = CLINIC_CODE
    response = client.post("/api/fever/accounts", json=body)
    assert response.status_code == 201, response.text
    return _bearer(response.json()["token"])


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Ctx]:
    settings = Settings(data_dir=tmp_path, llm_backend="none", clinic_code=CLINIC_CODE)
    fever = FeverRuntime(settings)
    handoff = HandoffRuntime(settings, notify=lambda *_: None)
    patients = PatientDirectory(tmp_path / "patients.sqlite3")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await fever.start()
        await handoff.start()
        yield
        await handoff.stop()
        await fever.stop()

    app = FastAPI(lifespan=lifespan)
    app.state.fever, app.state.handoff, app.state.patients = fever, handoff, patients
    app.include_router(fever_routes.router)
    app.include_router(handoff_routes.router)
    with TestClient(app) as client:
        _, token = patients.create(display_name="张阿姨")
        _, other = patients.create(display_name="李叔")
        yield Ctx(
            client,
            settings,
            patients,
            clinician=_account(client, "clinician", "nurse_wang"),
            family=_account(client, "family", "mum_li"),
            patient=_bearer(token),
            other_patient=_bearer(other),
        )
    patients.close()


def _chat_session(settings: Settings, messages: list[str]) -> str:
    store = SessionStore(settings.db_path)
    session = ConversationSession()
    for text in messages:
        reply = session.handle_user_message(text)
        decision = Decision(session.last_result, text) if session.last_result else None
        store.record_turn(
            session.session_id, session.to_dict(), [("user", text), ("assistant", reply.text)], decision
        )
    store.close()
    return session.session_id


# --------------------------------------------------------------------------------------------
# SBAR and FHIR: clinicians only
# --------------------------------------------------------------------------------------------


def test_clinician_reads_the_sbar_of_a_stored_chat(ctx: Ctx) -> None:
    sid = _chat_session(ctx.settings, ["我爸爸65岁，今天早上胸口压着疼，出冷汗"])
    response = ctx.client.get(f"/api/handoff/sessions/{sid}?lang=zh", headers=ctx.clinician)
    assert response.status_code == 200, response.text
    sbar = response.json()["sbar"]
    assert sbar["assessment"]["level"] == "emergency_ambulance"
    assert "RF-CARD-01" in sbar["assessment"]["rule_ids"]
    assert sbar["assessment"]["engine_version"] and sbar["assessment"]["knowledge_version"]
    assert [s["code"] for s in sbar["sections"]] == ["S", "B", "A", "R"]
    english = ctx.client.get(f"/api/handoff/sessions/{sid}?lang=en", headers=ctx.clinician).json()["sbar"]
    assert english["assessment"]["level_label"] == "Call 120 now"


def test_fhir_export_is_a_document_bundle(ctx: Ctx) -> None:
    sid = _chat_session(ctx.settings, ["我爸爸65岁，今天早上胸口压着疼，出冷汗"])
    response = ctx.client.get(f"/api/handoff/sessions/{sid}/fhir", headers=ctx.clinician)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    bundle = response.json()
    assert bundle["type"] == "document" and bundle["entry"][0]["resource"]["resourceType"] == "Composition"
    identifiers = [
        e["resource"].get("identifier") for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    assert identifiers[0][0]["value"] == f"session:{sid}"


@pytest.mark.parametrize(
    "path", ["/api/handoff/sessions/{sid}", "/api/handoff/sessions/{sid}/fhir", "/api/handoff/flags"]
)
def test_family_accounts_and_strangers_are_refused(ctx: Ctx, path: str) -> None:
    sid = _chat_session(ctx.settings, ["头痛两天"])
    url = path.format(sid=sid)
    anonymous = ctx.client.get(url)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "auth_required"
    forged = ctx.client.get(url, headers=_bearer("not-a-token"))
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "bad_token"
    family = ctx.client.get(url + "?lang=en", headers=ctx.family)
    assert family.status_code == 403 and family.json()["error"]["code"] == "wrong_role"
    assert "clinician" in family.json()["error"]["message"]
    patient = ctx.client.get(url, headers=ctx.patient)  # a patient token is not a clinician token
    assert patient.status_code == 401


def test_unknown_session_is_404_in_the_requested_language(ctx: Ctx) -> None:
    for sid in ("no-such-session", "bad id with spaces", "x" * 200):
        response = ctx.client.get(f"/api/handoff/sessions/{sid}?lang=en", headers=ctx.clinician)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "session_not_found"
    zh = ctx.client.get("/api/handoff/sessions/nope/fhir", headers=ctx.clinician)
    assert zh.status_code == 404 and "找不到" in zh.json()["error"]["message"]


# --------------------------------------------------------------------------------------------
# Follow-up answers and clinic flags
# --------------------------------------------------------------------------------------------


def _answer(ctx: Ctx, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return ctx.client.post("/api/followup/answer", json=body, headers=headers or ctx.patient)


def test_buried_red_flag_escalates_and_the_clinician_sees_the_flag(ctx: Ctx) -> None:
    body = {"plan_id": "post_surgery", "check_id": "day3", "question_id": "ps.wound_redness", "text": BURIED}
    response = _answer(ctx, body)
    assert response.status_code == 200, response.text
    data = response.json()
    escalation = data["outcome"]["escalation"]
    assert (
        escalation["level"] == "emergency_ambulance" and escalation["call_120"] and escalation["clinic_flag"]
    )
    assert "120" in data["outcome"]["message"]
    assert data["flag"]["kind"] == "escalation" and data["flag"]["call_120"] is True
    conversation_id = data["conversation"]["conversation_id"]

    flags = ctx.client.get("/api/handoff/flags", headers=ctx.clinician).json()["flags"]
    assert [f["conversation_id"] for f in flags] == [conversation_id]
    assert flags[0]["level"] == "emergency_ambulance" and flags[0]["answer_text"] == BURIED
    assert "RF-CARD-01" in {f["rule_id"] for f in flags[0]["red_flags"]}

    # the follow-up conversation has its own SBAR, readable by id
    sbar = ctx.client.get(f"/api/handoff/sessions/{conversation_id}", headers=ctx.clinician).json()["sbar"]
    assert sbar["assessment"]["level"] == "emergency_ambulance" and BURIED in sbar["background"]["statements"]
    assert sbar["situation"]["text"].startswith("随访：术后随访（day3）")

    done = ctx.client.post(f"/api/handoff/flags/{flags[0]['flag_id']}/acknowledge", headers=ctx.clinician)
    assert done.status_code == 200 and done.json()["flag"]["acknowledged_at"]
    assert ctx.client.get("/api/handoff/flags", headers=ctx.clinician).json()["flags"] == []
    assert len(ctx.client.get("/api/handoff/flags?status=all", headers=ctx.clinician).json()["flags"]) == 1


def test_benign_answers_raise_no_flag_and_continue_the_same_conversation(ctx: Ctx) -> None:
    first = _answer(
        ctx, {"plan_id": "post_surgery", "check_id": "day1", "question_id": "ps.fever", "text": "没有"}
    )
    data = first.json()
    assert data["outcome"]["escalation"] is None and data["flag"] is None
    assert data["outcome"]["next_question"]["question_id"] == "ps.pain"
    conversation_id = data["conversation"]["conversation_id"]
    second = _answer(
        ctx,
        {"conversation_id": conversation_id, "check_id": "day1", "question_id": "ps.pain", "text": "没有"},
    )
    assert second.json()["conversation"] == {
        "conversation_id": conversation_id,
        "plan_id": "post_surgery",
        "level": "self_care",
        "answers": 2,
    }
    assert ctx.client.get("/api/handoff/flags", headers=ctx.clinician).json()["flags"] == []


def test_retry_answers_are_not_recorded(ctx: Ctx) -> None:
    body = {
        "plan_id": "hypertension_checkin",
        "check_id": "morning.1",
        "question_id": "htn.bp",
        "text": "180/",
    }
    data = _answer(ctx, body).json()
    assert data["outcome"]["status"] == "retry" and data["flag"] is None
    assert data["conversation"]["answers"] == 0


def test_patients_cannot_answer_into_someone_elses_conversation(ctx: Ctx) -> None:
    mine = _answer(
        ctx, {"plan_id": "post_er_visit", "question_id": "er.better_worse", "text": "好多了"}
    ).json()
    cid = mine["conversation"]["conversation_id"]
    other = _answer(
        ctx, {"conversation_id": cid, "question_id": "er.better_worse", "text": "好"}, ctx.other_patient
    )
    assert other.status_code == 404 and other.json()["error"]["code"] == "conversation_not_found"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"plan_id": "post_lunch", "question_id": "x", "text": "hi"}, 404, "unknown_plan"),
        ({"plan_id": "post_surgery", "question_id": "htn.bp", "text": "hi"}, 404, "unknown_question"),
        ({"question_id": "ps.fever", "text": "没有"}, 422, "plan_required"),
        ({"plan_id": "post_surgery", "question_id": "ps.fever"}, 422, "invalid_field"),
        (
            {"plan_id": "post_surgery", "question_id": "ps.fever", "text": "x", "mood": "ok"},
            422,
            "invalid_field",
        ),
    ],
)
def test_bad_follow_up_requests_get_clear_errors(
    ctx: Ctx, body: dict[str, Any], status: int, code: str
) -> None:
    response = _answer(ctx, body)
    assert response.status_code == status and response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_follow_up_needs_a_patient_token_and_json(ctx: Ctx) -> None:
    body = {"plan_id": "post_surgery", "question_id": "ps.fever", "text": "没有"}
    assert ctx.client.post("/api/followup/answer", json=body).status_code == 401
    assert ctx.client.post("/api/followup/answer", json=body, headers=ctx.clinician).status_code == 401
    broken = ctx.client.post("/api/followup/answer", content=b"{not json", headers=ctx.patient)
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "bad_json"
    listed = ctx.client.post("/api/followup/answer", json=[body], headers=ctx.patient)
    assert listed.status_code == 400
