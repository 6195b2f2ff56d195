"""Patients without passwords: ids and bearer tokens for chat and kiosk visitors."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from server.errors import install_error_handlers
from server.patients import PatientDirectory, require_patient, router


@pytest.fixture()
def client(tmp_path: Path) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.state.patients = PatientDirectory(tmp_path / "patients.sqlite3")
    app.include_router(router)

    @app.get("/whoami")
    async def whoami(patient_id: str = Depends(require_patient)) -> dict[str, str]:
        return {"patient_id": patient_id}

    return TestClient(app)


def test_created_token_identifies_the_patient(client: TestClient) -> None:
    made = client.post("/api/patients", json={"display_name": "王阿姨", "lang": "zh"})
    assert made.status_code == 201
    body = made.json()
    assert body["patient_id"].startswith("p-")
    who = client.get("/whoami", headers={"Authorization": f"Bearer {body['token']}"})
    assert who.json() == {"patient_id": body["patient_id"]}


def test_two_patients_get_different_ids_and_tokens(client: TestClient) -> None:
    a, b = client.post("/api/patients").json(), client.post("/api/patients").json()
    assert a["patient_id"] != b["patient_id"] and a["token"] != b["token"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}])
def test_missing_or_wrong_token_is_401_with_a_message(client: TestClient, headers: dict[str, str]) -> None:
    r = client.get("/whoami?lang=en", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "auth_required"
    assert "patient pass" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": "call me"}, "phone"),
        ({"lang": "fr"}, "lang"),
        ({"display_name": "x" * 61}, "display_name"),
    ],
)
def test_bad_fields_are_422_naming_the_field(client: TestClient, body: dict[str, str], field: str) -> None:
    r = client.post("/api/patients", json=body)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_field"
    assert field in r.json()["error"]["message"]


def test_not_json_is_a_clear_error_not_a_crash(client: TestClient) -> None:
    r = client.post("/api/patients", content=b"\xff\xfe", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_field"


def test_tokens_survive_reopening_the_database(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite3"
    first = PatientDirectory(path)
    patient_id, token = first.create(village="岭下村")
    first.close()
    again = PatientDirectory(path)
    assert again.authenticate(token) == patient_id
    assert again.profile(patient_id)["village"] == "岭下村"
