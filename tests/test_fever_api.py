"""REST /api/fever: accounts and roles, the diary (manual and Bluetooth readings, doses, symptoms),
grading from the diary, colour changes, reminders, the pre-consultation form and its FHIR R4
export, the nurse callback queue — and every bad input the issue lists."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assistant.settings import Settings
from server.app import create_app
from server.rules_chat import RulesOnlyChatService
from tools.ble_thermometer import (
    FLOAT_NAN,
    TemperatureType,
    ThermometerSimulator,
    encode_temperature_measurement,
)

STUB_KB = SimpleNamespace(knowledge_version="kb-test")
API = "/api/fever"
CLINIC_CODE = "demo-clinic"  # FeverConfig default


class Clock:
    """The server's clock, movable by tests (readings 'in the future' are judged against it)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(tmp_path: Path, clock: Clock) -> Any:
    app = create_app(
        Settings(data_dir=tmp_path), chat_service=RulesOnlyChatService(), knowledge_loader=lambda s: STUB_KB
    )
    app.state.fever.clock = clock
    return app


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def signup(client: TestClient, username: str, role: str = "family", **extra: Any) -> dict[str, Any]:
    body = {"role": role, "username": username, "password": "correct horse", **extra}
    if role == "clinician":
        body.setdefault("clinic_code", CLINIC_CODE)
    response = client.post(f"{API}/accounts", json=body)
    assert response.status_code == 201, response.json()
    return response.json()


