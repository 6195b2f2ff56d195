"""Clinic catalogue: clinics, departments, doctors and exams loaded from YAML files, and the
numbered half-day slots (号源) generated from the doctors' weekly sessions.

Slots are generated, not stored: the same catalogue and day always give the same slot ids, so the
server only has to store bookings. 号源下沉: the last ceil(referral_share * n) numbers of a session
are kept for referrals from community health centres until referral_release_days before the day.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from pydantic import ValidationError

from tools.booking.errors import BookingDataError
from tools.booking.models import (
    Clinic,
    ClinicDepartment,
    Doctor,
    DoctorSession,
    ExamService,
    HalfDay,
    LocalizedText,
    SlotSpec,
)
from tools.departments import load_catalogue

DEFAULT_CLINICS_DIR = Path(__file__).resolve().parent.parent / "data" / "clinics"
PREPARATIONS_FILE = "preparations.yaml"
WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
HALF_DAYS: tuple[HalfDay, HalfDay] = ("am", "pm")
# Clinic and doctor ids become parts of slot ids ("a:b:date:am:07") and FHIR ids ("a.b"), so they
# may hold only lower-case letters, digits and single hyphens.
_ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_DOCTOR_ID_LEN = 24  # keeps FHIR Slot ids within their 64-character limit
_SLOT_ID_RE = re.compile(
    r"^(?P<clinic>[a-z0-9-]+):(?P<doctor>[a-z0-9-]+):(?P<day>\d{4}-\d{2}-\d{2}):(?P<half>am|pm):(?P<num>\d{2,3})$"
)


@dataclass(frozen=True)
class ClinicDirectory:
    """All clinics of a catalogue folder plus the exam preparation texts."""

    clinics: dict[str, Clinic]
    preparations: dict[str, LocalizedText] = field(default_factory=dict)
    sequence_notes: dict[str, LocalizedText] = field(default_factory=dict)

    def get(self, clinic_id: str) -> Clinic:
        clinic = self.clinics.get(clinic_id)
        if clinic is None:
            raise BookingDataError("unknown_clinic", clinic_id=clinic_id)
        return clinic

    def department(self, clinic_id: str, dept_id: str) -> ClinicDepartment:
        for dept in self.get(clinic_id).departments:
            if dept.id == dept_id:
                return dept
        raise BookingDataError("unknown_department", clinic_id=clinic_id, department_id=dept_id)

    def doctor(self, clinic_id: str, doctor_id: str) -> tuple[ClinicDepartment, Doctor]:
        for dept in self.get(clinic_id).departments:
            for doc in dept.doctors:
                if doc.id == doctor_id:
                    return dept, doc
        raise BookingDataError("unknown_doctor", clinic_id=clinic_id, doctor_id=doctor_id)

    def exam(self, clinic_id: str, exam_id: str) -> ExamService:
        for exam in self.get(clinic_id).exams:
            if exam.id == exam_id:
                return exam
        raise BookingDataError("unknown_exam", clinic_id=clinic_id, exam_id=exam_id)

    def clinics_with_department(self, dept_id: str) -> list[Clinic]:
        """Clinics booking this department, community centres first (基层首诊), then by id."""
        found = [c for c in self.clinics.values() if any(d.id == dept_id for d in c.departments)]
        return sorted(found, key=lambda c: (c.kind != "community", c.id))

    def preparation_text(self, prep_id: str, lang: str) -> str:
        text = self.preparations.get(prep_id)
        return text.get(lang) if text else prep_id

    def slot(self, slot_id: str) -> SlotSpec:
        """The slot a (well-formed) id names; "unknown_slot" if the doctor has no such number then."""
        clinic_id, doctor_id, day, half_day, number = parse_slot_id(slot_id)
        clinic = self.get(clinic_id)
        dept, doctor = self.doctor(clinic_id, doctor_id)
        for session in doctor.sessions:
            if session.weekday == day.weekday() and session.half_day == half_day and number <= session.slots:
                return _make_slot(clinic, dept, doctor, session, day, number)
        raise BookingDataError("unknown_slot", slot_id=slot_id)


def load_directory(clinics_dir: Path | None = None) -> ClinicDirectory:
    """Every clinic file (*.yaml except preparations.yaml) of the folder; cached by resolved path."""
    return _load_directory(Path(clinics_dir or DEFAULT_CLINICS_DIR).resolve())


@lru_cache(maxsize=8)
def _load_directory(folder: Path) -> ClinicDirectory:
    if not folder.is_dir():
        raise BookingDataError("bad_clinic_file", file=str(folder), detail="not a folder")
    preparations: dict[str, LocalizedText] = {}
    notes: dict[str, LocalizedText] = {}
    prep_path = folder / PREPARATIONS_FILE
    if prep_path.exists():
        data = _read_yaml(prep_path)
        try:
            preparations = {k: LocalizedText(**v) for k, v in (data.get("preparations") or {}).items()}
            notes = {k: LocalizedText(**v) for k, v in (data.get("sequence_notes") or {}).items()}
        except (TypeError, ValidationError) as exc:
            raise BookingDataError("bad_clinic_file", file=prep_path.name, detail=_short(exc)) from exc
    clinics: dict[str, Clinic] = {}
    for path in sorted(folder.glob("*.yaml")):
        if path.name == PREPARATIONS_FILE:
            continue
        clinic = _load_clinic(path, preparations)
        if clinic.id in clinics:
            raise BookingDataError(
                "bad_clinic_file", file=path.name, detail=f"duplicate clinic id {clinic.id}"
            )
        clinics[clinic.id] = clinic
    if not clinics:
        raise BookingDataError("bad_clinic_file", file=str(folder), detail="no clinic files")
    return ClinicDirectory(clinics=clinics, preparations=preparations, sequence_notes=notes)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BookingDataError("bad_clinic_file", file=path.name, detail=_short(exc)) from exc
    if not isinstance(data, dict):
        raise BookingDataError("bad_clinic_file", file=path.name, detail="not a mapping")
    return data


def _load_clinic(path: Path, preparations: dict[str, LocalizedText]) -> Clinic:
    data = _read_yaml(path)
    catalogue = load_catalogue()
    try:
        for dept in data.get("departments") or []:
            known = catalogue.departments.get(dept.get("id"))
            if known is None:
                raise ValueError(f"department {dept.get('id')!r} is not in tools/data/departments.yaml")
            dept.setdefault("name", {"zh": known.zh, "en": known.en})
            dept.setdefault("room_id", f"clinic_{dept['id']}")
            for doc in dept.get("doctors") or []:
                doc["sessions"] = [_session(s) for s in doc.get("sessions") or []]
        clinic = Clinic(**data)
        _check_clinic(clinic, preparations)
    except (
        ValueError,
        TypeError,
        AttributeError,
        KeyError,
    ) as exc:  # pydantic's ValidationError is a ValueError
        raise BookingDataError("bad_clinic_file", file=path.name, detail=_short(exc)) from exc
    return clinic


def _session(raw: Any) -> Any:
    """ "wed am 30" -> {"weekday": 2, "half_day": "am", "slots": 30}; mappings pass through."""
    if not isinstance(raw, str):
        return raw
    parts = raw.split()
    if len(parts) != 3 or parts[0] not in WEEKDAYS or parts[1] not in HALF_DAYS or not parts[2].isdigit():
        raise ValueError(f"session {raw!r} is not '<mon..sun> <am|pm> <slots>'")
    return {"weekday": WEEKDAYS[parts[0]], "half_day": parts[1], "slots": int(parts[2])}


def _check_clinic(clinic: Clinic, preparations: dict[str, LocalizedText]) -> None:
    if not _ID_RE.match(clinic.id):
        raise ValueError(f"clinic id {clinic.id!r} must be lower-case letters, digits and '-'")
    ZoneInfo(clinic.timezone)
    st = clinic.session_times
    am_start, am_end, pm_start, pm_end = (_hhmm(v) for v in (st.am_start, st.am_end, st.pm_start, st.pm_end))
    if not am_start < am_end <= pm_start < pm_end:
        raise ValueError("session_times must satisfy am_start < am_end <= pm_start < pm_end")
    _unique((d.id for d in clinic.departments), "department")
    doctor_ids = [doc.id for d in clinic.departments for doc in d.doctors]
    _unique(doctor_ids, "doctor")
    for doc_id in doctor_ids:
        if not _ID_RE.match(doc_id) or len(doc_id) > MAX_DOCTOR_ID_LEN:
            raise ValueError(f"doctor id {doc_id!r}: lower-case letters, digits, '-', <= {MAX_DOCTOR_ID_LEN}")
    for dept in clinic.departments:
        for doc in dept.doctors:
            _unique(((s.weekday, s.half_day) for s in doc.sessions), f"session of {doc.id}")
    _unique((e.id for e in clinic.exams), "exam")
    for exam in clinic.exams:
        missing = [p for p in exam.preparation if p != "none" and p not in preparations]
        if missing:
            raise ValueError(f"exam {exam.id}: no instructions for preparation {missing}")


def _unique(values: Iterable[Any], what: str) -> None:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate {what} {value!r}")
        seen.add(value)


def _hhmm(value: str) -> time:
    try:
        return time.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"time {value!r} is not HH:MM") from exc


def _short(exc: BaseException) -> str:
    """One line naming what is wrong: for pydantic, the field path, message and offending value."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']} (got {first.get('input')!r})"[:300]
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__


