"""REST /api/chronic: clinician-only worklist and registration (family accounts get 403), readings with
units (bad ones are 422 with a zh/en message), the urgent flag with the triage engine's reading, clinic
isolation, and a linked patient recording their own reading."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from assistant.settings import Settings
from server.chronic import ChronicRuntime
from server.chronic.routes import router
from server.fever.models import AccountIn
from server.fever.runtime import FeverRuntime
from server.patients import PatientDirectory

API = "/api/chronic"
TODAY = date(2026, 11, 23)


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    settings = Settings(data_dir=tmp_path)
    fever, chronic = FeverRuntime(settings), ChronicRuntime(settings)
    patients = PatientDirectory(tmp_path / "patients.sqlite3")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await fever.start()
        await chronic.start()
        try:
            yield
        finally:
            await chronic.stop()
            await fever.stop()
            patients.close()

    app = FastAPI(lifespan=lifespan)
    app.state.fever, app.state.chronic, app.state.patients = fever, chronic, patients
    app.include_router(router)
    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def account(
    client: TestClient, username: str, role: str = "clinician", clinic: str = "demo-chc-east"
) -> dict:
    service = client.app.state.fever.service  # type: ignore[attr-defined]
    body = AccountIn(
        role=role,  # type: ignore[arg-type]
        username=username,
        password="correct horse",
        clinic_id=clinic,
        clinic_code="demo-clinic" if role == "clinician" else None,
    )
    token = service.create_account(body).data["token"]
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def doctor(client: TestClient) -> dict[str, str]:
    return account(client, "dr_wang")


def register(client: TestClient, auth: dict, **fields: Any) -> str:
    body = {"name": "张大爷", "conditions": ["hypertension"], "last_visit": "2026-10-01", **fields}
    response = client.post(f"{API}/patients", json=body, headers=auth)
    assert response.status_code == 201, response.json()
    return response.json()["patient_id"]


def post_reading(client: TestClient, auth: dict, pid: str, lang: str = "zh", **body: Any) -> Any:
    return client.post(f"{API}/patients/{pid}/readings?today={TODAY}&lang={lang}", json=body, headers=auth)


# ------------------------------------------------------------------------------------------------ auth


def test_family_account_is_refused_everywhere(client: TestClient, doctor: dict) -> None:
    pid = register(client, doctor)
    family = account(client, "mum", role="family")
    for response in (
        client.get(f"{API}/overdue", headers=family),
        client.post(f"{API}/patients", json={"name": "x", "conditions": ["diabetes"]}, headers=family),
        client.get(f"{API}/patients/{pid}", headers=family),
        post_reading(client, family, pid, kind="bp", text="150/95"),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "wrong_role"
        assert "医护" in response.json()["error"]["message"]


def test_sign_in_required(client: TestClient) -> None:
    response = client.get(f"{API}/overdue")
    assert response.status_code == 401 and response.json()["error"]["code"] == "auth_required"
    response = client.get(f"{API}/overdue?lang=en", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401 and response.json()["error"]["code"] == "bad_token"


def test_other_clinic_cannot_see_or_write(client: TestClient, doctor: dict) -> None:
    pid = register(client, doctor)
    other = account(client, "dr_li", clinic="demo-chc-lingxia")
    assert (
        post_reading(client, other, pid, kind="bp", text="150/95").json()["error"]["code"]
        == "not_your_clinic"
    )
    assert client.get(f"{API}/patients/{pid}", headers=other).status_code == 403
    assert client.get(f"{API}/overdue?today={TODAY}", headers=other).json()["count"] == 0
    missing = post_reading(client, doctor, "nope", kind="bp", text="150/95")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "patient_not_found"


# ------------------------------------------------------------------------------------------------ readings


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"kind": "bp", "text": "180/"}, "incomplete_bp"),
        ({"kind": "bp", "text": "/90"}, "incomplete_bp"),
        ({"kind": "bp", "systolic": 180}, "incomplete_bp"),
        ({"kind": "bp", "text": "90/150"}, "implausible_bp"),
        ({"kind": "bp", "text": "12/8 mmHg"}, "implausible_bp"),
        ({"kind": "bp", "systolic": 150, "diastolic": 95, "unit": "mg/dL"}, "unknown_unit"),
        ({"kind": "glucose", "text": "2000 mg/dL"}, "implausible_glucose"),
        ({"kind": "glucose", "text": "血糖很高"}, "bad_glucose"),
        ({"kind": "hba1c", "value": 72}, "implausible_hba1c"),
        ({"kind": "glucose"}, "missing_value"),
        ({"kind": "weight", "text": "60"}, "invalid_field"),
        ({"kind": "bp", "text": "150/95", "taken_on": "2026-12-01"}, "future_date"),
    ],
)
def test_bad_readings_are_422_in_both_languages(
    client: TestClient, doctor: dict, body: dict, code: str
) -> None:
    pid = register(client, doctor)
    zh = post_reading(client, doctor, pid, "zh", **body)
    en = post_reading(client, doctor, pid, "en", **body)
    assert zh.status_code == en.status_code == 422
    assert zh.json()["error"]["code"] == en.json()["error"]["code"] == code
    assert zh.json()["error"]["message"] != en.json()["error"]["message"]
    assert client.get(f"{API}/patients/{pid}?today={TODAY}", headers=doctor).json()["readings"] == []


def test_bad_json_is_400(client: TestClient, doctor: dict) -> None:
    pid = register(client, doctor)
    headers = {**doctor, "content-type": "application/json"}
    response = client.post(f"{API}/patients/{pid}/readings", content=b"{oops", headers=headers)
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_json"


def test_kpa_reading_is_converted_and_flagged(client: TestClient, doctor: dict) -> None:
    pid = register(client, doctor)
    response = post_reading(client, doctor, pid, "en", kind="bp", text="12/8")
    assert response.status_code == 201
    reading = response.json()["reading"]
    assert (reading["systolic"], reading["diastolic"], reading["converted"]) == (90, 60, True)
    assert reading["warnings"][0]["code"] == "assumed_kpa" and "kPa" in reading["warnings"][0]["message"]
    assert response.json()["classification"]["level"] == "on_target"


def test_glucose_in_mg_dl(client: TestClient, doctor: dict) -> None:
    pid = register(client, doctor, conditions=["diabetes"])
    response = post_reading(client, doctor, pid, kind="glucose", text="空腹 140 mg/dL")
    data = response.json()
    assert response.status_code == 201
    assert (data["reading"]["glucose_mmol"], data["reading"]["context"]) == (7.8, "fasting")
    assert data["reading"]["unit_given"] == "mg/dL" and data["reading"]["converted"] is True
    assert data["classification"]["level"] == "poorly_controlled" and data["urgent"] is False
    bare = post_reading(client, doctor, pid, kind="glucose", text="126", context="fasting").json()
    assert (
        bare["reading"]["glucose_mmol"] == 7.0 and bare["reading"]["warnings"][0]["code"] == "assumed_mg_dl"
    )


def test_urgent_reading_carries_the_rule_and_the_triage_result(client: TestClient, doctor: dict) -> None:
    pid = register(client, doctor)
    data = post_reading(client, doctor, pid, kind="bp", text="血压190/120", symptoms="头痛得厉害").json()
    assert data["urgent"] is True and data["classification"]["level"] == "urgent"
    assert {r["rule_id"] for r in data["urgent_rules"]} == {"HTN-URG-01", "HTN-URG-02"}
    assert data["triage"]["level"] in ("emergency", "emergency_ambulance")
    assert "120" in data["triage"]["advice"]
    assert data["status"]["urgent"] is True
    low = post_reading(client, doctor, pid, kind="glucose", value=3.2, context="random").json()
    assert low["urgent"] is True and low["urgent_rules"][0]["rule_id"] == "DM-URG-02"
    calm = post_reading(client, doctor, pid, kind="bp", systolic=132, diastolic=84, unit="mmHg").json()
    assert calm["urgent"] is False and calm["triage"] is None


# ------------------------------------------------------------------------------------------------ worklist


def test_overdue_list_sorted_with_reasons(client: TestClient, doctor: dict) -> None:
    def ago(n: int) -> str:
        return (TODAY - timedelta(days=n)).isoformat()

    fine = register(client, doctor, name="按时", last_visit=ago(20))
    post_reading(client, doctor, fine, kind="bp", text="128/80", taken_on=ago(20))
    late = register(client, doctor, name="逾期", last_visit=ago(120))
    post_reading(client, doctor, late, kind="bp", text="128/80", taken_on=ago(120))
    urgent = register(client, doctor, name="危急", last_visit=ago(10))
    post_reading(client, doctor, urgent, kind="bp", text="128/80", taken_on=ago(10))
    post_reading(client, doctor, urgent, kind="bp", text="高压185 低压100", taken_on=ago(1))
    never = register(client, doctor, name="未随访", conditions=["diabetes"], last_visit=None)
    elsewhere = account(client, "dr_zhao", clinic="demo-general-hospital")
    register(client, elsewhere, name="外院", last_visit=ago(300))

    response = client.get(f"{API}/overdue?today={TODAY}&lang=en", headers=doctor)
    assert response.status_code == 200
    data = response.json()
    names = [p["name"] for p in data["patients"]]
    assert names[0] == "危急" and set(names) == {"危急", "逾期", "未随访"}
    by_name = {p["name"]: p for p in data["patients"]}
    assert by_name["逾期"]["overdue_days"] == 30 and by_name["逾期"]["reasons"][0]["code"] == "overdue"
    assert "overdue" in by_name["逾期"]["reasons"][0]["message"]
    assert by_name["危急"]["reasons"][0]["rule_id"] == "HTN-URG-01"
    assert by_name["未随访"]["reasons"][0]["code"] == "no_visit"
    assert data["clinic_id"] == "demo-chc-east" and never in {p["patient_id"] for p in data["patients"]}
    # the newest reading comes with each entry (the clinic page needs no request per patient)
    assert by_name["危急"]["latest_reading"]["taken_on"] == ago(1)
    assert "185/100" in by_name["危急"]["latest_reading"]["display"]
    assert by_name["未随访"]["latest_reading"] is None


def test_visit_reading_moves_the_last_visit(client: TestClient, doctor: dict) -> None:
    pid = register(client, doctor, last_visit="2026-06-01")
    assert client.get(f"{API}/overdue?today={TODAY}", headers=doctor).json()["count"] == 1
    post_reading(client, doctor, pid, kind="bp", text="126/78", visit=True)
    assert client.get(f"{API}/overdue?today={TODAY}", headers=doctor).json()["count"] == 0
    view = client.get(f"{API}/patients/{pid}?today={TODAY}", headers=doctor).json()
    assert view["last_visit"] == TODAY.isoformat() and view["due_date"] == "2027-02-21"


def test_bad_today_and_bad_registration(client: TestClient, doctor: dict) -> None:
    response = client.get(f"{API}/overdue?today=2026-13-45", headers=doctor)
    assert response.status_code == 422 and response.json()["error"]["code"] == "bad_date"
    bad = client.post(f"{API}/patients", json={"name": "x", "conditions": ["asthma"]}, headers=doctor)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_field"
    future = client.post(
        f"{API}/patients",
        json={"name": "x", "conditions": ["diabetes"], "last_visit": "2099-01-01"},
        headers=doctor,
    )
    assert future.status_code == 422 and future.json()["error"]["code"] == "future_date"


def test_linked_patient_records_their_own_reading(client: TestClient, doctor: dict) -> None:
    directory: PatientDirectory = client.app.state.patients  # type: ignore[attr-defined]
    person, token = directory.create(display_name="李阿姨")
    stranger, stranger_token = directory.create()
    pid = register(client, doctor, conditions=["diabetes"], linked_patient_id=person)
    mine = post_reading(client, {"Authorization": f"Bearer {token}"}, pid, kind="glucose", text="餐后 9.1")
    assert mine.status_code == 201 and mine.json()["classification"]["level"] == "on_target"
    theirs = post_reading(
        client, {"Authorization": f"Bearer {stranger_token}"}, pid, kind="glucose", text="7"
    )
    assert theirs.status_code == 403 and theirs.json()["error"]["code"] == "not_your_record"
    worklist = client.get(f"{API}/overdue", headers={"Authorization": f"Bearer {token}"})
    assert worklist.status_code == 401  # patients never see the clinic list