def auth(account: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {account['token']}"}


def birth_date(months: float) -> str:
    return (date.today() - timedelta(days=round(months * 30.44))).isoformat()


def add_child(client: TestClient, family: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body = {"name": "小明", "birth_date": birth_date(24), "weight_kg": 12.0, **fields}
    response = client.post(f"{API}/children", json=body, headers=auth(family))
    assert response.status_code == 201, response.json()
    return response.json()


def iso_ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def reading(client: TestClient, family: dict[str, Any], child_id: str, **body: Any) -> Any:
    return client.post(f"{API}/children/{child_id}/readings", json=body, headers=auth(family))


def timeline(client: TestClient, account: dict[str, Any], child_id: str) -> dict[str, Any]:
    response = client.get(f"{API}/children/{child_id}/timeline", headers=auth(account))
    assert response.status_code == 200, response.json()
    return response.json()


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.json())
    error = response.json()["error"]
    assert error["code"] == code, error
    assert " / " in error["message"]  # zh / en
    return error


@pytest.fixture
def family(client: TestClient) -> dict[str, Any]:
    return signup(client, "mum")


@pytest.fixture
def child(client: TestClient, family: dict[str, Any]) -> dict[str, Any]:
    return add_child(client, family)


# ------------------------------------------------------------------------------ accounts


def test_signup_login_and_hashed_secrets(client: TestClient, app: Any) -> None:
    account = signup(client, "Parent.One", display_name="小明妈妈")
    assert account["role"] == "family" and account["display_name"] == "小明妈妈"
    assert client.get(f"{API}/me", headers=auth(account)).json()["username"] == "parent.one"
    login = client.post(f"{API}/login", json={"username": "PARENT.ONE", "password": "correct horse"})
    assert login.status_code == 200 and login.json()["account_id"] == account["account_id"]
    assert login.json()["token"] != account["token"]
    error_of(
        client.post(f"{API}/login", json={"username": "parent.one", "password": "wrong"}),
        401,
        "bad_credentials",
    )
    error_of(
        client.post(f"{API}/login", json={"username": "nobody", "password": "x"}), 401, "bad_credentials"
    )
    error_of(
        client.post(
            f"{API}/accounts", json={"role": "family", "username": "parent.one", "password": "12345678"}
        ),
        409,
        "username_taken",
    )
    # The database holds neither the password nor a usable token.
    db = sqlite3.connect(app.state.fever.config.db_path)
    (stored,) = db.execute("SELECT password_hash FROM accounts WHERE username = 'parent.one'").fetchone()
    tokens = [row[0] for row in db.execute("SELECT token_hash FROM tokens")]
    db.close()
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert account["token"] not in tokens and len(tokens) == 2


def test_clinician_signup_needs_the_clinic_code(client: TestClient) -> None:
    body = {"role": "clinician", "username": "dr.wang", "password": "correct horse"}
    error_of(client.post(f"{API}/accounts", json=body), 403, "bad_clinic_code")
    error_of(client.post(f"{API}/accounts", json={**body, "clinic_code": "guess"}), 403, "bad_clinic_code")
    doctor = signup(client, "dr.wang", role="clinician")
    assert doctor["role"] == "clinician" and doctor["clinic_id"] == "demo-clinic"


def test_requests_without_a_valid_token_are_refused(client: TestClient, family: dict[str, Any]) -> None:
    error_of(client.get(f"{API}/children"), 401, "auth_required")
    error_of(client.get(f"{API}/children", headers={"Authorization": "Bearer nope"}), 401, "bad_token")
    assert client.post(f"{API}/logout", headers=auth(family)).status_code == 200
    error_of(client.get(f"{API}/children", headers=auth(family)), 401, "bad_token")


def test_malformed_bodies_get_clear_errors(client: TestClient, family: dict[str, Any]) -> None:
    headers = {**auth(family), "content-type": "application/json"}
    error_of(client.post(f"{API}/children", content=b"{not json", headers=headers), 400, "bad_json")
    error_of(client.post(f"{API}/children", content=b"[1, 2]", headers=headers), 400, "bad_json")
    error = error_of(
        client.post(f"{API}/children", json={"name": "a", "birth_date": "2024-13-01"}, headers=auth(family)),
        422,
        "invalid_field",
    )
    assert "birth_date" in error["message"]
    error_of(
        client.post(
            f"{API}/children", json={"name": "a", "birth_date": "2024-01-01", "nme": 1}, headers=auth(family)
        ),
        422,
        "invalid_field",
    )
    future = (date.today() + timedelta(days=3)).isoformat()
    error_of(
        client.post(f"{API}/children", json={"name": "a", "birth_date": future}, headers=auth(family)),
        422,
        "invalid_field",
    )


# ------------------------------------------------------------------------------ ownership


def test_one_family_cannot_read_or_write_another_familys_child(
    client: TestClient, family: dict[str, Any], child: dict[str, Any]
) -> None:
    child_id = child["child_id"]
    assert reading(client, family, child_id, value=38.2, site="axillary").status_code == 201
    other = signup(client, "neighbour")
    h = auth(other)
    for response in (
        client.get(f"{API}/children/{child_id}", headers=h),
        client.get(f"{API}/children/{child_id}/timeline", headers=h),
        client.get(f"{API}/children/{child_id}/grade", headers=h),
        client.post(f"{API}/children/{child_id}/readings", json={"value": 41.0, "site": "ear"}, headers=h),
        client.post(f"{API}/children/{child_id}/ble", json={"payload_hex": "00 6f 01 00 ff"}, headers=h),
        client.post(f"{API}/children/{child_id}/doses", json={"drug": "布洛芬"}, headers=h),
        client.post(f"{API}/children/{child_id}/symptoms", json={"text": "抽搐"}, headers=h),
        client.patch(f"{API}/children/{child_id}", json={"weight_kg": 30}, headers=h),
        client.post(f"{API}/children/{child_id}/form", json={}, headers=h),
        client.post(f"{API}/children/{child_id}/callback", json={}, headers=h),
    ):
        error_of(response, 403, "not_your_child")
    assert client.get(f"{API}/children", headers=h).json() == []
    # nothing the neighbour tried reached the diary
    diary = timeline(client, family, child_id)
    assert [r["value_c"] for r in diary["readings"]] == [38.2]
    assert diary["doses"] == [] and diary["symptoms"] == [] and diary["child"]["weight_kg"] == 12.0
    # the neighbour cannot see or send the family's form either
    form = client.post(f"{API}/children/{child_id}/form", json={}, headers=auth(family)).json()
    error_of(client.get(f"{API}/forms/{form['form_id']}", headers=h), 403, "not_your_form")
    error_of(client.post(f"{API}/forms/{form['form_id']}/send", json={}, headers=h), 403, "not_your_form")
    error_of(client.get(f"{API}/children/nosuchchild/timeline", headers=h), 404, "child_not_found")


def test_clinicians_do_not_write_diaries_and_read_only_shared_children(
    client: TestClient, family: dict[str, Any], child: dict[str, Any]
) -> None:
    doctor = signup(client, "dr.li", role="clinician")
    child_id = child["child_id"]
    error_of(reading(client, doctor, child_id, value=38.0), 403, "wrong_role")
    error_of(
        client.post(f"{API}/children", json={"name": "x", "birth_date": "2024-01-01"}, headers=auth(doctor)),
        403,
        "wrong_role",
    )
    # before the family shares anything with the clinic, its diary is private
    error_of(client.get(f"{API}/children/{child_id}/timeline", headers=auth(doctor)), 403, "not_your_clinic")
    form = client.post(f"{API}/children/{child_id}/form", json={}, headers=auth(family)).json()
    error_of(
        client.get(f"{API}/forms/{form['form_id']}", headers=auth(doctor)), 403, "not_your_clinic"
    )  # a draft
    client.post(f"{API}/forms/{form['form_id']}/send", json={}, headers=auth(family))
    assert client.get(f"{API}/children/{child_id}/timeline", headers=auth(doctor)).status_code == 200
    # a clinician of another clinic sees nothing of it
    elsewhere = signup(client, "dr.zhao", role="clinician", clinic_id="other-hospital")
    error_of(
        client.get(f"{API}/children/{child_id}/timeline", headers=auth(elsewhere)), 403, "not_your_clinic"
    )
    error_of(
        client.get(f"{API}/forms/{form['form_id']}/fhir", headers=auth(elsewhere)), 403, "not_your_clinic"
    )
    assert client.get(f"{API}/forms", headers=auth(elsewhere)).json() == []


# ------------------------------------------------------------------------------ readings: bad input


def test_385_is_read_as_38_5_with_a_warning(
    client: TestClient, family: dict[str, Any], child: dict[str, Any]
) -> None:
    response = reading(client, family, child["child_id"], value=385, unit=None, site="腋下")
    assert response.status_code == 201
    body = response.json()
    assert body["reading"]["value_c"] == 38.5 and body["reading"]["entered_value"] == 385
    assert body["reading"]["site"] == "axillary"
    assert [w["code"] for w in body["reading"]["warnings"]] == ["assumed_decimal_point"]
    assert body["grade"]["temperature"]["latest_c"] == 38.5


def test_102_without_a_unit_is_read_as_fahrenheit(
    client: TestClient, family: dict[str, Any], child: dict[str, Any]
) -> None:
    body = reading(client, family, child["child_id"], value=102, site="ear").json()
    assert body["reading"]["value_c"] == pytest.approx(38.9)
    assert [w["code"] for w in body["reading"]["warnings"]] == ["assumed_fahrenheit"]
    # an explicit °F is converted without a warning
    explicit = reading(client, family, child["child_id"], value=101.3, unit="°F", site="ear").json()
    assert explicit["reading"]["value_c"] == pytest.approx(38.5) and explicit["reading"]["warnings"] == []


@pytest.mark.parametrize("value", [45.0, 30.0])
def test_impossible_temperatures_ask_to_remeasure_and_are_not_stored(
    client: TestClient, family: dict[str, Any], child: dict[str, Any], value: float
) -> None:
    error = error_of(
        reading(client, family, child["child_id"], value=value, unit="C"), 422, "implausible_temperature"
    )
    assert (
        error["remeasure"] is True and "重新测量" in error["message"] and "measure again" in error["message"]
    )
    assert timeline(client, family, child["child_id"])["readings"] == []


def test_future_times_are_refused_everywhere(
    client: TestClient, family: dict[str, Any], child: dict[str, Any]
) -> None:
    child_id = child["child_id"]
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    error_of(reading(client, family, child_id, value=38.5, time=later), 422, "future_time")
    error_of(
        client.post(
            f"{API}/children/{child_id}/doses", json={"drug": "布洛芬", "time": later}, headers=auth(family)
        ),
        422,
        "future_time",
    )
    error_of(
        client.post(
            f"{API}/children/{child_id}/symptoms", json={"text": "咳嗽", "time": later}, headers=auth(family)
        ),
        422,
        "future_time",
    )
    stamp = datetime.now(UTC) + timedelta(hours=3)
    frame = encode_temperature_measurement(38.4, "C", stamp.replace(tzinfo=None))
    received = datetime.now(UTC).isoformat()
    error_of(
        client.post(
            f"{API}/children/{child_id}/ble",
            json={"payload_hex": frame.hex(), "received_at": received},
            headers=auth(family),
        ),
        422,
        "future_time",
    )
    before_birth = "2001-01-01T08:00:00+08:00"
    error_of(reading(client, family, child_id, value=38.5, time=before_birth), 422, "before_birth")
    diary = timeline(client, family, child_id)
    assert diary["readings"] == diary["doses"] == diary["symptoms"] == []
    # a reading a few minutes in the past (or a clock a minute fast) is fine
    assert reading(client, family, child_id, value=38.0, time=iso_ago(minutes=-1)).status_code == 201


def test_unknown_site_and_unit_are_named(
    client: TestClient, family: dict[str, Any], child: dict[str, Any]
) -> None:
    error_of(reading(client, family, child["child_id"], value=38.5, site="knee"), 422, "unknown_site")
    error = error_of(reading(client, family, child["child_id"], value=38.5, unit="K"), 422, "invalid_field")
    assert "unit" in error["message"]


# ------------------------------------------------------------------------------ Bluetooth


def test_ble_frames_are_parsed_and_repeats_after_a_reconnect_are_dropped(
    client: TestClient, family: dict[str, Any], child: dict[str, Any]
) -> None:
    child_id = child["child_id"]
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(tzinfo=None, microsecond=0)
    sim = ThermometerSimulator(
        start=start, interval=timedelta(minutes=30), temperatures_c=[38.1, 38.6, 39.0, 38.4]
    )
    received = datetime.now(UTC).isoformat()

    def post(frame: bytes) -> Any:
        return client.post(
            f"{API}/children/{child_id}/ble",
            json={"payload_hex": frame.hex(" "), "received_at": received},
            headers=auth(family),
        )

    first = [post(f) for f in sim.take(4)]
    assert [r.status_code for r in first] == [201] * 4
    assert first[0].json()["reading"]["site"] == "axillary"  # temperature type 1 = armpit
    assert first[0].json()["reading"]["source"] == "ble" and first[0].json()["duplicate"] is False
    replay = [post(f) for f in sim.reconnect()]
    assert [r.status_code for r in replay] == [200] * 4
    assert all(r.json()["duplicate"] is True for r in replay)
    assert replay[0].json()["reading"]["reading_id"] == first[0].json()["reading"]["reading_id"]
    diary = timeline(client, family, child_id)
    assert [r["value_c"] for r in diary["readings"]] == [38.1, 38.6, 39.0, 38.4]
    # an out-of-order older frame is placed by its device timestamp
    early = encode_temperature_measurement(37.9, "C", start - timedelta(hours=1), TemperatureType.ear)
    assert post(early).status_code == 201
    diary = timeline(client, family, child_id)
    assert [r["value_c"] for r in diary["readings"]][:2] == [37.9, 38.1]
    assert diary["readings"][0]["site"] == "ear"


def test_ble_frames_without_timestamp_repeat_within_two_minutes(
    client: TestClient, family: dict[str, Any], child: dict[str, Any]
) -> None:
    frame = encode_temperature_measurement(101.5, "F", None, None).hex()
    url = f"{API}/children/{child['child_id']}/ble"
    at = datetime.now(UTC) - timedelta(minutes=10)
    first = client.post(
        url, json={"payload_hex": frame, "received_at": at.isoformat(), "site": "oral"}, headers=auth(family)
    )
    assert first.status_code == 201 and first.json()["reading"]["value_c"] == pytest.approx(38.6)
    assert first.json()["reading"]["site"] == "oral" and first.json()["reading"]["entered_unit"] == "F"
    again = client.post(
        url,
        json={"payload_hex": frame, "received_at": (at + timedelta(seconds=30)).isoformat()},
        headers=auth(family),
    )
    assert again.status_code == 200 and again.json()["duplicate"] is True
    later = client.post(
        url,
        json={"payload_hex": frame, "received_at": (at + timedelta(minutes=5)).isoformat()},
        headers=auth(family),
    )
    assert later.status_code == 201  # the same value measured again later is a new reading


@pytest.mark.parametrize(
    ("payload_hex", "code", "reason"),
    [
        ("00 6f 01", "malformed_ble", "too_short"),
        ("02 6f 01 00 ff", "malformed_ble", "missing_fields"),  # timestamp flagged but absent
        ("00 6f 01 00 ff 00", "malformed_ble", "trailing_bytes"),
        ("04 6f 01 00 ff 0c", "malformed_ble", "bad_temperature_type"),
        ("00 01 00 80 00", "malformed_ble", "reserved_float_value"),
        ("zz-not-hex", "bad_payload_hex", None),
        ("0 6f", "bad_payload_hex", None),
    ],
)
def test_malformed_ble_payloads_get_clear_errors(
    client: TestClient,
    family: dict[str, Any],
    child: dict[str, Any],
    payload_hex: str,
    code: str,
    reason: str | None,
) -> None:
    response = client.post(
        f"{API}/children/{child['child_id']}/ble", json={"payload_hex": payload_hex}, headers=auth(family)
    )
    error = error_of(response, 422, code)
    assert error.get("reason") == reason
    assert timeline(client, family, child["child_id"])["readings"] == []


def test_ble_special_values_are_not_readings(
    client: TestClient, family: dict[str, Any], child: dict[str, Any]
) -> None:
    nan = bytes([0]) + FLOAT_NAN.to_bytes(4, "little")
    response = client.post(
        f"{API}/children/{child['child_id']}/ble", json={"payload_hex": nan.hex()}, headers=auth(family)
    )
    assert "nan" in error_of(response, 422, "ble_no_value")["message"]
    hot = encode_temperature_measurement(45.2, "C")
    response = client.post(
        f"{API}/children/{child['child_id']}/ble", json={"payload_hex": hot.hex()}, headers=auth(family)
    )
    error_of(response, 422, "implausible_temperature")


# ------------------------------------------------------------------------------ doses


def test_dose_refused_without_weight_then_allowed_once_weighed(
    client: TestClient, family: dict[str, Any]
) -> None:
    child = add_child(client, family, weight_kg=None)
    url = f"{API}/children/{child['child_id']}/doses"
    error = error_of(
        client.post(url, json={"drug": "布洛芬", "mg": 100}, headers=auth(family)), 422, "dose_refused"
    )
    assert error["reason"] == "weight_missing" and "体重" in error["message"]
    client.patch(f"{API}/children/{child['child_id']}", json={"weight_kg": 60}, headers=auth(family))
    refused = client.post(url, json={"drug": "布洛芬", "mg": 100}, headers=auth(family))
    assert error_of(refused, 422, "dose_refused")["reason"] == "weight_implausible"
    assert refused.json()["check"]["allowed"] is False
    assert timeline(client, family, child["child_id"])["doses"] == []
    client.patch(f"{API}/children/{child['child_id']}", json={"weight_kg": 12}, headers=auth(family))
    allowed = client.post(url, json={"drug": "布洛芬", "mg": 100}, headers=auth(family))
    assert allowed.status_code == 201
    assert allowed.json()["check"]["allowed"] is True and allowed.json()["dose"]["drug_id"] == "ibuprofen"


def test_doses_above_the_label_limits_are_refused_and_not_logged(
    client: TestClient, family: dict[str, Any], child: dict[str, Any]
) -> None:
    url = f"{API}/children/{child['child_id']}/doses"
    h = auth(family)
    too_much = client.post(url, json={"drug": "布洛芬", "mg": 400}, headers=h)  # 12 kg: at most 120 mg
    error = error_of(too_much, 422, "dose_refused")
    assert error["reason"] == "dose_above_limit" and too_much.json()["check"]["dose_mg_max"] == 120
    by_volume = client.post(url, json={"drug": "美林", "ml": 10, "concentration_mg_per_ml": 20}, headers=h)
    assert error_of(by_volume, 422, "dose_refused")["reason"] == "dose_above_limit"  # 200 mg
    first = client.post(url, json={"drug": "对乙酰氨基酚", "mg": 150, "time": iso_ago(hours=2)}, headers=h)
    assert first.status_code == 201
    too_soon = client.post(url, json={"drug": "泰诺林", "mg": 150}, headers=h)
    assert error_of(too_soon, 422, "dose_refused")["reason"] == "too_soon"
    other = client.post(url, json={"drug": "阿司匹林"}, headers=h)
    assert error_of(other, 422, "dose_refused")["reason"] == "other_drug"
    # the dry-run check answers without logging
    check = client.post(f"{url}/check", json={"drug": "布洛芬", "mg": 100}, headers=h).json()["check"]
    assert check["allowed"] is True and any(w["code"] == "alternating" for w in check["warnings"])
    doses = timeline(client, family, child["child_id"])["doses"]
    assert [(d["drug_id"], d["mg"]) for d in doses] == [("paracetamol", 150)]


# ------------------------------------------------------------------------------ grading from the diary


def test_readings_after_a_dose_are_flagged_and_the_rising_trend_is_seen(
    client: TestClient, family: dict[str, Any], child: dict[str, Any]
) -> None:
    child_id = child["child_id"]
    h = auth(family)
    reading(client, family, child_id, value=37.0, site="axillary", time=iso_ago(hours=12))
    dose_time = iso_ago(hours=4)  # measured, then the medicine given at the same time
    reading(client, family, child_id, value=38.6, site="axillary", time=dose_time)
    client.post(
        f"{API}/children/{child_id}/doses", json={"drug": "布洛芬", "mg": 100, "time": dose_time}, headers=h
    )
    body = reading(client, family, child_id, value=39.4, site="axillary", time=iso_ago(hours=1)).json()
    flags = [r["antipyretic_within_6h"] for r in timeline(client, family, child_id)["readings"]]
    assert flags == [False, True, True]
    assert "rising_despite_antipyretic" in {t["code"] for t in body["grade"]["trends"]}
    assert "FV-TREND-RISING" in {f["rule_id"] for f in body["grade"]["features"]}


def test_age_comes_from_the_birth_date(client: TestClient, family: dict[str, Any]) -> None:
    baby = add_child(client, family, name="小宝", birth_date=birth_date(1.5), weight_kg=4.5)
    body = reading(client, family, baby["child_id"], value=38.1, site="rectal").json()
    assert body["grade"]["colour"] == "red" and body["grade"]["age_months"] == pytest.approx(1.5, abs=0.1)
    assert "FV-RED-AGE-U3M" in {f["rule_id"] for f in body["grade"]["features"]}
    toddler = add_child(client, family, name="大宝", birth_date=birth_date(30))
    assert (
        reading(client, family, toddler["child_id"], value=38.1, site="rectal").json()["grade"]["colour"]
        == "green"
    )


def test_symptoms_are_joined_and_colour_changes_are_recorded(
    client: TestClient, family: dict[str, Any], child: dict[str, Any]
) -> None:
    child_id = child["child_id"]
    h = auth(family)
    assert reading(client, family, child_id, value=38.8, site="axillary").json()["grade"]["colour"] == "green"
    one = client.post(
        f"{API}/children/{child_id}/symptoms", json={"text": "不爱玩，没精神"}, headers=h
    ).json()
    assert one["grade"]["colour"] == "orange" and one["colour_changed"] is True
    two = client.post(
        f"{API}/children/{child_id}/symptoms", json={"text": "吃得很少，喝水少"}, headers=h
    ).json()
    rules = {f["rule_id"] for f in two["grade"]["features"]}
    assert {"FV-ORANGE-ACTIVITY", "FV-ORANGE-FEEDING"} <= rules  # both entries graded together
    assert two["colour_changed"] is False
    three = client.post(
        f"{API}/children/{child_id}/symptoms", json={"text": "皮疹压了不褪色"}, headers=h
    ).json()
    assert three["grade"]["colour"] == "red"
    diary = timeline(client, family, child_id)
    assert [g["colour"] for g in diary["grades"]] == ["green", "orange", "red"]
    assert (
        diary["grades"][2]["trigger"].startswith("symptom:")
        and "FV-RED-RASH" in diary["grades"][2]["rule_ids"]
    )
    assert diary["current_grade"]["colour"] == "red"
    assert client.get(f"{API}/children/{child_id}/grade", headers=h).json()["colour"] == "red"
    assert [c["colour"] for c in client.get(f"{API}/children", headers=h).json()] == ["red"]


def test_conditions_from_the_profile_are_graded(client: TestClient, family: dict[str, Any]) -> None:
    child = add_child(client, family, conditions=["heart_disease"], allergies="青霉素、花生")
    assert child["allergies"] == ["青霉素", "花生"]
    body = reading(client, family, child["child_id"], value=38.9, site="axillary").json()
    assert "FV-ORANGE-CONDITION" in {f["rule_id"] for f in body["grade"]["features"]}


def test_reminders_follow_the_colour(
    client: TestClient, family: dict[str, Any], child: dict[str, Any]
) -> None:
    child_id = child["child_id"]
    measured = datetime.now(UTC) - timedelta(minutes=30)
    reading(client, family, child_id, value=38.5, site="axillary", time=measured.isoformat())
    (green,) = timeline(client, family, child_id)["reminders"]
    assert green["kind"] == "remeasure" and green["status"] == "pending"
    assert datetime.fromisoformat(green["due_at"]) == pytest.approx(
        measured + timedelta(hours=4), abs=timedelta(seconds=1)
    )
    client.post(f"{API}/children/{child_id}/symptoms", json={"text": "精神差，不爱玩"}, headers=auth(family))
    pending = timeline(client, family, child_id)["reminders"]
    remeasure = [r for r in pending if r["kind"] == "remeasure"]
    assert len(remeasure) == 1  # the green one was replaced
    assert datetime.fromisoformat(remeasure[0]["due_at"]) == pytest.approx(
        measured + timedelta(hours=2), abs=timedelta(seconds=1)
    )
    assert (
        any(r["kind"] == "night_check" for r in pending)
        or abs(datetime.fromisoformat(remeasure[0]["due_at"]).astimezone().hour - 2) <= 1
    )
    client.post(f"{API}/children/{child_id}/doses", json={"drug": "布洛芬", "mg": 100}, headers=auth(family))
    kinds = {r["kind"] for r in timeline(client, family, child_id)["reminders"]}
    assert "after_dose" in kinds


# ------------------------------------------------------------------------------ forms and FHIR


def _form_for(client: TestClient, family: dict[str, Any], child_id: str) -> dict[str, Any]:
    h = auth(family)
    reading(client, family, child_id, value=38.4, site="axillary", time=iso_ago(hours=20))
    reading(client, family, child_id, value=39.6, site="ear", time=iso_ago(hours=10))
    client.post(
        f"{API}/children/{child_id}/doses",
        json={"drug": "布洛芬", "mg": 100, "time": iso_ago(hours=10)},
        headers=h,
    )
    client.post(
        f"{API}/children/{child_id}/symptoms",
        json={"text": "咳嗽，流鼻涕", "time": iso_ago(hours=9)},
        headers=h,
    )
    reading(client, family, child_id, value=38.9, site="axillary", time=iso_ago(hours=2))
    response = client.post(f"{API}/children/{child_id}/form", json={"note": "昨晚开始发烧"}, headers=h)
    assert response.status_code == 201 and response.json()["status"] == "draft"
    return response.json()


def test_form_is_built_from_the_diary(client: TestClient, family: dict[str, Any]) -> None:
    child = add_child(client, family, allergies=["青霉素"], conditions=["premature"])
    form = _form_for(client, family, child["child_id"])["form"]
    assert form["child"]["name"] == "小明" and form["child"]["age_text"]["zh"].startswith("2岁")
    assert datetime.fromisoformat(form["onset"]["time"]) == pytest.approx(
        datetime.now(UTC) - timedelta(hours=20), abs=timedelta(minutes=1)
    )
    assert form["peak"]["value_c"] == 39.6 and form["peak"]["site"] == "ear"
    assert form["pattern"]["code"] == "continuous"
    assert [s["text"] for s in form["symptoms"]] == ["咳嗽，流鼻涕"]
    assert [(d["drug_id"], d["mg"]) for d in form["doses"]] == [("ibuprofen", 100)]
    assert form["weight_kg"] == 12 and form["allergies"] == ["青霉素"] and form["conditions"] == ["premature"]
    assert form["colour_history"] and form["colour_history"][-1]["colour"] == form["current"]["colour"]
    assert form["note"] == "昨晚开始发烧" and len(form["readings"]) == 3


def test_form_sent_twice_is_sent_once(
    client: TestClient, family: dict[str, Any], child: dict[str, Any]
) -> None:
    doctor = signup(client, "dr.sun", role="clinician")
    created = _form_for(client, family, child["child_id"])
    url = f"{API}/forms/{created['form_id']}/send"
    first = client.post(url, json={"idempotency_key": "k1"}, headers=auth(family)).json()
    second = client.post(url, json={"idempotency_key": "k1"}, headers=auth(family)).json()
    third = client.post(url, headers=auth(family)).json()  # an empty body is fine
    assert first["status"] == second["status"] == third["status"] == "sent"
    assert first["duplicate"] is False and second["duplicate"] is True and third["duplicate"] is True
    assert first["sent_at"] == second["sent_at"] == third["sent_at"]
    # a retry of the same request for a fresh draft (same key) answers with the first form
    again = client.post(f"{API}/children/{child['child_id']}/form", json={}, headers=auth(family)).json()
    retry = client.post(
        f"{API}/forms/{again['form_id']}/send", json={"idempotency_key": "k1"}, headers=auth(family)
    ).json()
    assert retry["form_id"] == created["form_id"] and retry["duplicate"] is True
    inbox = client.get(f"{API}/forms", params={"status": "sent"}, headers=auth(doctor)).json()
    assert [f["form_id"] for f in inbox] == [created["form_id"]]
    assert (
        client.get(f"{API}/forms", params={"status": "draft"}, headers=auth(family)).json()[0]["form_id"]
        == again["form_id"]
    )
    error_of(
        client.get(f"{API}/forms", params={"status": "lost"}, headers=auth(doctor)), 422, "invalid_field"
    )


def _resolve(bundle: dict[str, Any], reference: str) -> dict[str, Any]:
    matches = [e["resource"] for e in bundle["entry"] if e["fullUrl"] == reference]
    assert len(matches) == 1, reference
    return matches[0]


_VALUE_KEYS = {"valueDateTime", "valueQuantity", "valueString", "valueCoding", "valueDecimal"}


def _check_items(items: list[dict[str, Any]]) -> None:
    """QuestionnaireResponse.item: a linkId each; never both answer and item (qrs-1); each answer
    has exactly one value[x]."""
    for item in items:
        assert isinstance(item["linkId"], str) and item["linkId"]
        assert not ("answer" in item and "item" in item), item
        for answer in item.get("answer", []):
            assert len(_VALUE_KEYS & set(answer)) == 1, answer
            _check_items(answer.get("item", []))
        _check_items(item.get("item", []))


def test_fhir_export_is_a_valid_r4_bundle(
    client: TestClient, family: dict[str, Any], child: dict[str, Any]
) -> None:
    doctor = signup(client, "dr.fhir", role="clinician")
    created = _form_for(client, family, child["child_id"])
    client.post(f"{API}/forms/{created['form_id']}/send", json={}, headers=auth(family))
    response = client.get(f"{API}/forms/{created['form_id']}/fhir", headers=auth(doctor))
    assert response.status_code == 200 and response.headers["content-type"].startswith(
        "application/fhir+json"
    )
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    datetime.fromisoformat(bundle["timestamp"])
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(set(urls)) == len(urls) and all(u.startswith("urn:uuid:") for u in urls)
    for entry in bundle["entry"]:
        assert entry["fullUrl"] == f"urn:uuid:{entry['resource']['id']}"
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds.count("QuestionnaireResponse") == 1 and kinds.count("Observation") == 3

    (response_resource,) = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "QuestionnaireResponse"
    ]
    assert response_resource["status"] == "completed"
    datetime.fromisoformat(response_resource["authored"])
    patient = _resolve(bundle, response_resource["subject"]["reference"])
    assert patient["resourceType"] == "Patient" and patient["birthDate"] == child["birth_date"]
    _check_items(response_resource["item"])
    items = {i["linkId"]: i for i in response_resource["item"]}
    assert {
        "onset",
        "peak",
        "symptoms",
        "doses",
        "weight",
        "allergies",
        "conditions",
        "colour_history",
    } <= set(items)
    assert items["peak"]["answer"][0]["valueQuantity"] == {
        "value": 39.6,
        "unit": "Cel",
        "system": "http://unitsofmeasure.org",
        "code": "Cel",
    }
    assert items["weight"]["answer"][0]["valueQuantity"]["code"] == "kg"
    (dose,) = items["doses"]["item"]
    assert {i["linkId"] for i in dose["item"]} == {"dose.drug", "dose.time", "dose.amount"}
    colours = [c["item"][0]["answer"][0]["valueCoding"]["code"] for c in items["colour_history"]["item"]]
    assert colours and set(colours) <= {"green", "orange", "red"}

    observations = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    for observation in observations:
        assert observation["status"] == "final"
        assert observation["category"][0]["coding"][0]["code"] == "vital-signs"
        assert observation["code"]["coding"] == [
            {"system": "http://loinc.org", "code": "8310-5", "display": "Body temperature"}
        ]
        quantity = observation["valueQuantity"]
        assert (
            quantity["unit"] == quantity["code"] == "Cel"
            and quantity["system"] == "http://unitsofmeasure.org"
        )
        assert datetime.fromisoformat(observation["effectiveDateTime"]).tzinfo is not None
        assert _resolve(bundle, observation["subject"]["reference"]) is patient
        assert observation["bodySite"]["coding"][0]["system"] == "http://snomed.info/sct"
    assert sorted(o["valueQuantity"]["value"] for o in observations) == [38.4, 38.9, 39.6]
    assert {o["bodySite"]["text"] for o in observations} == {"axillary", "ear"}
    # the family may export its own draft: then the response is still in progress
    draft = client.post(f"{API}/children/{child['child_id']}/form", json={}, headers=auth(family)).json()
    mine = client.get(f"{API}/forms/{draft['form_id']}/fhir", headers=auth(family)).json()
    assert [
        e["resource"]["status"]
        for e in mine["entry"]
        if e["resource"]["resourceType"] == "QuestionnaireResponse"
    ] == ["in-progress"]