# ---- sessions and slots ----


def session_window(clinic: Clinic, day: date, half_day: HalfDay) -> tuple[datetime, datetime]:
    """Start and end of a half-day session on `day`, aware in the clinic's time zone."""
    tz = ZoneInfo(clinic.timezone)
    st = clinic.session_times
    start, end = (st.am_start, st.am_end) if half_day == "am" else (st.pm_start, st.pm_end)
    return (
        datetime.combine(day, time.fromisoformat(start), tzinfo=tz),
        datetime.combine(day, time.fromisoformat(end), tzinfo=tz),
    )


def referral_count(clinic: Clinic, slots: int) -> int:
    """How many numbers of a session with `slots` numbers are kept for referrals."""
    # round() first: 0.2 * 35 is 7.000000000000001 in floating point, which must not ceil to 8.
    return min(slots, math.ceil(round(clinic.referral_share * slots, 6)))


def generate_slots(clinic: Clinic, start: date, days: int) -> list[SlotSpec]:
    """All numbered slots of `days` days from `start`, ordered by day, half-day, department (file
    order), doctor (file order) and number. Deterministic: the same input gives the same ids."""
    slots: list[SlotSpec] = []
    for offset in range(max(days, 0)):
        day = start + timedelta(days=offset)
        for half_day in HALF_DAYS:
            for dept in clinic.departments:
                for doctor in dept.doctors:
                    for session in doctor.sessions:
                        if session.weekday == day.weekday() and session.half_day == half_day:
                            slots.extend(
                                _make_slot(clinic, dept, doctor, session, day, n)
                                for n in range(1, session.slots + 1)
                            )
    return slots


