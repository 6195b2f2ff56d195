"""Outpatient exam planning: put the ordered exams into as few trips (half-day sessions) as
possible, in an order that respects their preparation, and finish as early as possible.

Rules (common outpatient practice):
  * Fasting exams (fasting_8h: fasting blood chemistry, abdominal ultrasound) go first, in a
    morning session, starting no later than 10:00 (the patient fasts overnight).
  * A full-bladder exam (pelvic/urinary ultrasound) in the same trip comes after them: the patient
    may drink only once the fasting exams are done, then waits BLADDER_FILL for the bladder to fill.
    A urine sample is taken right after the full-bladder scan.
  * Tests without preparation that share a room with a fasting exam (full blood count in the blood
    draw room) are done with it; CT/MRI (remove_metal) last.
  * Every exam must be open in that half-day (open_half_days), have capacity (the optional
    `capacity(exam_id, date, half_day)` callable, e.g. the server's remaining places), and end
    before the session closes; otherwise it moves to a later session.
Plans are compared by number of trips, then by the time the last exam ends. `within_24h` tells
whether everything is done within 24 hours of `now` (the 24-hour outpatient-exam target).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import lru_cache
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from tools.booking.catalogue import ClinicDirectory, load_directory, session_window
from tools.booking.errors import BookingDataError
from tools.booking.models import Clinic, ExamService, HalfDay, Preparation

FASTING_LATEST_START = dt.time(10, 0)  # fasting exams must start by then
BLADDER_FILL = dt.timedelta(minutes=60)  # drink 500-800 ml after the fasting exams, then wait
WALK = dt.timedelta(minutes=10)  # moving to another room and queueing there
ARRIVE_BEFORE = dt.timedelta(minutes=15)  # registration / payment before the first exam
MIN_LEAD = dt.timedelta(minutes=30)  # the earliest start from `now` (getting there)
HORIZON_DAYS = 14
FOLLOW_UP_WINDOW = dt.timedelta(days=7)  # see the ordering doctor within a week of the last report
# Exams whose sample is easiest right after a full-bladder scan (no second wait).
AFTER_FULL_BLADDER = {"urine_routine"}

Capacity = Callable[[str, dt.date, HalfDay], int]


class PlannedExam(BaseModel):
    exam_id: str
    name: str
    room_id: str
    start: dt.datetime
    end: dt.datetime
    preparation: list[Preparation]
    report_ready_at: dt.datetime


class ExamTrip(BaseModel):
    """One visit to the clinic: a half-day session and the exams done in it, in order."""

    date: dt.date
    half_day: HalfDay
    arrive_by: dt.datetime
    exams: list[PlannedExam]
    preparation_ids: list[Preparation]
    instructions: list[str]  # preparation and sequencing instructions in the plan's language


class ExamPlan(BaseModel):
    clinic_id: str
    lang: str
    planned_at: dt.datetime
    trips: list[ExamTrip]
    total_trips: int
    finish_at: dt.datetime  # end of the last exam
    within_24h: bool  # every exam done within 24 h of planned_at
    report_ready_at: dict[str, dt.datetime]  # exam id -> when its report is ready
    follow_up_after: dt.datetime  # the latest report: the ordering doctor can read them all
    follow_up_before: dt.datetime
    follow_up_date: dt.date | None  # first session that starts after all reports are ready
    follow_up_half_day: HalfDay | None


def plan_exams(
    clinic: Clinic,
    exam_ids: list[str],
    now: dt.datetime,
    lang: str = "zh",
    *,
    capacity: Capacity | None = None,
    directory: ClinicDirectory | None = None,
) -> ExamPlan:
    """Plan the exams; raises BookingDataError "no_exams", "unknown_exam" or "no_exam_session"."""
    tz = ZoneInfo(clinic.timezone)
    now = now.replace(tzinfo=tz) if now.tzinfo is None else now.astimezone(tz)
    exams = _exams(clinic, exam_ids)
    planner = _Planner(clinic, exams, now, capacity, lang)
    best = planner.best(frozenset(e.id for e in exams), 0)
    if best is None:
        days = HORIZON_DAYS
        raise BookingDataError("no_exam_session", days=days, exams=", ".join(e.id for e in exams))
    texts = directory or load_directory()
    trips = [_trip(planner.sessions[i], placed, texts, lang) for i, placed in best[2]]
    reports = {p.exam_id: p.report_ready_at for t in trips for p in t.exams}
    finish = max(p.end for t in trips for p in t.exams)
    follow_up_after = max(reports.values())
    follow_up = _next_session(clinic, follow_up_after)
    return ExamPlan(
        clinic_id=clinic.id,
        lang=lang,
        planned_at=now,
        trips=trips,
        total_trips=len(trips),
        finish_at=finish,
        within_24h=finish <= now + dt.timedelta(hours=24),
        report_ready_at=reports,
        follow_up_after=follow_up_after,
        follow_up_before=follow_up_after + FOLLOW_UP_WINDOW,
        follow_up_date=follow_up[0] if follow_up else None,
        follow_up_half_day=follow_up[1] if follow_up else None,
    )


def _exams(clinic: Clinic, exam_ids: list[str]) -> list[ExamService]:
    if not exam_ids:
        raise BookingDataError("no_exams")
    by_id = {e.id: e for e in clinic.exams}
    chosen: list[ExamService] = []
    for exam_id in exam_ids:
        if exam_id not in by_id:
            raise BookingDataError("unknown_exam", clinic_id=clinic.id, exam_id=exam_id)
        if by_id[exam_id] not in chosen:
            chosen.append(by_id[exam_id])
    catalogue_order = [e.id for e in clinic.exams]
    return sorted(chosen, key=lambda e: catalogue_order.index(e.id))  # the plan ignores request order


def _is_fasting(exam: ExamService) -> bool:
    return "fasting_8h" in exam.preparation


def _is_bladder(exam: ExamService) -> bool:
    return "full_bladder" in exam.preparation


def _order(exams: list[ExamService]) -> list[ExamService]:
    """Fasting first (with same-room tests), then full bladder, urine, other tests, CT/MRI."""
    fasting_rooms = {e.room_id for e in exams if _is_fasting(e)}
    has_bladder = any(_is_bladder(e) for e in exams)

    def rank(exam: ExamService) -> int:
        if _is_fasting(exam):
            return 0
        if exam.id in AFTER_FULL_BLADDER and has_bladder:
            return 2
        if not exam.preparation and exam.room_id in fasting_rooms:
            return 0
        if _is_bladder(exam):
            return 1
        if "remove_metal" in exam.preparation:
            return 4
        return 3

    ranked = sorted(exams, key=rank)  # stable: catalogue order within a rank
    rooms = list(dict.fromkeys(e.room_id for e in ranked))
    return sorted(ranked, key=lambda e: (rank(e), rooms.index(e.room_id), not _is_fasting(e)))


class _Planner:
    def __init__(
        self, clinic: Clinic, exams: list[ExamService], now: dt.datetime, capacity: Capacity | None, lang: str
    ):
        self.clinic = clinic
        self.lang = lang
        self.exams = {e.id: e for e in exams}
        self.order = [e.id for e in exams]
        self.now = now
        self.capacity = capacity
        self.sessions: list[tuple[dt.date, HalfDay, dt.datetime, dt.datetime]] = []
        for offset in range(HORIZON_DAYS + 1):
            day = now.date() + dt.timedelta(days=offset)
            for half_day in ("am", "pm"):
                begin, end = session_window(clinic, day, half_day)
                earliest = max(begin, _round_up(now + MIN_LEAD))
                if earliest < end:
                    self.sessions.append((day, half_day, earliest, end))
        self._fill = lru_cache(maxsize=None)(self._fill_uncached)
        self.best = lru_cache(maxsize=None)(self._best_uncached)

    def _has_room(self, exam: ExamService, day: dt.date, half_day: HalfDay) -> bool:
        if half_day not in exam.open_half_days:
            return False
        left = self.capacity(exam.id, day, half_day) if self.capacity else exam.capacity_per_half_day
        return left > 0

    def _fill_uncached(self, index: int, remaining: frozenset[str]) -> tuple[PlannedExam, ...]:
        """As many of `remaining` as fit in session `index`, in the preparation order."""
        day, half_day, earliest, end = self.sessions[index]
        candidates = _order([self.exams[i] for i in self.order if i in remaining])
        placed: list[PlannedExam] = []
        clock = earliest
        room: str | None = None
        fasting_done: dt.datetime | None = None
        for exam in candidates:
            if not self._has_room(exam, day, half_day):
                continue
            start = clock if room in (None, exam.room_id) else clock + WALK
            if _is_fasting(exam) and (half_day != "am" or start.time() > FASTING_LATEST_START):
                continue
            if _is_bladder(exam) and fasting_done is not None:
                start = max(start, fasting_done + BLADDER_FILL)
            finish = start + dt.timedelta(minutes=exam.duration_min)
            if finish > end:
                continue
            placed.append(
                PlannedExam(
                    exam_id=exam.id,
                    name=exam.name.get(self.lang),
                    room_id=exam.room_id,
                    start=start,
                    end=finish,
                    preparation=[p for p in exam.preparation if p != "none"],
                    report_ready_at=finish + dt.timedelta(hours=exam.report_hours),
                )
            )
            clock, room = finish, exam.room_id
            if _is_fasting(exam):
                fasting_done = finish
        return tuple(placed)

    def _best_uncached(
        self, remaining: frozenset[str], first: int
    ) -> tuple[int, dt.datetime, tuple[tuple[int, tuple[PlannedExam, ...]], ...]] | None:
        """(trips, finish, ((session index, exams), ...)) with the fewest trips, then earliest finish."""
        best = None
        for index in range(first, len(self.sessions)):
            placed = self._fill(index, remaining)
            if not placed:
                continue
            rest = remaining - {p.exam_id for p in placed}
            trip = ((index, placed),)
            if not rest:
                candidate = (1, max(p.end for p in placed), trip)
            else:
                sub = self.best(rest, index + 1)
                if sub is None:
                    continue
                candidate = (1 + sub[0], sub[1], trip + sub[2])
            if best is None or candidate[:2] < best[:2]:
                best = candidate
            if not rest:
                break  # a later single trip cannot beat this one
        return best


def _round_up(moment: dt.datetime, minutes: int = 5) -> dt.datetime:
    moment = moment.replace(second=0, microsecond=0) + (
        dt.timedelta(minutes=1) if moment.second or moment.microsecond else dt.timedelta()
    )
    return moment + dt.timedelta(minutes=(-moment.minute) % minutes)


def _trip(
    session: tuple[dt.date, HalfDay, dt.datetime, dt.datetime],
    placed: tuple[PlannedExam, ...],
    texts: ClinicDirectory,
    lang: str,
) -> ExamTrip:
    day, half_day, _, _ = session
    prep_ids: list[Preparation] = list(dict.fromkeys(p for exam in placed for p in exam.preparation))
    instructions = [texts.preparation_text(p, lang) for p in prep_ids]
    ids = [p.exam_id for p in placed]
    has_fasting = "fasting_8h" in prep_ids
    if has_fasting and "full_bladder" in prep_ids:
        instructions.append(_note(texts, "bladder_after_fasting", lang))
    if "full_bladder" in prep_ids and any(i in AFTER_FULL_BLADDER for i in ids):
        instructions.append(_note(texts, "urine_after_bladder", lang))
    if has_fasting:
        instructions.append(_note(texts, "eat_after_fasting", lang))
    return ExamTrip(
        date=day,
        half_day=half_day,
        arrive_by=placed[0].start - ARRIVE_BEFORE,
        exams=list(placed),
        preparation_ids=prep_ids,
        instructions=[i for i in instructions if i],
    )


def _note(texts: ClinicDirectory, key: str, lang: str) -> str:
    note = texts.sequence_notes.get(key)
    return note.get(lang) if note else ""


def _next_session(clinic: Clinic, after: dt.datetime) -> tuple[dt.date, HalfDay] | None:
    """The first session that still has at least 30 minutes left after `after`."""
    for offset in range(HORIZON_DAYS + 1):
        day = after.date() + dt.timedelta(days=offset)
        for half_day in ("am", "pm"):
            _, end = session_window(clinic, day, half_day)
            if end - dt.timedelta(minutes=30) >= after:
                return day, half_day
    return None