# ------------------------------------------------------------------------------ callbacks


def test_callback_queue_for_the_clinic(client: TestClient, family: dict[str, Any]) -> None:
    nurse = signup(client, "nurse.chen", role="clinician")
    elsewhere = signup(client, "nurse.other", role="clinician", clinic_id="other-hospital")
    calm = add_child(client, family, name="安安")
    sick = add_child(client, family, name="乐乐")
    reading(client, family, calm["child_id"], value=38.3, site="axillary")
    reading(client, family, sick["child_id"], value=39.0, site="axillary")
    client.post(
        f"{API}/children/{sick['child_id']}/symptoms",
        json={"text": "呼吸很费力，有呻吟"},
        headers=auth(family),
    )
    error_of(
        client.post(
            f"{API}/children/{calm['child_id']}/callback", json={"phone": "call me"}, headers=auth(family)
        ),
        422,
        "bad_phone",
    )
    first = client.post(
        f"{API}/children/{calm['child_id']}/callback", json={"phone": "138 0000 0000"}, headers=auth(family)
    )
    assert first.status_code == 201 and first.json()["status"] == "open"
    again = client.post(f"{API}/children/{calm['child_id']}/callback", json={}, headers=auth(family))
    assert again.status_code == 200 and again.json()["callback_id"] == first.json()["callback_id"]
    client.post(f"{API}/children/{sick['child_id']}/callback", json={"note": "还在喘"}, headers=auth(family))

    queue = client.get(f"{API}/callbacks", headers=auth(nurse)).json()
    assert [c["summary"]["child_name"] for c in queue] == ["乐乐", "安安"]  # red first
    assert queue[0]["colour"] == "red" and queue[0]["summary"]["latest_c"] == 39.0
    assert queue[0]["summary"]["features"] and queue[1]["phone"] == "138 0000 0000"
    assert client.get(f"{API}/callbacks", headers=auth(elsewhere)).json() == []
    error_of(
        client.post(f"{API}/callbacks/{queue[0]['callback_id']}/handled", headers=auth(elsewhere)),
        403,
        "not_your_clinic",
    )
    error_of(
        client.post(f"{API}/callbacks/{queue[0]['callback_id']}/handled", headers=auth(family)),
        403,
        "wrong_role",
    )
    handled = client.post(f"{API}/callbacks/{queue[0]['callback_id']}/handled", headers=auth(nurse)).json()
    assert handled["status"] == "handled" and handled["handled_by"] == nurse["account_id"]
    assert [
        c["summary"]["child_name"] for c in client.get(f"{API}/callbacks", headers=auth(nurse)).json()
    ] == ["安安"]
    done = client.get(f"{API}/callbacks", params={"status": "handled"}, headers=auth(nurse)).json()
    assert [c["callback_id"] for c in done] == [handled["callback_id"]]
    error_of(client.post(f"{API}/callbacks/nosuch/handled", headers=auth(nurse)), 404, "callback_not_found")


