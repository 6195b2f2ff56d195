"""REST /api/visits: the escorted visit over HTTP, pushed step changes, ownership, bad input, and a
server restart in the middle of a visit (same SQLite file, new app)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from assistant.settings import Settings
from server.errors import install_error_handlers
from server.escort.routes import router as escort_router
from server.escort.service import EscortRuntime
from server.escort.store import EscortStore, VersionConflict
from server.patients import PatientDirectory
from tools.visit_escort import new_visit, transition

Pushed = list[tuple[str, str, dict[str, Any]]]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)  # 08:30 in Shanghai

    def __call__(self) -> datetime:
        return self.now

    def tick(self, minutes: int = 5) -> None:
        self.now += timedelta(minutes=minutes)


@contextmanager
def serve(
    data_dir: Path, clock: Clock, notify: Callable[[str, str, dict[str, Any]], None]
) -> Iterator[TestClient]:
    """A small app with the escort and patients; leaving the block stops it (closes the DBs)."""
    runtime = EscortRuntime(Settings(data_dir=data_dir), notify=notify)
    runtime.clock = clock
    patients = PatientDirectory(data_dir / "patients.sqlite3")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        await runtime.start()
        yield
        await runtime.stop()
        patients.close()

    app = FastAPI(lifespan=lifespan)
    app.state.escort = runtime
    app.state.patients = patients
    install_error_handlers(app)
    app.include_router(escort_router)
    with TestClient(app) as client:
        client.app_state = app.state  # type: ignore[attr-defined]
        yield client


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def pushed() -> Pushed:
    return []


@pytest.fixture()
def client(tmp_path: Path, clock: Clock, pushed: Pushed) -> Iterator[TestClient]:
    with serve(tmp_path, clock, lambda *args: pushed.append(args)) as c:
        yield c


def patient(client: TestClient, lang: str = "zh") -> tuple[str, dict[str, str]]:
    patient_id, token = client.app_state.patients.create(lang=lang)  # type: ignore[attr-defined]
    return patient_id, {"Authorization": f"Bearer {token}"}


def start(client: TestClient, headers: dict[str, str], dept: str = "dermatology", **extra: Any) -> dict:
    body = {"department_id": dept, "clinic_id": "demo-general-hospital", "appointment_id": "a-1", **extra}
    response = client.post("/api/visits", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def event(client: TestClient, headers: dict[str, str], visit_id: str, name: str, **kw: Any) -> Any:
    body: dict[str, Any] = {"event": name}
    if "data" in kw:
        body["data"] = kw.pop("data")
    return client.post(f"/api/visits/{visit_id}/events", json=body, headers=headers, **kw)


# ------------------------------------------------------------------------------ the visit


def test_a_visit_is_escorted_step_by_step_and_every_change_is_pushed(
    client: TestClient, clock: Clock, pushed: Pushed
) -> None:
    patient_id, headers = patient(client)
    view = start(client, headers)
    visit_id = view["visit"]["visit_id"]
    assert view["visit"]["step"] == "registered" and view["allowed_events"] == ["check_in", "cancel"]
    assert (
        view["guidance"]["title"] == "挂号" and view["guidance"]["where"]["node_id"] == "self_service_kiosk"
    )

    steps = []
    for name, data in [
        ("check_in", None),
        ("queued", None),
        ("called", None),
        ("consult_done", {"exams": ["blood_routine"], "has_prescription": True}),
        ("paid", None),
        ("exam_done", None),
        ("medicine_collected", None),
        ("report_ready", None),
        ("finish", None),
    ]:
        clock.tick()
        kwargs = {"data": data} if data is not None else {}
        response = event(client, headers, visit_id, name, **kwargs)
        assert response.status_code == 200, response.text
        steps.append(response.json()["visit"]["step"])
    assert steps == [
        "checked_in",
        "waiting",
        "consulting",
        "paying",
        "exams",
        "pharmacy",
        "reports",
        "follow_up",
        "done",
    ]
    assert [p[0] for p in pushed] == [patient_id] * 10 and {p[1] for p in pushed} == {"visit_step"}
    assert [p[2]["step"] for p in pushed] == ["registered", *steps]
    exams_push = pushed[5][2]
    assert exams_push["visit_id"] == visit_id and exams_push["event"] == "paid"
    assert exams_push["guidance"]["where"]["node_id"] == "blood_draw"
    assert exams_push["guidance"]["route_from"] == "payment_counter"

    log = client.get(f"/api/visits/{visit_id}", headers=headers).json()["events"]
    assert [e["event"] for e in log] == [
        "check_in",
        "queued",
        "called",
        "consult_done",
        "paid",
        "exam_done",
        "medicine_collected",
        "report_ready",
        "finish",
    ]
    assert log[3]["data"] == {"exams": ["blood_routine"], "has_prescription": True}


def test_queue_numbers_and_waiting_estimates_come_from_the_department_queue(
    client: TestClient, clock: Clock
) -> None:
    _, first = patient(client)
    _, second = patient(client)
    a = start(client, first)["visit"]["visit_id"]
    b = start(client, second)["visit"]["visit_id"]
    assert event(client, first, a, "check_in").json()["visit"]["queue_number"] == 1
    view = event(client, second, b, "check_in").json()
    assert view["visit"]["queue_number"] == 2 and view["guidance"]["queue_ahead"] == 1
    waiting = event(client, second, b, "queued").json()["guidance"]
    assert waiting["how_long"] == 8 and "前面还有 1 人" in waiting["what_next"]  # dermatology: 8 min each
    _, late = patient(client)
    not_yet = start(client, late)["visit"]["visit_id"]  # registered, not checked in: the whole queue
    late_plan = client.get(f"/api/visits/{not_yet}/plan", headers=late).json()["steps"]
    assert next(s for s in late_plan if s["step"] == "waiting")["how_long"] == 2 * 8
    event(client, first, a, "called")  # the first patient goes in
    after = client.get(f"/api/visits/{b}", headers=second).json()["guidance"]
    assert after["queue_ahead"] == 0 and after["how_long"] == 0
    # a new day starts a new queue
    clock.tick(24 * 60)
    _, third = patient(client)
    c = start(client, third)["visit"]["visit_id"]
    assert event(client, third, c, "check_in").json()["visit"]["queue_number"] == 1


def test_plan_lists_the_remaining_steps_for_the_kiosk(client: TestClient) -> None:
    _, headers = patient(client)
    visit_id = start(client, headers)["visit"]["visit_id"]
    for name in ("check_in", "called"):
        event(client, headers, visit_id, name)
    event(client, headers, visit_id, "consult_done", data={"has_prescription": True})
    result = client.get(f"/api/visits/{visit_id}/plan?lang=en", headers=headers).json()
    assert [s["step"] for s in result["steps"]] == ["paying", "pharmacy", "done"]
    assert [s["where"]["node_id"] for s in result["steps"]] == ["payment_counter", "pharmacy", None]
    assert result["steps"][0]["title"] == "Payment" and result["steps"][0]["bring"]
    assert result["total_minutes"] == 20 and "Payment" in result["qr_text"]


def test_language_follows_the_request_then_the_visit(client: TestClient) -> None:
    _, headers = patient(client, lang="en")
    view = start(client, headers)  # no lang given: the patient's language
    assert view["visit"]["lang"] == "en" and view["guidance"]["title"] == "Registration"
    visit_id = view["visit"]["visit_id"]
    zh = client.get(f"/api/visits/{visit_id}", headers={**headers, "Accept-Language": "zh-CN"}).json()
    assert zh["guidance"]["title"] == "挂号"
    assert (
        client.get(f"/api/visits/{visit_id}?lang=zh", headers=headers).json()["guidance"]["title"] == "挂号"
    )


# ------------------------------------------------------------------------------ restart and resume


def test_a_restart_mid_visit_keeps_the_step_and_the_visit_goes_on(tmp_path: Path, clock: Clock) -> None:
    first_run: Pushed = []
    with serve(tmp_path, clock, lambda *a: first_run.append(a)) as client:
        patient_id, headers = patient(client)
        visit_id = start(client, headers)["visit"]["visit_id"]
        event(client, headers, visit_id, "check_in")
        event(client, headers, visit_id, "called")
        event(client, headers, visit_id, "consult_done", data={"exams": ["ecg", "ct"]})
        event(client, headers, visit_id, "paid")
        event(client, headers, visit_id, "exam_done", data={"exam_id": "ecg"})
        before = client.get(f"/api/visits/{visit_id}", headers=headers).json()
    # the app stopped: the store is closed. A new app on the same files:
    clock.tick(30)
    second_run: Pushed = []
    with serve(tmp_path, clock, lambda *a: second_run.append(a)) as client:
        after = client.get(f"/api/visits/{visit_id}", headers=headers).json()
        assert after["visit"] == before["visit"]
        assert after["visit"]["step"] == "exams" and after["visit"]["exams_pending"] == ["ct"]
        assert after["guidance"]["where"]["node_id"] == "radiology_ct"
        assert after["guidance"]["route_from"] == "ecg_room"
        assert len(after["events"]) == 5
        view = event(client, headers, visit_id, "exam_done").json()
        assert view["visit"]["step"] == "reports"
        view = event(client, headers, visit_id, "report_ready").json()
        assert view["visit"]["step"] == "follow_up"
    assert [p[2]["step"] for p in second_run] == ["reports", "follow_up"]
    assert all(p[0] == patient_id for p in second_run)
    assert len(first_run) == 6


def test_a_kiosk_left_mid_flow_finds_the_open_visit_again(client: TestClient) -> None:
    _, headers = patient(client)
    done = start(client, headers)["visit"]["visit_id"]
    event(client, headers, done, "cancel")
    open_visit = start(client, headers, dept="cardiology")["visit"]["visit_id"]
    event(client, headers, open_visit, "check_in")
    active = client.get("/api/visits", headers=headers).json()["visits"]
    assert [v["visit"]["visit_id"] for v in active] == [open_visit]
    assert active[0]["visit"]["step"] == "checked_in" and active[0]["allowed_events"] == [
        "queued",
        "called",
        "cancel",
    ]
    everything = client.get("/api/visits?all=true", headers=headers).json()["visits"]
    assert {v["visit"]["visit_id"] for v in everything} == {done, open_visit}


# ------------------------------------------------------------------------------ errors


def test_another_patient_can_neither_read_nor_advance_the_visit(client: TestClient) -> None:
    _, owner = patient(client)
    _, stranger = patient(client)
    visit_id = start(client, owner)["visit"]["visit_id"]
    for response in (
        client.get(f"/api/visits/{visit_id}", headers=stranger),
        client.get(f"/api/visits/{visit_id}/plan", headers=stranger),
        event(client, stranger, visit_id, "check_in"),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "not_your_visit"
    assert client.get(f"/api/visits/{visit_id}", headers=owner).json()["visit"]["step"] == "registered"
    assert client.get("/api/visits", headers=stranger).json() == {"visits": []}


def test_a_bad_event_is_a_422_naming_the_current_step(client: TestClient, pushed: Pushed) -> None:
    _, headers = patient(client)
    visit_id = start(client, headers)["visit"]["visit_id"]
    pushed.clear()
    zh = event(client, headers, visit_id, "paid")
    assert zh.status_code == 422
    assert zh.json()["error"]["code"] == "bad_transition"
    assert "挂号" in zh.json()["error"]["message"] and "check_in" in zh.json()["error"]["message"]
    en = event(client, headers, visit_id, "paid", params={"lang": "en"})
    assert "Registration" in en.json()["error"]["message"]
    unknown = event(client, headers, visit_id, "fly_home", params={"lang": "en"})
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_event"
    event(client, headers, visit_id, "check_in")
    event(client, headers, visit_id, "called")
    bad_exam = event(client, headers, visit_id, "consult_done", data={"exams": ["room_404"]})
    assert bad_exam.status_code == 422 and bad_exam.json()["error"]["code"] == "unknown_exam"
    assert "room_404" in bad_exam.json()["error"]["message"]
    bad_data = event(client, headers, visit_id, "consult_done", data={"has_prescription": "lots"})
    assert bad_data.json()["error"]["code"] == "bad_event_data"
    assert [p[2]["step"] for p in pushed] == ["checked_in", "consulting"]  # rejected events push nothing
    assert client.get(f"/api/visits/{visit_id}", headers=headers).json()["visit"]["step"] == "consulting"


def test_unknown_visit_department_and_malformed_bodies(client: TestClient) -> None:
    _, headers = patient(client)
    missing = client.get("/api/visits/v-nope", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "visit_not_found"
    assert event(client, headers, "v-nope", "check_in").status_code == 404
    dept = client.post("/api/visits", json={"department_id": "time_travel"}, headers=headers)
    assert dept.status_code == 422 and dept.json()["error"]["code"] == "unknown_department"
    assert "time_travel" in dept.json()["error"]["message"]
    not_json = client.post("/api/visits", content=b"{oops", headers=headers)
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "bad_json"
    extra = client.post("/api/visits", json={"department_id": "ent", "floor": 3}, headers=headers)
    assert extra.status_code == 422 and extra.json()["error"]["code"] == "invalid_field"
    no_event = client.post("/api/visits/v-nope/events", json={}, headers=headers)
    assert no_event.status_code == 422 and "event" in no_event.json()["error"]["message"]
    anonymous = client.post("/api/visits", json={"department_id": "ent"})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "auth_required"


def test_default_clinic_comes_from_settings(client: TestClient) -> None:
    _, headers = patient(client)
    view = client.post("/api/visits", json={"department_id": "ent"}, headers=headers).json()
    assert view["visit"]["clinic_id"] == "demo-general-hospital"
    assert view["guidance"]["what_next"].count("耳鼻喉科") == 1


def test_a_failing_push_does_not_fail_or_undo_the_step(tmp_path: Path, clock: Clock) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("socket gone")

    with serve(tmp_path, clock, broken) as client:
        _, headers = patient(client)
        visit_id = start(client, headers)["visit"]["visit_id"]
        assert event(client, headers, visit_id, "check_in").status_code == 200
        assert client.get(f"/api/visits/{visit_id}", headers=headers).json()["visit"]["step"] == "checked_in"


# ------------------------------------------------------------------------------ store


def test_a_stale_write_is_refused_and_takes_no_queue_number(tmp_path: Path) -> None:
    store = EscortStore(tmp_path / "escort.sqlite3")
    now = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    day = date(2026, 11, 23)
    store.create(new_visit("v-1", "p-1", "c", "ent", now), day, now)
    stored = store.get("v-1")
    assert stored is not None
    after = transition(stored.state, "check_in", now)
    saved = store.save_transition(stored, after, "check_in", None, now, queue_day=day)
    assert saved.state.queue_number == 1 and saved.version == 2
    with pytest.raises(VersionConflict):
        store.save_transition(stored, after, "check_in", None, now, queue_day=day)  # stale version 1
    store.create(new_visit("v-2", "p-2", "c", "ent", now), day, now)
    other = store.get("v-2")
    assert other is not None
    numbered = store.save_transition(
        other, transition(other.state, "check_in", now), "check_in", None, now, queue_day=day
    )
    assert numbered.state.queue_number == 2  # the refused write did not use up number 2
    assert store.queue_ahead(numbered.state, day) == 1
    store.close()


def test_the_clinic_catalogue_decides_departments_rooms_and_exams(client: TestClient) -> None:
    _, headers = patient(client)
    no_clinic = client.post(
        "/api/visits", json={"department_id": "ent", "clinic_id": "nowhere"}, headers=headers
    )
    assert no_clinic.status_code == 422 and no_clinic.json()["error"]["code"] == "unknown_clinic"
    # a community centre has no cardiology (the department exists elsewhere)
    body = {"department_id": "cardiology", "clinic_id": "demo-chc-east"}
    not_here = client.post("/api/visits", json=body, headers=headers)
    assert not_here.status_code == 422 and not_here.json()["error"]["code"] == "unknown_department"
    view = start(client, headers, dept="general_practice", clinic_id="demo-chc-east")
    assert view["visit"]["room_id"] == "clinic_general_practice"
    visit_id = view["visit"]["visit_id"]
    event(client, headers, visit_id, "check_in")
    event(client, headers, visit_id, "called")
    no_ct = event(client, headers, visit_id, "consult_done", data={"exams": ["ct"]}, params={"lang": "en"})
    assert no_ct.status_code == 422 and no_ct.json()["error"]["code"] == "exam_not_offered"
    assert "demo-chc-east" in no_ct.json()["error"]["message"]
    ok = event(client, headers, visit_id, "consult_done", data={"exams": ["ecg"]})
    assert ok.json()["visit"]["step"] == "paying"
