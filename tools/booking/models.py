"""The booking domain's data shapes, shared by tools/booking (catalogue, slots, exam plans) and
server/booking (store, service, REST). Times are timezone-aware (the clinic's zone)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

HalfDay = Literal["am", "pm"]
ClinicKind = Literal["hospital", "community"]
AppointmentStatus = Literal["booked", "cancelled", "checked_in", "fulfilled", "noshow"]
# Exam preparation ids; their zh/en instructions live in the catalogue data file.
Preparation = Literal["fasting_8h", "full_bladder", "empty_bladder", "remove_metal", "none"]


class LocalizedText(BaseModel):
    zh: str
    en: str

    def get(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


class SessionTimes(BaseModel):
    """Opening hours of the two half-day sessions, "HH:MM" local time."""

    am_start: str = "08:00"
    am_end: str = "12:00"
    pm_start: str = "13:30"
    pm_end: str = "17:00"


class DoctorSession(BaseModel):
    weekday: int = Field(ge=0, le=6)  # 0 = Monday
    half_day: HalfDay
    slots: int = Field(ge=1, le=200)  # numbered 号源 in this half-day


class Doctor(BaseModel):
    id: str
    name: LocalizedText
    title: LocalizedText  # 主任医师 / 副主任医师 / 主治医师 / 全科医生 ...
    sessions: list[DoctorSession]


class ClinicDepartment(BaseModel):
    id: str  # an id of tools/data/departments.yaml, so triage's department maps to a bookable one
    name: LocalizedText
    room_id: str  # a node id of the clinic's navigation map (tools/data/maps/)
    doctors: list[Doctor]


class ExamService(BaseModel):
    id: str  # blood_routine, blood_fasting, ultrasound_abdomen, ultrasound_pelvis, ct, mri, ecg ...
    name: LocalizedText
    room_id: str
    preparation: list[Preparation] = Field(default_factory=list)
    duration_min: int = Field(ge=1)
    report_hours: float = Field(ge=0)  # time until the report is ready
    capacity_per_half_day: int = Field(ge=1)
    open_half_days: list[HalfDay] = Field(default_factory=lambda: ["am", "pm"])


class Clinic(BaseModel):
    id: str
    name: LocalizedText
    kind: ClinicKind
    demo: bool  # demo data, not a real institution
    district: LocalizedText
    address: LocalizedText
    phone: str
    timezone: str = "Asia/Shanghai"
    map_id: str | None = None  # navigation map of this clinic, if any
    session_times: SessionTimes = Field(default_factory=SessionTimes)
    booking_days_ahead: int = Field(default=7, ge=1, le=90)
    # 号源下沉: this share of each half-day's numbers is kept for referrals from community
    # health centres until referral_release_days before the day, then opens to everyone.
    referral_share: float = Field(default=0.0, ge=0.0, le=0.5)
    referral_release_days: int = Field(default=2, ge=0, le=30)
    departments: list[ClinicDepartment]
    exams: list[ExamService] = Field(default_factory=list)
    villages: list[LocalizedText] = Field(default_factory=list)  # villages a community centre serves


class SlotSpec(BaseModel):
    """One numbered 号源 as generated from the schedule (before anyone books it)."""

    slot_id: str  # "{clinic}:{doctor}:{YYYY-MM-DD}:{am|pm}:{number:02d}"; stable across runs
    clinic_id: str
    department_id: str
    doctor_id: str
    date: date
    half_day: HalfDay
    number: int = Field(ge=1)
    start: datetime
    end: datetime
    referral_only: bool = False  # reserved for community referrals (until released)
    referral_release_at: datetime | None = None  # when a reserved number opens to everyone