def test_meta_lists_what_the_pages_offer(client: TestClient) -> None:
    meta = client.get(f"{API}/meta").json()
    assert {s["id"] for s in meta["sites"]} == {"axillary", "ear", "forehead", "oral", "rectal"}
    assert "heart_disease" in {c["id"] for c in meta["conditions"]}
    assert {d["id"] for d in meta["drugs"]} == {"paracetamol", "ibuprofen"}


def test_the_pages_language_is_used_for_grades_and_warnings(
    client: TestClient, family: dict[str, Any], child: dict[str, Any]
) -> None:
    url = f"{API}/children/{child['child_id']}/readings"
    english = client.post(url, params={"lang": "en"}, json={"value": 385}, headers=auth(family)).json()
    assert english["grade"]["lang"] == "en" and english["reading"]["warnings"][0]["message"].startswith(
        '"385"'
    )
    chinese = client.post(url, params={"lang": "zh"}, json={"value": 38.6}, headers=auth(family)).json()
    assert chinese["grade"]["lang"] == "zh" and "绿色" in chinese["grade"]["label"]


# ------------------------------------------------------------------------------ a message in words


def test_a_parents_message_records_reading_and_dose_then_grades(
    client: TestClient, family: dict[str, Any], child: dict[str, Any]
) -> None:
    child_id = child["child_id"]
    text = "宝宝38度5，吃了布洛芬两小时了还没退，精神还行"
    response = client.post(f"{API}/children/{child_id}/message", json={"text": text}, headers=auth(family))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["recorded"]["reading"]["value_c"] == pytest.approx(38.5)
    assert body["recorded"]["dose"]["drug"] == "布洛芬"
    given = datetime.fromisoformat(body["recorded"]["dose"]["time"])
    assert abs((datetime.now(UTC) - given).total_seconds() - 2 * 3600) < 600  # "两小时了"
    assert body["grade"]["colour"] in ("green", "orange")  # alert and playing: not red by the number
    assert body["reply"]
    diary = timeline(client, family, child_id)
    assert len(diary["readings"]) == 1 and len(diary["doses"]) == 1 and len(diary["symptoms"]) == 1


def test_a_message_about_another_familys_child_is_refused(client: TestClient, child: dict[str, Any]) -> None:
    stranger = signup(client, "stranger")
    response = client.post(
        f"{API}/children/{child['child_id']}/message", json={"text": "38度5"}, headers=auth(stranger)
    )
    error_of(response, 403, "not_your_child")
