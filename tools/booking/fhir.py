"""FHIR R4 shaped views (plain dicts) of the booking domain: Schedule (a doctor's bookable
calendar), Slot (one numbered 号源) and Appointment (a booking).

FHIR ids allow only [A-Za-z0-9-.] and 64 characters, so our ids are mapped: ":" -> "." and
"_" -> "-" (clinic and doctor ids contain neither "." nor "_", so slot ids map back exactly).
Our own ids are kept in `identifier` with the systems below.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

from tools.booking.catalogue import ClinicDirectory, load_directory, parse_slot_id
from tools.booking.errors import BookingDataError
from tools.booking.models import Clinic, ClinicDepartment, Doctor, SlotSpec

SYSTEM_SLOT = "urn:daozhen:slot"
SYSTEM_APPOINTMENT = "urn:daozhen:appointment"
SYSTEM_DEPARTMENT = "urn:daozhen:department"
SLOT_STATUSES = {"free", "busy", "busy-unavailable", "busy-tentative", "entered-in-error"}
# AppointmentStatus of models.py -> FHIR R4 Appointment.status
APPOINTMENT_STATUS = {
    "booked": "booked",
    "cancelled": "cancelled",
    "checked_in": "arrived",
    "arrived": "arrived",
    "fulfilled": "fulfilled",
    "noshow": "noshow",
    "pending": "pending",
    "proposed": "proposed",
}
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def fhir_id(value: str) -> str:
    """Our id as a FHIR id; BookingDataError "bad_fhir_id" if it cannot be one."""
    mapped = str(value).replace(":", ".").replace("_", "-")
    if not _FHIR_ID.match(mapped):
        raise BookingDataError("bad_fhir_id", value=value)
    return mapped


def slot_id_from_fhir(value: str) -> str:
    """The slot id behind a FHIR Slot id ("demo-general-hospital.gp-he.2026-11-25.am.03")."""
    candidate = str(value).replace(".", ":")
    parse_slot_id(candidate)  # raises "bad_slot_id"
    return candidate


def schedule_id(clinic_id: str, doctor_id: str) -> str:
    """A doctor's Schedule id; the Practitioner has the same id."""
    return fhir_id(f"{clinic_id}:{doctor_id}")


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds")  # aware datetimes: "2026-11-25T08:00:00+08:00"


def _text(value: str) -> dict[str, Any]:
    return {"text": value}


def schedule_resource(
    clinic: Clinic,
    doctor: Doctor,
    *,
    department: ClinicDepartment | None = None,
    now: dt.datetime | None = None,
    lang: str = "zh",
) -> dict[str, Any]:
    """The doctor's Schedule: actors Practitioner + HealthcareService (the department), planning
    horizon = today .. today + booking_days_ahead in the clinic's zone (`now` defaults to the clock)."""
    tz = ZoneInfo(clinic.timezone)
    dept = department or _department_of(clinic, doctor)
    today = (now.astimezone(tz) if now else dt.datetime.now(tz)).date()
    start = dt.datetime.combine(today, dt.time(0, 0), tzinfo=tz)
    end = start + dt.timedelta(days=clinic.booking_days_ahead + 1)
    return {
        "resourceType": "Schedule",
        "id": schedule_id(clinic.id, doctor.id),
        "active": True,
        "serviceType": [_text(dept.name.get(lang))],
        "actor": [
            {
                "reference": f"Practitioner/{schedule_id(clinic.id, doctor.id)}",
                "display": doctor.name.get(lang),
            },
            {
                "reference": f"HealthcareService/{fhir_id(f'{clinic.id}:{dept.id}')}",
                "display": f"{clinic.name.get(lang)} {dept.name.get(lang)}",
            },
        ],
        "planningHorizon": {"start": _iso(start), "end": _iso(end)},
        "comment": f"{doctor.title.get(lang)}; {clinic.name.get(lang)}" + (" (demo)" if clinic.demo else ""),
    }


def _department_of(clinic: Clinic, doctor: Doctor) -> ClinicDepartment:
    for dept in clinic.departments:
        if any(d.id == doctor.id for d in dept.doctors):
            return dept
    raise BookingDataError("unknown_doctor", clinic_id=clinic.id, doctor_id=doctor.id)


