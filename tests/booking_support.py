"""Small booking catalogues and a movable clock for the booking tests.

The slots come from tools.booking.catalogue.generate_slots when that module exists; otherwise from
`make_slots` below, which follows the same contract (slot id format, the last ceil(share * n) numbers
of a session reserved for referrals until 00:00 local `referral_release_days` before the day)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tools.booking.models import (
    Clinic,
    ClinicDepartment,
    Doctor,
    DoctorSession,
    ExamService,
    LocalizedText,
    SlotSpec,
)

TZ = ZoneInfo("Asia/Shanghai")
HOSPITAL = "test-hospital"
CHC = "test-chc"
# Monday 2026-11-23 07:00 Beijing time: before the morning session opens.
MONDAY = datetime(2026, 11, 23, 7, 0, tzinfo=TZ)


def text(zh: str, en: str) -> LocalizedText:
    return LocalizedText(zh=zh, en=en)


def doctor(doctor_id: str, slots: int, half_days: tuple[str, ...] = ("am", "pm")) -> Doctor:
    return Doctor(
        id=doctor_id,
        name=text(f"医生{doctor_id}", f"Dr {doctor_id}"),
        title=text("主治医师", "Attending physician"),
        sessions=[DoctorSession(weekday=w, half_day=h, slots=slots) for w in range(7) for h in half_days],  # type: ignore[arg-type]
    )


def hospital(slots: int = 4, referral_share: float = 0.25, *, extra_slots: int = 0) -> Clinic:
    return Clinic(
        id=HOSPITAL,
        name=text("测试医院", "Test Hospital"),
        kind="hospital",
        demo=True,
        district=text("东城区", "East District"),
        address=text("测试路1号", "1 Test Road"),
        phone="010-00000000",
        booking_days_ahead=7,
        referral_share=referral_share,
        referral_release_days=2,
        departments=[
            ClinicDepartment(
                id="dermatology",
                name=text("皮肤科", "Dermatology"),
                room_id="clinic_dermatology",
                doctors=[doctor("derm1", slots)],
            ),
            ClinicDepartment(
                id="cardiology",
                name=text("心内科", "Cardiology"),
                room_id="clinic_cardiology",
                doctors=[doctor("card1", slots), doctor("card2", slots + extra_slots)],
            ),
        ],
        exams=[
            ExamService(
                id="blood_routine",
                name=text("血常规", "Complete blood count"),
                room_id="blood_draw",
                duration_min=5,
                report_hours=2,
                capacity_per_half_day=3,
            ),
        ],
    )


def community() -> Clinic:
    return Clinic(
        id=CHC,
        name=text("东城社区卫生服务中心", "East Community Health Centre"),
        kind="community",
        demo=True,
        district=text("东城区", "East District"),
        address=text("社区路2号", "2 Community Road"),
        phone="010-11111111",
        departments=[
            ClinicDepartment(
                id="general_practice",
                name=text("全科", "General practice"),
                room_id="clinic_general_practice",
                doctors=[doctor("gp1", 4)],
            )
        ],
    )


@dataclass
class Directory:
    clinics: dict[str, Clinic] = field(default_factory=dict)


def directory(**kwargs: object) -> Directory:
    return Directory({HOSPITAL: hospital(**kwargs), CHC: community()})  # type: ignore[arg-type]


def _hhmm(text_: str) -> time:
    hour, minute = text_.split(":")
    return time(int(hour), int(minute))


def make_slots(clinic: Clinic, start: date, days: int) -> list[SlotSpec]:
    zone = ZoneInfo(clinic.timezone)
    specs: list[SlotSpec] = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        for dept in clinic.departments:
            for doc in dept.doctors:
                for session in doc.sessions:
                    if session.weekday != day.weekday():
                        continue
                    times = clinic.session_times
                    begin, end = (
                        (times.am_start, times.am_end)
                        if session.half_day == "am"
                        else (times.pm_start, times.pm_end)
                    )
                    open_at = datetime.combine(day, _hhmm(begin), tzinfo=zone)
                    length = (datetime.combine(day, _hhmm(end), tzinfo=zone) - open_at) / session.slots
                    reserved = math.ceil(clinic.referral_share * session.slots)
                    release = datetime.combine(
                        day - timedelta(days=clinic.referral_release_days), time(0), zone
                    )
                    for number in range(1, session.slots + 1):
                        referral_only = number > session.slots - reserved
                        specs.append(
                            SlotSpec(
                                slot_id=f"{clinic.id}:{doc.id}:{day.isoformat()}:{session.half_day}:{number:02d}",
                                clinic_id=clinic.id,
                                department_id=dept.id,
                                doctor_id=doc.id,
                                date=day,
                                half_day=session.half_day,
                                number=number,
                                start=open_at + length * (number - 1),
                                end=open_at + length * number,
                                referral_only=referral_only,
                                referral_release_at=release if referral_only else None,
                            )
                        )
    return sorted(specs, key=lambda s: (s.start, s.doctor_id, s.number))


def slot_generator():  # type: ignore[no-untyped-def]
    """The real catalogue's generator when it exists, else the contract-following stand-in."""
    try:
        from tools.booking.catalogue import generate_slots
    except ImportError:
        return make_slots
    return generate_slots


class Clock:
    """The service's clock; tests move it instead of sleeping."""

    def __init__(self, start: datetime = MONDAY) -> None:
        self.now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def set(self, moment: datetime) -> None:
        self.now = moment.astimezone(UTC)


class Outbox:
    """A notify function that records what was pushed."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict]] = []  # type: ignore[type-arg]

    def __call__(self, patient_id: str, kind: str, payload: dict) -> None:  # type: ignore[type-arg]
        self.sent.append((patient_id, kind, payload))

    def of_kind(self, kind: str) -> list[tuple[str, str, dict]]:  # type: ignore[type-arg]
        return [n for n in self.sent if n[1] == kind]
