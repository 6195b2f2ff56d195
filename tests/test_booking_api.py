"""REST /api/booking and /fhir: patient auth, Idempotency-Key handling, status codes and zh/en
error bodies for each bad input the issue lists, the waiting list through HTTP, and the demo
catalogue served by the runtime from Settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from booking_support import CHC, HOSPITAL, Clock, Outbox, directory
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pg_support import pg_url, postgres_server  # noqa: F401

from assistant.settings import Settings
from server.booking.routes import router
from server.booking.runtime import BookingRuntime
from server.errors import install_error_handlers
from server.patients import PatientDirectory

API = "/api/booking"
THURSDAY = "2026-11-26"


def slot(doctor: str, day: str, half_day: str, number: int) -> str:
    return f"{HOSPITAL}:{doctor}:{day}:{half_day}:{number:02d}"


def make_app(tmp_path: Path, runtime: BookingRuntime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        yield
        await runtime.stop()
        app.state.patients.close()

    app = FastAPI(lifespan=lifespan)
    app.state.booking = runtime
    app.state.patients = PatientDirectory(tmp_path / "p.sqlite3")
    install_error_handlers(app)
    app.include_router(router)
    return app


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
def client(tmp_path: Path, outbox: Outbox) -> Iterator[TestClient]:
    runtime = BookingRuntime(Settings(data_dir=tmp_path), outbox, directory=directory(), warm_up=False)
    runtime.default_clinic_id = HOSPITAL
    runtime.clock = Clock()
    with TestClient(make_app(tmp_path, runtime)) as c:
        yield c


def patient(client: TestClient, name: str = "A") -> dict[str, str]:
    token = client.app.state.patients.create(display_name=name)[1]  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {token}"}


def post(client: TestClient, path: str, headers: dict[str, str], body: Any, key: str | None = "k1") -> Any:
    extra = {"Idempotency-Key": key} if key is not None else {}
    return client.post(f"{API}{path}", headers=headers | extra, json=body)


def test_search_book_retry_list_cancel(client: TestClient) -> None:
    found = client.get(
        f"{API}/slots", params={"department_id": "dermatology", "date": THURSDAY, "half_day": "am"}
    )
    assert found.status_code == 200
    slot_id = found.json()["slots"][0]["slot_id"]
    alice = patient(client)
    first = post(client, "/appointments", alice, {"slot_id": slot_id})
    assert first.status_code == 201 and first.json()["appointment"]["status"] == "booked"
    retried = post(client, "/appointments", alice, {"slot_id": slot_id})
    assert retried.status_code == 200 and retried.json()["replayed"] is True
    assert retried.json()["appointment"]["appointment_id"] == first.json()["appointment"]["appointment_id"]
    listed = client.get(f"{API}/appointments", headers=alice).json()
    assert len(listed["appointments"]) == 1
    appointment_id = first.json()["appointment"]["appointment_id"]
    cancelled = client.post(f"{API}/appointments/{appointment_id}/cancel", headers=alice)
    assert cancelled.status_code == 200 and cancelled.json()["appointment"]["status"] == "cancelled"
    again = client.post(f"{API}/appointments/{appointment_id}/cancel", headers=alice, params={"lang": "en"})
    assert again.status_code == 409
    assert again.json()["error"] == {
        "code": "already_cancelled",
        "message": "This appointment has already been cancelled.",
    }


def test_auth_and_idempotency_key_are_required(client: TestClient) -> None:
    slot_id = slot("derm1", THURSDAY, "am", 1)
    anonymous = client.post(
        f"{API}/appointments", json={"slot_id": slot_id}, headers={"Idempotency-Key": "k"}
    )
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "auth_required"
    alice = patient(client)
    missing = post(client, "/appointments", alice, {"slot_id": slot_id}, key=None)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "idempotency_key_required"
    assert "Idempotency-Key" in missing.json()["error"]["message"]
    post(client, "/appointments", alice, {"slot_id": slot_id}, key="same")
    conflict = post(client, "/appointments", alice, {"slot_id": slot("derm1", THURSDAY, "am", 2)}, key="same")
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "idempotency_conflict"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"slot_id": slot("derm1", "2026-11-23", "am", 1)}, 201, None),  # 08:00 today: still ahead
        ({"slot_id": slot("derm1", "2026-11-20", "am", 1)}, 409, "slot_in_past"),
        ({"slot_id": slot("derm1", THURSDAY, "am", 9)}, 404, "slot_not_found"),
        ({"slot_id": "nonsense"}, 404, "slot_not_found"),
        ({"slot_id": slot("derm1", "2027-01-05", "am", 1)}, 422, "not_open_yet"),
        ({"slot_id": slot("derm1", THURSDAY, "am", 4)}, 403, "referral_only"),
        ({"slot_id": slot("derm1", THURSDAY, "am", 4), "referral_from": CHC}, 201, None),
        ({"slot_id": slot("derm1", THURSDAY, "am", 4), "referral_from": "demo-x"}, 422, "bad_referral"),
        ({}, 422, "invalid_field"),
        ({"slot_id": 12}, 422, "invalid_field"),
    ],
)
def test_bad_booking_input(client: TestClient, body: dict[str, Any], status: int, code: str | None) -> None:
    response = post(client, "/appointments", patient(client), body)
    assert response.status_code == status, response.text
    if code is not None:
        error = response.json()["error"]
        assert error["code"] == code and error["message"]


def test_not_json_and_unknown_department(client: TestClient) -> None:
    alice = patient(client)
    raw = client.post(f"{API}/appointments", headers=alice | {"Idempotency-Key": "k"}, content=b"[1, 2")
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "bad_json"
    unknown = client.get(f"{API}/slots", params={"department_id": "astrology", "lang": "en"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_department"
    assert "astrology" in unknown.json()["error"]["message"]
    zh = client.get(f"{API}/slots", params={"department_id": "astrology"})
    assert "没有可预约的科室" in zh.json()["error"]["message"]
    clinic = client.get(f"{API}/slots", params={"department_id": "dermatology", "clinic_id": "nowhere"})
    assert clinic.status_code == 404 and clinic.json()["error"]["code"] == "unknown_clinic"
    bad_date = client.get(f"{API}/slots", params={"department_id": "dermatology", "date": "2026-02-30"})
    assert bad_date.status_code == 422 and bad_date.json()["error"]["code"] == "bad_date"


def test_when_phrase_picks_the_day(client: TestClient) -> None:
    found = client.get(f"{API}/slots", params={"department_id": "dermatology", "when": "周四下午"})
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["when"]["date"] == THURSDAY and body["when"]["half_day"] == "pm"
    assert {s["date"] for s in body["slots"]} == {THURSDAY} and {s["half_day"] for s in body["slots"]} == {
        "pm"
    }
    impossible = client.get(f"{API}/slots", params={"department_id": "dermatology", "when": "13月5日"})
    assert impossible.status_code == 422 and impossible.json()["error"]["code"] == "bad_month"


def test_someone_elses_booking_and_the_waitlist_over_http(client: TestClient, outbox: Outbox) -> None:
    holders = [patient(client, f"p{n}") for n in (1, 2, 3)]
    ids = []
    for n, headers in enumerate(holders, start=1):
        made = post(client, "/appointments", headers, {"slot_id": slot("derm1", THURSDAY, "am", n)})
        ids.append(made.json()["appointment"]["appointment_id"])
    mallory = patient(client, "mallory")
    stolen = client.post(f"{API}/appointments/{ids[0]}/cancel", headers=mallory)
    assert stolen.status_code == 403 and stolen.json()["error"]["code"] == "not_your_appointment"
    peek = client.get(f"{API}/appointments/{ids[0]}", headers=mallory)
    assert peek.status_code == 403

    taken = post(client, "/appointments", mallory, {"slot_id": slot("derm1", THURSDAY, "am", 1)})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "slot_taken"
    hint = taken.json()["error"]["waitlist"]
    joined = post(client, "/waitlist", mallory, {k: hint[k] for k in ("department_id", "date", "half_day")})
    assert joined.status_code == 201 and joined.json()["entry"]["position"] == 1
    again = post(
        client, "/waitlist", mallory, {k: hint[k] for k in ("department_id", "date", "half_day")}, key="k2"
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_on_waitlist"
    bad = post(
        client,
        "/waitlist",
        mallory,
        {"department_id": "dermatology", "date": THURSDAY, "half_day": "eve"},
        key="k3",
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "bad_half_day"

    client.post(f"{API}/appointments/{ids[0]}/cancel", headers=holders[0])
    mine = client.get(f"{API}/appointments", headers=mallory).json()
    assert [a["source"] for a in mine["appointments"]] == ["waitlist"]
    assert mine["waitlist"][0]["status"] == "promoted"
    [(patient_id, kind, payload)] = outbox.sent
    assert kind == "waitlist_promoted" and payload["appointment"]["slot_id"] == slot(
        "derm1", THURSDAY, "am", 1
    )

    moved = post(
        client,
        f"/appointments/{ids[1]}/reschedule",
        holders[1],
        {"slot_id": slot("derm1", THURSDAY, "pm", 1)},
        key="move",
    )
    assert moved.status_code == 201 and moved.json()["previous"]["status"] == "cancelled"
    replay = post(
        client,
        f"/appointments/{ids[1]}/reschedule",
        holders[1],
        {"slot_id": slot("derm1", THURSDAY, "pm", 1)},
        key="move",
    )
    assert replay.status_code == 200 and replay.json()["replayed"] is True


def test_clinic_listing(client: TestClient) -> None:
    clinics = client.get(f"{API}/clinics").json()["clinics"]
    assert {c["id"] for c in clinics} == {HOSPITAL, CHC}
    one = client.get(f"{API}/clinics/{HOSPITAL}").json()["clinic"]
    assert [d["id"] for d in one["departments"]] == ["dermatology", "cardiology"]
    missing = client.get(f"{API}/clinics/nowhere")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_clinic"


def test_runtime_serves_the_demo_catalogue_from_settings(tmp_path: Path) -> None:
    runtime = BookingRuntime(Settings(data_dir=tmp_path))
    with TestClient(make_app(tmp_path, runtime)) as client:
        clinics = {c["id"]: c for c in client.get(f"{API}/clinics").json()["clinics"]}
        assert "demo-general-hospital" in clinics and clinics["demo-chc-east"]["kind"] == "community"
        found = client.get(f"{API}/slots", params={"department_id": "dermatology"})
        assert found.status_code == 200 and found.json()["clinic_id"] == "demo-general-hospital"
        assert found.json()["slots"], "the demo hospital has dermatology numbers this week"
        booked = post(
            client, "/appointments", patient(client), {"slot_id": found.json()["slots"][0]["slot_id"]}
        )
        assert booked.status_code == 201
    assert (tmp_path / "booking.sqlite3").exists()


def test_fhir_slots_schedules_and_appointments(client: TestClient) -> None:
    alice = patient(client)
    made = post(client, "/appointments", alice, {"slot_id": slot("derm1", THURSDAY, "am", 1)}).json()
    bundle = client.get(
        "/fhir/Slot", params={"department_id": "dermatology", "date": THURSDAY, "half_day": "am"}
    )
    assert bundle.status_code == 200 and bundle.headers["content-type"] == "application/fhir+json"
    slots = bundle.json()
    assert slots["resourceType"] == "Bundle" and slots["total"] == 4
    statuses = [e["resource"]["status"] for e in slots["entry"]]
    assert statuses == ["busy", "free", "free", "busy-unavailable"]  # number 4: reserved for referrals
    first = slots["entry"][0]["resource"]
    assert (
        first["id"] == "test-hospital.derm1.2026-11-26.am.01"
        and first["start"] == "2026-11-26T08:00:00+08:00"
    )

    schedules = client.get("/fhir/Schedule").json()
    assert {e["resource"]["id"] for e in schedules["entry"]} == {
        "test-hospital.derm1",
        "test-hospital.card1",
        "test-hospital.card2",
    }
    appointment_id = made["appointment"]["appointment_id"]
    resource = client.get(f"/fhir/Appointment/{appointment_id}", headers=alice).json()
    assert resource["resourceType"] == "Appointment" and resource["status"] == "booked"
    assert resource["slot"] == [{"reference": f"Slot/{first['id']}"}]
    assert resource["participant"][1]["actor"]["reference"] == "Practitioner/test-hospital.derm1"
    assert client.get(f"/fhir/Appointment/{appointment_id}", headers=patient(client, "B")).status_code == 403
    assert client.get("/fhir/Appointment").status_code == 401
    listed = client.get("/fhir/Appointment", headers=alice).json()
    assert listed["total"] == 1


def test_exam_booking_and_clinician_report_ready(client: TestClient, outbox: Outbox) -> None:
    alice = patient(client)
    body = {
        "exam_ids": ["blood_routine"],
        "ordering_department_id": "cardiology",
        "ordering_doctor_id": "card1",
    }
    booked = post(client, "/exams", alice, body)
    assert booked.status_code == 201, booked.text
    exam_booking_id = booked.json()["bookings"][0]["exam_booking_id"]
    assert post(client, "/exams", alice, body).status_code == 200  # the retry replays
    assert (
        post(client, "/exams", alice, {"exam_ids": ["xray"]}, key="k2").json()["error"]["code"]
        == "unknown_exam"
    )
    listed = client.get(f"{API}/exams", headers=alice).json()["exam_bookings"]
    assert [b["exam_booking_id"] for b in listed] == [exam_booking_id]

    path = f"{API}/exams/{exam_booking_id}/report-ready"
    assert client.post(path).status_code == 401  # no clinician sign-in available
    accounts = {"t-clin": SimpleNamespace(role="clinician"), "t-fam": SimpleNamespace(role="family")}
    client.app.state.fever = SimpleNamespace(service=SimpleNamespace(authenticate=accounts.__getitem__))  # type: ignore[attr-defined]
    family = client.post(path, headers={"Authorization": "Bearer t-fam"})
    assert family.status_code == 403 and family.json()["error"]["code"] == "wrong_role"
    ready = client.post(path, headers={"Authorization": "Bearer t-clin"})
    assert ready.status_code == 200 and ready.json()["notified"] is True
    assert ready.json()["offer"]["doctor_id"] == "card1"
    assert [n[1] for n in outbox.sent] == ["report_ready"]


def test_runtime_uses_postgresql_from_the_database_url(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("pg_url")
    runtime = BookingRuntime(
        Settings(data_dir=tmp_path, booking_db_url=url), directory=directory(), warm_up=False
    )
    runtime.clock = Clock()
    with TestClient(make_app(tmp_path, runtime)) as client:
        assert runtime.service.db.dialect == "postgresql"
        alice = patient(client)
        made = post(client, "/appointments", alice, {"slot_id": slot("derm1", THURSDAY, "am", 1)})
        assert made.status_code == 201
        taken = post(
            client, "/appointments", patient(client, "B"), {"slot_id": slot("derm1", THURSDAY, "am", 1)}
        )
        assert taken.json()["error"]["code"] == "slot_taken"
    assert not (tmp_path / "booking.sqlite3").exists()


def test_bench_booking_reports_throughput() -> None:
    from evals.bench_booking import bench_booking

    result = bench_booking(20)
    assert result["n"] == 20 and result["bookings_per_s"] > 0 and result["concurrent_bookings_per_s"] > 0
    assert 0 < result["p50_ms"] <= result["p95_ms"]
