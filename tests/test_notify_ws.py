"""Push channel /ws/patient (server/notify.py) and the reminders REST API (server/reminders):
queued while away and shown on return, in order, acked ones never again, unacked ones again with
the same id, a second process's notifications, and REST bad input (each with its error code)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import icalendar
import jsonschema
import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession

from assistant.settings import Settings
from server import notify
from server.notify import NotificationHub
from server.patients import PatientDirectory
from server.reminders import ReminderRuntime
from server.reminders import router as reminders_router

T0 = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
HEARTBEAT_S = 0.1  # the server pings this often, so waiting for a frame never hangs


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class World:
    def __init__(self, client: TestClient, clock: Clock, path: Path, patients: PatientDirectory) -> None:
        self.client, self.clock, self.path, self.patients = client, clock, path, patients

    def patient(self) -> tuple[str, dict[str, str]]:
        patient_id, token = self.patients.create()
        return token, {"Authorization": f"Bearer {token}"}

    def remind(self, headers: dict[str, str], minutes: float = 1, **extra: Any) -> dict[str, Any]:
        at = (self.clock() + timedelta(minutes=minutes)).isoformat()
        body = {"kind": "medication", "title_zh": "吃药", "title_en": "Medicine", "first_at": at, **extra}
        response = self.client.post("/api/reminders", json=body, headers=headers)
        assert response.status_code == 201, response.json()
        return response.json()

    def wait_pending(self, headers: dict[str, str], count: int) -> list[dict[str, Any]]:
        """The scheduler loop runs every 20 ms of real time; wait (bounded) until it fired."""
        for _ in range(200):
            pending = self.client.get("/api/notifications", headers=headers).json()["notifications"]
            if len(pending) >= count:
                return pending
            time.sleep(0.02)
        raise AssertionError(f"expected {count} pending notifications")


def make_app(
    path: Path, clock: Callable[[], datetime], patients: PatientDirectory, tmp_path: Path
) -> FastAPI:
    settings = Settings(data_dir=tmp_path, reminder_poll_s=0.02)
    hub = NotificationHub(path, clock=clock, poll_s=0.02, heartbeat_s=HEARTBEAT_S, claim_s=60)
    runtime = ReminderRuntime(settings, hub, db_path=path)
    runtime.clock = clock

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()
            await hub.stop()
            hub.close()

    app = FastAPI(lifespan=lifespan)
    app.state.patients, app.state.notify, app.state.reminders = patients, hub, runtime
    app.include_router(notify.router)
    app.include_router(reminders_router)
    return app


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = Clock()
    patients = PatientDirectory(tmp_path / "patients.sqlite3")
    path = tmp_path / "reminders.sqlite3"
    with TestClient(make_app(path, clock, patients, tmp_path)) as client:
        yield World(client, clock, path, patients)
    patients.close()


def connect(world: World, token: str) -> WebSocketTestSession:
    return world.client.websocket_connect(f"/ws/patient?token={token}")


def next_notification(ws: WebSocketTestSession) -> dict[str, Any]:
    for _ in range(100):
        message = ws.receive_json()
        if message["type"] == "notification":
            return message
    raise AssertionError("no notification arrived")


def no_notification(ws: WebSocketTestSession, pings: int = 3) -> None:
    """Read until `pings` heartbeats went by; none of the frames may be a notification."""
    seen = 0
    while seen < pings:
        message = ws.receive_json()
        assert message["type"] != "notification", message
        seen += message["type"] == "ping"


def ack(ws: WebSocketTestSession, notification_id: str) -> int:
    ws.send_json({"type": "ack", "id": notification_id})
    for _ in range(100):
        message = ws.receive_json()
        if message["type"] == "acked":
            return int(message["count"])
    raise AssertionError("no acked")


def test_queued_while_away_shown_on_return_then_never_again_after_ack(world: World) -> None:
    token, headers = world.patient()
    reminder = world.remind(headers)
    world.clock.advance(minutes=3)
    world.wait_pending(headers, 1)
    with connect(world, token) as ws:
        assert ws.receive_json()["type"] == "ready"
        shown = next_notification(ws)
        assert shown["kind"] == "reminder" and shown["payload"]["reminder_id"] == reminder["reminder_id"]
        assert shown["payload"]["late"] is True  # fired 2 min after its time (grace 60 s)
        assert shown["redelivered"] is False
        assert ack(ws, shown["id"]) == 1
        assert ack(ws, shown["id"]) == 0  # a repeated ack changes nothing
    with connect(world, token) as ws:
        assert ws.receive_json()["type"] == "ready"
        no_notification(ws)
    assert world.client.get("/api/notifications", headers=headers).json()["notifications"] == []


def test_live_push_while_connected_and_unacked_redelivered_with_same_id(world: World) -> None:
    token, headers = world.patient()
    with connect(world, token) as ws:
        assert ws.receive_json()["type"] == "ready"
        world.remind(headers, minutes=1)
        world.clock.advance(minutes=1)
        live = next_notification(ws)
        assert live["payload"]["late"] is False
        no_notification(ws, pings=2)  # one connection never carries an id twice
    with connect(world, token) as ws:  # came back without acking: not lost
        assert ws.receive_json()["type"] == "ready"
        again = next_notification(ws)
        assert again["id"] == live["id"] and again["redelivered"] is True
        assert ack(ws, again["id"]) == 1


def test_thirty_reminders_at_one_minute_reach_a_connected_patient_once_each(world: World) -> None:
    token, headers = world.patient()
    ids = {world.remind(headers, minutes=1, title_zh=f"提醒 {n}")["reminder_id"] for n in range(30)}
    with connect(world, token) as ws:
        assert ws.receive_json()["type"] == "ready"
        world.clock.advance(minutes=1)
        got = [next_notification(ws) for _ in range(30)]
        assert {m["payload"]["reminder_id"] for m in got} == ids and len({m["id"] for m in got}) == 30
        ws.send_json({"type": "ack", "ids": [m["id"] for m in got]})
        while (message := ws.receive_json())["type"] != "acked":
            assert message["type"] != "notification"
        assert message["count"] == 30
        no_notification(ws, pings=2)


def test_backlog_in_publish_order_then_live(world: World) -> None:
    token, headers = world.patient()
    patient_id = world.patients.authenticate(token)
    assert patient_id is not None
    hub: NotificationHub = world.client.app.state.notify  # type: ignore[attr-defined]
    ids = [hub.publish(patient_id, "visit_step", {"step": n}) for n in range(5)]
    with connect(world, token) as ws:
        assert ws.receive_json()["type"] == "ready"
        got = [next_notification(ws) for _ in range(5)]
        assert [m["id"] for m in got] == ids and [m["payload"]["step"] for m in got] == list(range(5))
        live_id = hub.publish(patient_id, "report_ready", {"report": "blood_routine"})
        assert next_notification(ws)["id"] == live_id


def test_publish_from_many_threads_reaches_the_socket_once_each_in_order(world: World) -> None:
    token, _ = world.patient()
    patient_id = world.patients.authenticate(token)
    assert patient_id is not None
    hub: NotificationHub = world.client.app.state.notify  # type: ignore[attr-defined]
    with connect(world, token) as ws:
        assert ws.receive_json()["type"] == "ready"

        def burst(worker: int) -> None:
            for n in range(25):
                hub.publish(patient_id, "visit_step", {"worker": worker, "n": n})

        threads = [threading.Thread(target=burst, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        got = [next_notification(ws) for _ in range(100)]
        assert len({m["id"] for m in got}) == 100
        assert [m["seq"] for m in got] == sorted(m["seq"] for m in got)  # outbox order kept
        no_notification(ws, pings=2)


def test_dedupe_key_publishes_once(world: World) -> None:
    token, _ = world.patient()
    patient_id = world.patients.authenticate(token)
    assert patient_id is not None
    hub: NotificationHub = world.client.app.state.notify  # type: ignore[attr-defined]
    first = hub.publish(patient_id, "waitlist_promoted", {"slot": "x"}, dedupe_key="wl:1")
    assert hub.publish(patient_id, "waitlist_promoted", {"slot": "x"}, dedupe_key="wl:1") == first
    assert len(hub.pending(patient_id)) == 1


def test_notification_published_by_another_process_reaches_the_socket_once(world: World) -> None:
    token, _ = world.patient()
    patient_id = world.patients.authenticate(token)
    assert patient_id is not None
    other = NotificationHub(world.path, clock=world.clock, hub_id="other-process")  # same database
    with connect(world, token) as ws:
        assert ws.receive_json()["type"] == "ready"
        sent = other.publish(patient_id, "appointment_cancelled", {"appointment_id": "a1"})
        got = next_notification(ws)  # found by the poll of this process
        assert got["id"] == sent
        assert other.poll_once() == 0  # the other process has no socket for this patient
        no_notification(ws, pings=2)
        assert ack(ws, sent) == 1
    other.close()


def test_bad_token_is_refused_with_a_reason(world: World) -> None:
    with connect(world, "not-a-token") as ws:
        message = ws.receive_json()
        assert message["type"] == "error" and message["code"] == "bad_token"


def test_bad_frames_get_errors_not_a_crash(world: World) -> None:
    token, _ = world.patient()
    with connect(world, token) as ws:
        assert ws.receive_json()["type"] == "ready"
        for frame, code in (
            ("{nope", "bad_json"),
            ('{"type": "dance"}', "unknown_type"),
            ('{"type": "ack"}', "bad_message"),
        ):
            ws.send_text(frame)
            while (message := ws.receive_json())["type"] == "ping":
                pass
            assert message["type"] == "error" and message["code"] == code
        ws.send_json({"type": "ping"})
        while (message := ws.receive_json())["type"] == "ping":
            pass
        assert message["type"] == "pong"


# ------------------------------------------------------------------------------ REST


def test_rest_bad_input_each_with_its_code(world: World) -> None:
    _, headers = world.patient()
    base = {"kind": "medication", "title_zh": "吃药"}
    past = (world.clock() - timedelta(hours=1)).isoformat()
    future = (world.clock() + timedelta(hours=1)).isoformat()
    cases = [
        ({**base, "first_at": past}, 422, "time_in_past"),
        (
            {**base, "first_at": future, "rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=31"},
            422,
            "impossible_recurrence",
        ),
        ({**base, "first_at": future, "rrule": "FREQ=MINUTELY"}, 422, "too_frequent"),
        ({**base, "first_at": future, "tz": "Mars/Base"}, 422, "invalid_field"),
        ({**base, "first_at": "tomorrow-ish"}, 422, "invalid_field"),
        ({"kind": "nap", "title_zh": "x", "first_at": future}, 422, "invalid_field"),
    ]
    for body, status, code in cases:
        response = world.client.post("/api/reminders", json=body, headers=headers)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), body
    zh = world.client.post("/api/reminders", json=cases[0][0], headers=headers).json()["error"]["message"]
    en = world.client.post("/api/reminders?lang=en", json=cases[0][0], headers=headers).json()["error"][
        "message"
    ]
    assert "已经过去" in zh and "in the past" in en
    bad_json = world.client.post("/api/reminders", content=b"{", headers=headers)
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "bad_json"
    assert world.client.get("/api/reminders").json()["error"]["code"] == "auth_required"
    wrong = world.client.get("/api/reminders", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "bad_token"


def test_someone_elses_reminder_is_403_and_unknown_is_404(world: World) -> None:
    _, alice = world.patient()
    _, bob = world.patient()
    reminder = world.remind(alice)
    for action in ("ack", "stop"):
        response = world.client.post(f"/api/reminders/{reminder['reminder_id']}/{action}", headers=bob)
        assert response.status_code == 403 and response.json()["error"]["code"] == "not_your_reminder"
    assert world.client.post("/api/reminders/nope/stop", headers=alice).status_code == 404
    assert world.client.get("/api/reminders", headers=bob).json()["reminders"] == []


def test_ack_snooze_stop_over_rest(world: World) -> None:
    token, headers = world.patient()
    reminder = world.remind(headers, minutes=1, rrule="FREQ=DAILY", count=3)
    rid = reminder["reminder_id"]
    early = world.client.post(f"/api/reminders/{rid}/snooze", json={"minutes": 10}, headers=headers)
    assert early.status_code == 409 and early.json()["error"]["code"] == "nothing_to_snooze"
    bad = world.client.post(f"/api/reminders/{rid}/snooze", json={"minutes": 0}, headers=headers)
    assert bad.status_code == 422
    with connect(world, token) as ws:
        assert ws.receive_json()["type"] == "ready"
        world.clock.advance(minutes=1)
        first = next_notification(ws)
        snoozed = world.client.post(f"/api/reminders/{rid}/snooze", json={"minutes": 10}, headers=headers)
        assert snoozed.status_code == 200
        world.clock.advance(minutes=10)
        again = next_notification(ws)
        assert again["id"] != first["id"] and again["payload"]["snoozed"] is True
        assert again["payload"]["due_at"] == first["payload"]["due_at"]
        assert world.client.post(f"/api/reminders/{rid}/ack", headers=headers).status_code == 200
        assert (
            world.client.post(f"/api/reminders/{rid}/ack", headers=headers).json()["error"]["code"]
            == "nothing_to_ack"
        )
        stopped = world.client.post(f"/api/reminders/{rid}/stop", headers=headers).json()
        assert stopped["status"] == "stopped" and stopped["cancelled_occurrences"] == 1
        world.clock.advance(days=3)
        no_notification(ws)
    listed = world.client.get("/api/reminders", headers=headers).json()["reminders"]
    assert [r["status"] for r in listed] == ["stopped"]


def test_medication_course_and_ical_export(world: World) -> None:
    _, headers = world.patient()
    body = {"medicine": "阿莫西林", "times_per_day": 3, "course_days": 5, "start_date": "2026-11-25"}
    created = world.client.post("/api/reminders/medication", json=body, headers=headers)
    assert created.status_code == 201, created.json()
    (course,) = created.json()["reminders"]
    assert course["rrule"].endswith("COUNT=15")
    bad = world.client.post("/api/reminders/medication", json={**body, "times_per_day": 0}, headers=headers)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_field"
    response = world.client.get("/api/reminders.ics?lang=zh", headers=headers)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/calendar")
    (event,) = icalendar.Calendar.from_ical(response.text).walk("VEVENT")
    assert "阿莫西林" in str(event["SUMMARY"])
    assert event["RRULE"]["COUNT"] == [15] and event["DTSTART"].params["TZID"] == "Asia/Shanghai"
    assert event.decoded("DTSTART").hour == 8


# ------------------------------------------------------------------------------ real restart


def restart_app() -> FastAPI:
    """uvicorn --factory entry for the restart test: data in $REMINDER_TEST_DIR, the clock
    $REMINDER_TEST_OFFSET_S seconds ahead of the wall clock (the server was down that long)."""
    folder = Path(os.environ["REMINDER_TEST_DIR"])
    offset = timedelta(seconds=float(os.environ.get("REMINDER_TEST_OFFSET_S", "0")))
    patients = PatientDirectory(folder / "patients.sqlite3")
    return make_app(folder / "reminders.sqlite3", lambda: datetime.now(UTC) + offset, patients, folder)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(folder: Path, offset_s: float) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "REMINDER_TEST_DIR": str(folder), "REMINDER_TEST_OFFSET_S": str(offset_s)}
    tests_dir = Path(__file__).resolve().parent
    command = [sys.executable, "-m", "uvicorn", "--factory", "--app-dir", str(tests_dir)]
    command += [
        "test_notify_ws:restart_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, cwd=tests_dir.parent, env=env)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/api/reminders", timeout=1).status_code == 401:
                return process, base
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise AssertionError("the server did not start")


def _frames(base: str, token: str, *, pings: int) -> list[dict[str, Any]]:
    """Notifications over a real socket (acking each) until `pings` heartbeats went by."""
    from websockets.sync.client import connect as ws_connect

    got: list[dict[str, Any]] = []
    with ws_connect(base.replace("http", "ws") + f"/ws/patient?token={token}", open_timeout=10) as ws:
        seen = 0
        while seen < pings:
            message = json.loads(ws.recv(timeout=10))
            if message["type"] == "notification":
                got.append(message)
                ws.send(json.dumps({"type": "ack", "id": message["id"]}))
            seen += message["type"] == "ping"
    return got


def test_real_server_killed_between_scheduling_and_due_time(tmp_path: Path) -> None:
    patients = PatientDirectory(tmp_path / "patients.sqlite3")
    _, token = patients.create()
    patients.close()
    headers = {"Authorization": f"Bearer {token}"}
    first, base = _serve(tmp_path, 0)
    try:
        soon = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
        ids = []
        for n in range(3):
            body = {"kind": "revisit", "title_zh": f"复诊 {n}", "first_at": soon}
            ids.append(httpx.post(f"{base}/api/reminders", json=body, headers=headers).json()["reminder_id"])
        hourly = {
            "kind": "remeasure",
            "title_zh": "量体温",
            "first_at": soon,
            "rrule": "FREQ=HOURLY",
            "count": 3,
        }
        hourly_id = httpx.post(f"{base}/api/reminders", json=hourly, headers=headers).json()["reminder_id"]
    finally:
        first.send_signal(signal.SIGKILL)  # a crash, not a clean shutdown
        first.wait(timeout=10)

    second, base = _serve(tmp_path, 3 * 3600)  # back up three hours later
    try:
        delivered = _frames(base, token, pings=3)
    finally:
        second.terminate()
        second.wait(timeout=10)
    by_reminder = {m["payload"]["reminder_id"]: m for m in delivered}
    assert len(delivered) == len(by_reminder) == 4 and set(by_reminder) == {*ids, hourly_id}
    assert all(m["payload"]["late"] for m in delivered)
    assert len(by_reminder[hourly_id]["payload"]["missed_due_at"]) == 2  # COUNT=3: one fired, two listed

    third, base = _serve(tmp_path, 3 * 3600 + 60)  # and once more: nothing is sent twice
    try:
        assert _frames(base, token, pings=3) == []
    finally:
        third.terminate()
        third.wait(timeout=10)


# ------------------------------------------------------------------------------ AsyncAPI

PATIENT_ASYNCAPI = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "server" / "asyncapi_patient.yaml").read_text(encoding="utf-8")
)
_FRAME_SCHEMAS = {
    "ready": "Ready",
    "notification": "Notification",
    "acked": "Acked",
    "ping": "Ping",
    "pong": "Pong",
    "error": "Error",
}


def _valid(frame: dict[str, Any]) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{_FRAME_SCHEMAS[frame['type']]}"}
    jsonschema.validate(frame, {**schema, "components": PATIENT_ASYNCAPI["components"]})
    return frame


def test_every_frame_matches_the_asyncapi_document(world: World) -> None:
    token, headers = world.patient()
    with connect(world, "not-a-token") as ws:
        assert _valid(ws.receive_json())["code"] == "bad_token"
    with connect(world, token) as ws:
        assert _valid(ws.receive_json())["type"] == "ready"
        world.remind(headers, minutes=1)
        world.clock.advance(minutes=1)
        while (frame := _valid(ws.receive_json()))["type"] != "notification":
            pass
        ws.send_json({"type": "ack", "id": frame["id"]})
        while (reply := _valid(ws.receive_json()))["type"] != "acked":
            pass
        assert reply["count"] == 1
        ws.send_text('{"type": "dance"}')
        while (reply := _valid(ws.receive_json()))["type"] != "error":
            pass
        ws.send_json({"type": "ping"})
        while (reply := _valid(ws.receive_json()))["type"] != "pong":
            pass
    assert set(PATIENT_ASYNCAPI["channels"]["patient"]["messages"]) >= set(_FRAME_SCHEMAS)