def _make_slot(
    clinic: Clinic, dept: ClinicDepartment, doctor: Doctor, session: DoctorSession, day: date, number: int
) -> SlotSpec:
    begin, end = session_window(clinic, day, session.half_day)
    minutes = int((end - begin).total_seconds() // 60)
    n = session.slots
    # Whole minutes, back to back: number k covers [(k-1)*L/n, k*L/n) of the session.
    slot_start = begin + timedelta(minutes=(number - 1) * minutes // n)
    slot_end = begin + timedelta(minutes=number * minutes // n)
    reserved = number > n - referral_count(clinic, n)
    release_at = None
    if reserved:
        release_day = day - timedelta(days=clinic.referral_release_days)
        release_at = datetime.combine(release_day, time(0, 0), tzinfo=ZoneInfo(clinic.timezone))
    return SlotSpec(
        slot_id=slot_id(clinic.id, doctor.id, day, session.half_day, number),
        clinic_id=clinic.id,
        department_id=dept.id,
        doctor_id=doctor.id,
        date=day,
        half_day=session.half_day,
        number=number,
        start=slot_start,
        end=slot_end,
        referral_only=reserved,
        referral_release_at=release_at,
    )


def slot_id(clinic_id: str, doctor_id: str, day: date, half_day: HalfDay, number: int) -> str:
    return f"{clinic_id}:{doctor_id}:{day.isoformat()}:{half_day}:{number:02d}"


def parse_slot_id(value: str) -> tuple[str, str, date, HalfDay, int]:
    """(clinic_id, doctor_id, date, half_day, number); BookingDataError "bad_slot_id" if malformed."""
    match = _SLOT_ID_RE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise BookingDataError("bad_slot_id", slot_id=value)
    try:
        day = date.fromisoformat(match["day"])
    except ValueError as exc:
        raise BookingDataError("bad_slot_id", slot_id=value) from exc
    number = int(match["num"])
    if number < 1:
        raise BookingDataError("bad_slot_id", slot_id=value)
    half_day: HalfDay = "am" if match["half"] == "am" else "pm"
    return match["clinic"], match["doctor"], day, half_day, number


def is_reserved_for_referral(slot: SlotSpec, now: datetime) -> bool:
    """True while a referral-only number is still closed to the public."""
    return slot.referral_only and slot.referral_release_at is not None and now < slot.referral_release_at


def check_bookable(clinic: Clinic, slot: SlotSpec, now: datetime, *, referral: bool = False) -> None:
    """Raise BookingDataError if `slot` cannot be booked at `now`: "slot_in_past" once it has started,
    "slot_not_open" beyond booking_days_ahead, "referral_only" for a still-reserved number unless the
    booking is a community-centre referral."""
    if slot.start <= now:
        raise BookingDataError("slot_in_past", start=slot.start.strftime("%Y-%m-%d %H:%M"))
    today = now.astimezone(ZoneInfo(clinic.timezone)).date()
    if (slot.date - today).days > clinic.booking_days_ahead:
        raise BookingDataError("slot_not_open", days=clinic.booking_days_ahead)
    if not referral and is_reserved_for_referral(slot, now):
        assert slot.referral_release_at is not None
        raise BookingDataError(
            "referral_only", release_at=slot.referral_release_at.strftime("%Y-%m-%d %H:%M")
        )
