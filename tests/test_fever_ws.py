"""Websocket /ws/fever: red alerts at once, grades, reminders when due, Bluetooth frames streamed by
the parent page, and the clinician side (sent forms within 1 s, callback requests)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from assistant.settings import Settings
from server.app import create_app
from server.rules_chat import RulesOnlyChatService
from tools.ble_thermometer import ThermometerSimulator

STUB_KB = SimpleNamespace(knowledge_version="kb-test")
API = "/api/fever"
HEARTBEAT_S = 0.2  # the server pings this often, so a test waiting for a message never hangs


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(tmp_path: Path, clock: Clock) -> Iterator[TestClient]:
    app = create_app(
        Settings(data_dir=tmp_path, ws_heartbeat_s=HEARTBEAT_S),
        chat_service=RulesOnlyChatService(),
        knowledge_loader=lambda s: STUB_KB,
    )
    app.state.fever.clock = clock
    app.state.fever.config.reminder_check_s = 0.05
    with TestClient(app) as c:
        yield c


def signup(client: TestClient, username: str, role: str = "family", **extra: Any) -> dict[str, Any]:
    body = {"role": role, "username": username, "password": "correct horse", **extra}
    if role == "clinician":
        body.setdefault("clinic_code", "demo-clinic")
    response = client.post(f"{API}/accounts", json=body)
    assert response.status_code == 201, response.json()
    return response.json()


def auth(account: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {account['token']}"}


def add_child(client: TestClient, family: dict[str, Any], **fields: Any) -> str:
    born = (date.today() - timedelta(days=730)).isoformat()
    body = {"name": "小明", "birth_date": born, "weight_kg": 12.0, **fields}
    response = client.post(f"{API}/children", json=body, headers=auth(family))
    assert response.status_code == 201
    return str(response.json()["child_id"])


def socket(client: TestClient, account: dict[str, Any]) -> Any:
    return client.websocket_connect(f"/ws/fever?token={account['token']}")


def receive(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    """The next message that is not a heartbeat."""
    deadline = time.monotonic() + timeout
    while True:
        message = ws.receive_json()
        if message["type"] != "ping":
            return message
        assert time.monotonic() < deadline, "no message in time"


def ready(ws: Any) -> dict[str, Any]:
    message = receive(ws)
    assert message["type"] == "ready", message
    return message


def assert_nothing_queued(ws: Any) -> None:
    """A ping is answered in order: a pong first means nothing else was waiting to be sent."""
    ws.send_json({"type": "ping"})
    message = receive(ws)
    assert message == {"type": "pong"}, message


@pytest.fixture
def family(client: TestClient) -> dict[str, Any]:
    return signup(client, "mum")


# ------------------------------------------------------------------------------ connecting


def test_a_bad_token_is_told_why_and_closed(client: TestClient) -> None:
    with client.websocket_connect("/ws/fever?token=forged") as ws:
        message = ws.receive_json()
        assert message["type"] == "error" and message["code"] == "bad_token" and " / " in message["message"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4401
    with client.websocket_connect("/ws/fever") as ws:
        assert ws.receive_json()["code"] == "auth_required"


def test_ready_names_the_account(client: TestClient, family: dict[str, Any]) -> None:
    with socket(client, family) as ws:
        hello = ready(ws)
        assert hello["account_id"] == family["account_id"] and hello["role"] == "family"
        assert_nothing_queued(ws)


# ------------------------------------------------------------------------------ family: grades and alerts


def test_a_change_to_red_pushes_an_alert_at_once(client: TestClient, family: dict[str, Any]) -> None:
    child_id = add_child(client, family)
    neighbour = signup(client, "neighbour")
    with socket(client, family) as ws, socket(client, neighbour) as other:
        ready(ws)
        ready(other)
        client.post(
            f"{API}/children/{child_id}/readings",
            json={"value": 38.6, "site": "axillary"},
            headers=auth(family),
        )
        green = receive(ws)
        assert (
            green["type"] == "grade" and green["child_id"] == child_id and green["grade"]["colour"] == "green"
        )
        started = time.monotonic()
        client.post(
            f"{API}/children/{child_id}/symptoms", json={"text": "孩子抽搐，叫不醒"}, headers=auth(family)
        )
        red = receive(ws)
        alert = receive(ws)
        assert time.monotonic() - started < 5.0  # pushed at once, not on the next reminder tick
        assert red["type"] == "grade" and red["grade"]["colour"] == "red" and red["colour_changed"] is True
        assert alert["type"] == "alert" and alert["child_id"] == child_id and alert["colour"] == "red"
        assert alert["call_120"] is True and "120" in alert["message"]
        assert "急诊" in alert["nearest_emergency"] and "120" in alert["nearest_emergency"]
        # still red: a new grade, no second alert
        client.post(
            f"{API}/children/{child_id}/readings",
            json={"value": 39.1, "site": "axillary"},
            headers=auth(family),
        )
        assert receive(ws)["type"] == "grade"
        assert_nothing_queued(ws)
        # another family hears nothing of this child
        assert_nothing_queued(other)


def test_red_without_call_120_also_alerts(client: TestClient, family: dict[str, Any]) -> None:
    child_id = add_child(client, family)
    with socket(client, family) as ws:
        ready(ws)
        client.post(
            f"{API}/children/{child_id}/symptoms", json={"text": "皮疹压了不褪色"}, headers=auth(family)
        )
        grade = receive(ws)
        alert = receive(ws)
        assert grade["grade"]["colour"] == "red" and grade["grade"]["call_120"] is False
        assert alert["type"] == "alert" and alert["call_120"] is False and alert["nearest_emergency"]


# ------------------------------------------------------------------------ family: streaming a thermometer


def test_ble_frames_streamed_over_the_socket(client: TestClient, family: dict[str, Any]) -> None:
    child_id = add_child(client, family)
    start = (datetime.now(UTC) - timedelta(hours=2)).replace(tzinfo=None, microsecond=0)
    sim = ThermometerSimulator(start=start, interval=timedelta(minutes=20), temperatures_c=[38.2, 38.9, 39.3])
    received_at = datetime.now(UTC).isoformat()
    with socket(client, family) as ws:
        ready(ws)
        for n, frame in enumerate(sim.take(3)):
            ws.send_json(
                {
                    "type": "ble",
                    "child_id": child_id,
                    "payload_hex": frame.hex(),
                    "received_at": received_at,
                    "client_msg_id": f"m{n}",
                }
            )
            saved = receive(ws)
            assert (
                saved["type"] == "saved" and saved["duplicate"] is False and saved["client_msg_id"] == f"m{n}"
            )
            assert receive(ws)["type"] == "grade"
        # the thermometer reconnects and replays its memory: every frame is a repeat, nothing is graded
        for frame in sim.reconnect():
            ws.send_json(
                {"type": "ble", "child_id": child_id, "payload_hex": frame.hex(), "received_at": received_at}
            )
            saved = receive(ws)
            assert saved["type"] == "saved" and saved["duplicate"] is True
        assert_nothing_queued(ws)
        ws.send_json({"type": "ble", "child_id": child_id, "payload_hex": "0001", "client_msg_id": "bad"})
        error = receive(ws)
        assert (
            error["type"] == "error" and error["code"] == "malformed_ble" and error["reason"] == "too_short"
        )
        assert error["client_msg_id"] == "bad" and error["child_id"] == child_id
        ws.send_json({"type": "reading", "child_id": child_id, "value": 385, "site": "ear"})
        saved = receive(ws)
        assert (
            saved["reading"]["value_c"] == 38.5
            and saved["reading"]["warnings"][0]["code"] == "assumed_decimal_point"
        )
        assert receive(ws)["type"] == "grade"
    readings = client.get(f"{API}/children/{child_id}/timeline", headers=auth(family)).json()["readings"]
    assert [r["value_c"] for r in readings] == [38.2, 38.9, 39.3, 38.5]


def test_bad_socket_messages_get_errors_and_the_socket_stays_usable(
    client: TestClient, family: dict[str, Any]
) -> None:
    mine = add_child(client, family)
    other_family = signup(client, "other")
    theirs = add_child(client, other_family)
    with socket(client, family) as ws:
        ready(ws)
        ws.send_text("not json")
        assert receive(ws)["code"] == "bad_json"
        ws.send_json({"type": "dance"})
        assert receive(ws)["code"] == "unknown_type"
        ws.send_json({"type": "reading", "child_id": theirs, "value": 38.5})
        assert receive(ws)["code"] == "not_your_child"
        ws.send_json({"type": "reading", "child_id": mine, "value": 45, "unit": "C"})
        assert receive(ws)["code"] == "implausible_temperature"
        ws.send_json({"type": "reading", "child_id": mine})
        assert receive(ws)["code"] == "invalid_field"
        ws.send_json({"type": "reading", "value": 38.5})
        assert receive(ws)["code"] == "invalid_field"
        assert_nothing_queued(ws)
    assert (
        client.get(f"{API}/children/{theirs}/timeline", headers=auth(other_family)).json()["readings"] == []
    )


# ------------------------------------------------------------------------------ reminders


def test_reminders_are_pushed_when_due(client: TestClient, family: dict[str, Any], clock: Clock) -> None:
    child_id = add_child(client, family)
    with socket(client, family) as ws:
        ready(ws)
        client.post(
            f"{API}/children/{child_id}/readings",
            json={"value": 38.4, "site": "axillary"},
            headers=auth(family),
        )
        assert receive(ws)["type"] == "grade"
        time.sleep(0.2)  # several loop ticks: the 4 h reminder is not due yet
        assert_nothing_queued(ws)
        clock.offset = timedelta(hours=4, minutes=1)
        reminder = receive(ws, timeout=3.0)
        assert (
            reminder["type"] == "reminder"
            and reminder["child_id"] == child_id
            and reminder["kind"] == "remeasure"
        )
        assert "量体温" in reminder["message"]
        assert datetime.fromisoformat(reminder["due_at"]) <= clock()
        time.sleep(0.2)
        assert_nothing_queued(ws)  # sent once
    (sent,) = client.get(f"{API}/children/{child_id}/timeline", headers=auth(family)).json()["reminders"]
    assert sent["status"] == "sent" and sent["sent_at"]


def test_a_due_reminder_waits_for_the_family_to_connect(
    client: TestClient, family: dict[str, Any], clock: Clock
) -> None:
    child_id = add_child(client, family)
    client.post(f"{API}/children/{child_id}/doses", json={"drug": "布洛芬", "mg": 100}, headers=auth(family))
    clock.offset = timedelta(hours=1, minutes=5)
    time.sleep(0.2)
    reminders = client.get(f"{API}/children/{child_id}/timeline", headers=auth(family)).json()["reminders"]
    assert [(r["kind"], r["status"]) for r in reminders if r["kind"] == "after_dose"] == [
        ("after_dose", "pending")
    ]
    with socket(client, family) as ws:
        ready(ws)
        reminder = receive(ws, timeout=3.0)
        assert reminder["type"] == "reminder" and reminder["kind"] == "after_dose"


# ------------------------------------------------------------------------------ clinicians


def test_a_sent_form_reaches_the_clinics_clinicians_within_a_second_once(
    client: TestClient, family: dict[str, Any]
) -> None:
    doctor = signup(client, "dr.wang", role="clinician")
    elsewhere = signup(client, "dr.far", role="clinician", clinic_id="other-hospital")
    child_id = add_child(client, family)
    client.post(
        f"{API}/children/{child_id}/readings", json={"value": 39.2, "site": "ear"}, headers=auth(family)
    )
    form = client.post(f"{API}/children/{child_id}/form", json={}, headers=auth(family)).json()
    with socket(client, doctor) as ws, socket(client, elsewhere) as far, socket(client, family) as home:
        assert ready(ws)["clinic_id"] == "demo-clinic"
        ready(far)
        ready(home)
        started = time.monotonic()
        sent = client.post(
            f"{API}/forms/{form['form_id']}/send", json={"idempotency_key": "send-1"}, headers=auth(family)
        )
        pushed = receive(ws, timeout=10.0)  # the < 1 s target is measured by `make bench`
        print(f"form pushed in {time.monotonic() - started:.3f} s")
        assert sent.json()["duplicate"] is False
        assert pushed["type"] == "form" and pushed["form"]["form_id"] == form["form_id"]
        assert pushed["form"]["status"] == "sent" and pushed["form"]["form"]["peak"]["value_c"] == 39.2
        again = client.post(
            f"{API}/forms/{form['form_id']}/send", json={"idempotency_key": "send-1"}, headers=auth(family)
        )
        assert again.json()["duplicate"] is True
        assert_nothing_queued(ws)  # no second push
        assert_nothing_queued(far)  # another clinic never sees it
        assert_nothing_queued(home)  # families do not get clinic traffic
        # a clinician socket cannot record readings
        ws.send_json({"type": "reading", "child_id": child_id, "value": 38.0})
        assert receive(ws)["code"] == "wrong_role"


def test_callback_requests_reach_the_clinic_and_their_handling_is_shared(
    client: TestClient, family: dict[str, Any]
) -> None:
    nurse = signup(client, "nurse.li", role="clinician")
    colleague = signup(client, "nurse.wu", role="clinician")
    child_id = add_child(client, family)
    client.post(
        f"{API}/children/{child_id}/readings", json={"value": 38.9, "site": "axillary"}, headers=auth(family)
    )
    with socket(client, nurse) as ws, socket(client, colleague) as ws2:
        ready(ws)
        ready(ws2)
        created = client.post(
            f"{API}/children/{child_id}/callback", json={"phone": "+86 138-0000-0000"}, headers=auth(family)
        )
        for conn in (ws, ws2):
            pushed = receive(conn, timeout=1.0)
            assert (
                pushed["type"] == "callback"
                and pushed["callback"]["callback_id"] == created.json()["callback_id"]
            )
            assert (
                pushed["callback"]["colour"] == "green" and pushed["callback"]["summary"]["latest_c"] == 38.9
            )
        client.post(
            f"{API}/children/{child_id}/callback", json={}, headers=auth(family)
        )  # asked again: no push
        assert_nothing_queued(ws)
        client.post(f"{API}/callbacks/{created.json()['callback_id']}/handled", headers=auth(nurse))
        update = receive(ws2, timeout=1.0)
        assert update["type"] == "callback" and update["callback"]["status"] == "handled"