def slot_resource(
    slot: SlotSpec,
    status: str = "free",
    *,
    service_type: str | None = None,
    now: dt.datetime | None = None,
    lang: str = "zh",
) -> dict[str, Any]:
    """A Slot. `service_type` is the department's display name (default: the department id).
    A referral-only number still reserved at `now` is "busy-unavailable" unless already busy."""
    if status not in SLOT_STATUSES:
        raise BookingDataError("bad_status", status=status)
    release_at = slot.referral_release_at if slot.referral_only else None
    if release_at is not None and now is not None and status == "free" and now < release_at:
        status = "busy-unavailable"
    resource: dict[str, Any] = {
        "resourceType": "Slot",
        "id": fhir_id(slot.slot_id),
        "identifier": [{"system": SYSTEM_SLOT, "value": slot.slot_id}],
        "schedule": {"reference": f"Schedule/{schedule_id(slot.clinic_id, slot.doctor_id)}"},
        "status": status,
        "start": _iso(slot.start),
        "end": _iso(slot.end),
        "serviceType": [
            {
                "coding": [{"system": SYSTEM_DEPARTMENT, "code": slot.department_id}],
                "text": service_type or slot.department_id,
            }
        ],
    }
    if release_at is not None:
        release = release_at.strftime("%Y-%m-%d %H:%M")
        resource["comment"] = (
            f"No. {slot.number}; reserved for community referrals until {release}"
            if lang == "en"
            else f"{slot.number}号；社区转诊预留号，{release} 起向所有人开放"
        )
    else:
        resource["comment"] = f"No. {slot.number}" if lang == "en" else f"{slot.number}号"
    return resource


def appointment_resource(
    appointment_id: str,
    slot: SlotSpec,
    patient_id: str,
    status: str = "booked",
    *,
    service_type: str | None = None,
    comment: str | None = None,
    created: dt.datetime | None = None,
    cancellation_reason: str | None = None,
    patient_display: str | None = None,
    practitioner_display: str | None = None,
) -> dict[str, Any]:
    """An Appointment for `slot`: participants Patient + Practitioner (both "accepted"; the patient
    "declined" once cancelled). `status` is ours (checked_in -> arrived) or a FHIR status."""
    fhir_status = APPOINTMENT_STATUS.get(status)
    if fhir_status is None:
        raise BookingDataError("bad_status", status=status)
    patient: dict[str, Any] = {"reference": f"Patient/{fhir_id(patient_id)}"}
    if patient_display:
        patient["display"] = patient_display
    doctor_ref = f"Practitioner/{schedule_id(slot.clinic_id, slot.doctor_id)}"
    practitioner: dict[str, Any] = {"reference": doctor_ref}
    if practitioner_display:
        practitioner["display"] = practitioner_display
    patient_status = "declined" if fhir_status == "cancelled" else "accepted"
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": fhir_id(appointment_id),
        "identifier": [{"system": SYSTEM_APPOINTMENT, "value": str(appointment_id)}],
        "status": fhir_status,
        "serviceType": [
            {
                "coding": [{"system": SYSTEM_DEPARTMENT, "code": slot.department_id}],
                "text": service_type or slot.department_id,
            }
        ],
        "start": _iso(slot.start),
        "end": _iso(slot.end),
        "slot": [{"reference": f"Slot/{fhir_id(slot.slot_id)}"}],
        "participant": [
            {"actor": patient, "required": "required", "status": patient_status},
            {"actor": practitioner, "required": "required", "status": "accepted"},
        ],
    }
    if created is not None:
        resource["created"] = _iso(created)
    if comment:
        resource["comment"] = comment
    if fhir_status == "cancelled" and cancellation_reason:
        resource["cancelationReason"] = {"text": cancellation_reason}  # sic: FHIR R4 spelling
    return resource


def slot_resources(
    slots: list[SlotSpec],
    statuses: dict[str, str] | None = None,
    *,
    now: dt.datetime | None = None,
    lang: str = "zh",
    directory: ClinicDirectory | None = None,
) -> dict[str, Any]:
    """A searchset Bundle of Slots; `statuses` maps slot ids to busy etc. (default free)."""
    names = directory or load_directory()
    entries = []
    for slot in slots:
        try:
            text = names.department(slot.clinic_id, slot.department_id).name.get(lang)
        except BookingDataError:
            text = slot.department_id
        status = (statuses or {}).get(slot.slot_id, "free")
        entries.append({"resource": slot_resource(slot, status, service_type=text, now=now, lang=lang)})
    return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}
