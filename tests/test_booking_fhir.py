"""FHIR R4 shapes of Schedule, Slot and Appointment, checked against the R4 cardinalities, value
sets and invariants they must satisfy (a hand-written subset of the R4 StructureDefinitions)."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tools.booking.catalogue import generate_slots, load_directory
from tools.booking.errors import BookingDataError
from tools.booking.fhir import (
    appointment_resource,
    fhir_id,
    schedule_resource,
    slot_id_from_fhir,
    slot_resource,
    slot_resources,
)

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)
ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")  # R4 id
# R4 instant: full date-time with seconds and a zone
INSTANT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
REFERENCE_RE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")
SLOT_STATUS = {"busy", "free", "busy-unavailable", "busy-tentative", "entered-in-error"}
APPOINTMENT_STATUS = {
    "proposed",
    "pending",
    "booked",
    "arrived",
    "fulfilled",
    "cancelled",
    "noshow",
    "entered-in-error",
    "checked-in",
    "waitlist",
}
PARTICIPANT_STATUS = {"accepted", "declined", "tentative", "needs-action"}


def check_reference(ref: dict[str, Any], resource_type: str | None = None) -> None:
    assert REFERENCE_RE.match(ref["reference"]), ref
    if resource_type:
        assert ref["reference"].startswith(resource_type + "/")


def check_codeable_concepts(value: list[dict[str, Any]]) -> None:
    assert isinstance(value, list) and value
    for concept in value:
        assert concept.get("text") or concept.get("coding")


def check_schedule(res: dict[str, Any]) -> None:
    assert res["resourceType"] == "Schedule" and ID_RE.match(res["id"])
    assert len(res["actor"]) >= 1  # actor 1..*
    for actor in res["actor"]:
        check_reference(actor)
    assert isinstance(res.get("active", True), bool)
    horizon = res["planningHorizon"]
    assert INSTANT_RE.match(horizon["start"]) and INSTANT_RE.match(horizon["end"])
    assert horizon["start"] < horizon["end"]
    check_codeable_concepts(res["serviceType"])


def check_slot(res: dict[str, Any]) -> None:
    assert res["resourceType"] == "Slot" and ID_RE.match(res["id"])
    check_reference(res["schedule"], "Schedule")  # schedule 1..1
    assert res["status"] in SLOT_STATUS  # status 1..1
    assert INSTANT_RE.match(res["start"]) and INSTANT_RE.match(res["end"])  # start, end 1..1 instant
    assert datetime.fromisoformat(res["start"]) < datetime.fromisoformat(res["end"])
    check_codeable_concepts(res["serviceType"])


def check_appointment(res: dict[str, Any]) -> None:
    assert res["resourceType"] == "Appointment" and ID_RE.match(res["id"])
    assert res["status"] in APPOINTMENT_STATUS  # status 1..1
    assert len(res["participant"]) >= 1  # participant 1..*
    for participant in res["participant"]:
        assert participant["status"] in PARTICIPANT_STATUS  # participant.status 1..1
        assert participant.get("type") or participant.get("actor")  # app-1
        check_reference(participant["actor"])
    assert ("start" in res) == ("end" in res)  # app-2
    assert "start" in res or res["status"] in {"proposed", "cancelled", "waitlist"}  # app-3
    assert INSTANT_RE.match(res["start"]) and INSTANT_RE.match(res["end"])
    for ref in res["slot"]:
        check_reference(ref, "Slot")
    check_codeable_concepts(res["serviceType"])
    if "cancelationReason" in res:
        assert res["status"] in {"cancelled", "noshow"}  # app-4 (R4 spells it "cancelation")
    json.dumps(res)  # plain JSON


@pytest.fixture(scope="module")
def directory():
    return load_directory()


@pytest.fixture(scope="module")
def derm_slot(directory):
    return directory.slot("demo-general-hospital:derm-wei:2026-11-26:am:03")  # Thursday, number 3


def test_schedule_of_a_doctor(directory) -> None:
    hospital = directory.get("demo-general-hospital")
    dept, doctor = directory.doctor(hospital.id, "derm-wei")
    res = schedule_resource(hospital, doctor, now=NOW, lang="zh")
    check_schedule(res)
    assert res["id"] == "demo-general-hospital.derm-wei"
    assert [a["reference"] for a in res["actor"]] == [
        "Practitioner/demo-general-hospital.derm-wei",
        "HealthcareService/demo-general-hospital.dermatology",
    ]
    assert res["actor"][0]["display"] == "魏素言"
    assert res["serviceType"][0]["text"] == "皮肤科"
    assert res["planningHorizon"] == {
        "start": "2026-11-23T00:00:00+08:00",
        "end": "2026-12-01T00:00:00+08:00",
    }
    english = schedule_resource(hospital, doctor, department=dept, now=NOW, lang="en")
    assert english["serviceType"][0]["text"] == "Dermatology"


def test_slot_resource(derm_slot) -> None:
    res = slot_resource(derm_slot, "free", service_type="皮肤科")
    check_slot(res)
    assert res["id"] == "demo-general-hospital.derm-wei.2026-11-26.am.03"
    assert res["schedule"] == {"reference": "Schedule/demo-general-hospital.derm-wei"}
    assert res["start"] == "2026-11-26T08:13:00+08:00" and res["end"] == "2026-11-26T08:20:00+08:00"
    assert res["serviceType"][0]["text"] == "皮肤科"
    assert res["identifier"][0]["value"] == derm_slot.slot_id
    assert res["comment"] == "3号"
    assert slot_id_from_fhir(res["id"]) == derm_slot.slot_id
    for status in ("busy", "busy-unavailable"):
        check_slot(slot_resource(derm_slot, status))
    with pytest.raises(BookingDataError) as excinfo:
        slot_resource(derm_slot, "booked")
    assert excinfo.value.code == "bad_status"


def test_referral_numbers_show_as_unavailable_until_released(directory) -> None:
    slot = directory.slot("demo-general-hospital:derm-wei:2026-11-26:am:35")
    assert slot.referral_only
    reserved = slot_resource(slot, "free", now=NOW, lang="en")
    assert reserved["status"] == "busy-unavailable"
    assert "2026-11-24 00:00" in reserved["comment"]
    released = slot_resource(slot, "free", now=datetime(2026, 11, 24, 0, 0, tzinfo=TZ))
    assert released["status"] == "free"
    assert slot_resource(slot, "busy", now=NOW)["status"] == "busy"


def test_appointment_resource(derm_slot) -> None:
    res = appointment_resource(
        "a1b2c3",
        derm_slot,
        "p_42",
        "booked",
        service_type="Dermatology",
        comment="Rash on both arms",
        created=NOW,
        practitioner_display="Wei Suyan",
    )
    check_appointment(res)
    assert res["status"] == "booked"
    assert res["slot"] == [{"reference": "Slot/demo-general-hospital.derm-wei.2026-11-26.am.03"}]
    refs = [p["actor"]["reference"] for p in res["participant"]]
    assert refs == ["Patient/p-42", "Practitioner/demo-general-hospital.derm-wei"]
    assert res["start"] == "2026-11-26T08:13:00+08:00"
    assert res["created"] == "2026-11-23T09:00:00+08:00"
    assert res["comment"] == "Rash on both arms"


@pytest.mark.parametrize(
    ("ours", "fhir"),
    [
        ("booked", "booked"),
        ("cancelled", "cancelled"),
        ("checked_in", "arrived"),
        ("arrived", "arrived"),
        ("fulfilled", "fulfilled"),
        ("noshow", "noshow"),
    ],
)
def test_appointment_statuses(derm_slot, ours: str, fhir: str) -> None:
    res = appointment_resource("appt-1", derm_slot, "p1", ours, cancellation_reason="patient request")
    check_appointment(res)
    assert res["status"] == fhir
    if fhir == "cancelled":
        assert res["participant"][0]["status"] == "declined"
        assert res["cancelationReason"] == {"text": "patient request"}
    else:
        assert "cancelationReason" not in res


def test_bad_status_and_ids(derm_slot) -> None:
    with pytest.raises(BookingDataError) as excinfo:
        appointment_resource("appt-1", derm_slot, "p1", "teleported")
    assert excinfo.value.code == "bad_status"
    with pytest.raises(BookingDataError) as excinfo:
        appointment_resource("appt 1/../x", derm_slot, "p1")
    assert excinfo.value.code == "bad_fhir_id"
    with pytest.raises(BookingDataError):
        fhir_id("x" * 65)
    with pytest.raises(BookingDataError) as excinfo:
        slot_id_from_fhir("Slot-that-is-not-ours")
    assert excinfo.value.code == "bad_slot_id"


def test_every_demo_slot_and_schedule_has_a_valid_fhir_id(directory) -> None:
    for clinic in directory.clinics.values():
        for slot in generate_slots(clinic, date(2026, 11, 23), 7):
            assert ID_RE.match(fhir_id(slot.slot_id))
            assert slot_id_from_fhir(fhir_id(slot.slot_id)) == slot.slot_id
        for dept in clinic.departments:
            for doctor in dept.doctors:
                check_schedule(schedule_resource(clinic, doctor, now=NOW))


def test_search_bundle(directory) -> None:
    hospital = directory.get("demo-general-hospital")
    slots = [s for s in generate_slots(hospital, date(2026, 11, 26), 1) if s.doctor_id == "derm-wei"]
    bundle = slot_resources(slots, {slots[0].slot_id: "busy"}, now=NOW, lang="en", directory=directory)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    assert bundle["total"] == len(slots) == 35
    statuses = [e["resource"]["status"] for e in bundle["entry"]]
    assert statuses[0] == "busy"
    assert statuses.count("busy-unavailable") == 7  # the referral-only numbers, not yet released
    assert statuses.count("free") == 27
    for entry in bundle["entry"]:
        check_slot(entry["resource"])
        assert entry["resource"]["serviceType"][0]["text"] == "Dermatology"
