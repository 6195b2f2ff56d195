"""Reminders, pure: what a reminder is (ReminderSpec), whether its schedule makes sense, when it
recurs (RFC 5545 RRULE in the reminder's local wall time) and the iCalendar export.

Recurrence is evaluated in local wall time (default Asia/Shanghai), so "every day at 08:00" stays
08:00 local; stored and compared times are aware datetimes, UTC in databases.

Validation codes (ReminderError.code, zh/en messages):
  time_in_past           first_at earlier than now minus a small grace
  impossible_recurrence  the RRULE cannot be parsed, or it yields no occurrence (31 February,
                         UNTIL before DTSTART, COUNT=0 ...)
  unsupported_recurrence a rule this scheduler will not evaluate (INTERVAL with day filters on a
                         DAILY/HOURLY/WEEKLY rule: dateutil may search for centuries)
  too_frequent           more than MAX_PER_DAY occurrences on one local day (SECONDLY, MINUTELY ...)
  bad_timezone, invalid_field
"""

from __future__ import annotations

import calendar
import hashlib
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rrulestr
from pydantic import BaseModel, Field, field_validator, model_validator

from tools.localized_error import LocalizedError

DEFAULT_TZ = "Asia/Shanghai"
DEFAULT_GRACE = timedelta(minutes=1)  # a form submitted at 08:00:30 for "08:00" is not "in the past"
MAX_PER_DAY = 24  # hourly re-measuring is the most frequent reminder anyone needs
MAX_COUNT = 2000
FREQ_CHECK_SAMPLE = 200  # occurrences looked at for the per-day limit

MESSAGES: dict[str, tuple[str, str]] = {
    "time_in_past": (
        "提醒时间 {time} 已经过去了，请选择将来的时间。",
        "The reminder time {time} is in the past; please choose a future time.",
    ),
    "impossible_recurrence": (
        "重复规则无法使用：{detail}",
        "The recurrence rule cannot be used: {detail}",
    ),
    "unsupported_recurrence": (
        "暂不支持这种重复规则：{detail}",
        "This recurrence rule is not supported: {detail}",
    ),
    "too_frequent": (
        "提醒太频繁（一天最多 {limit} 次）。",
        "The reminder is too frequent (at most {limit} a day).",
    ),
    "bad_timezone": ("不认识的时区：{tz}", "Unknown time zone: {tz}"),
    "invalid_field": ("字段 {field} 无效：{detail}", "Invalid field {field}: {detail}"),
}


class ReminderError(LocalizedError, ValueError):
    messages = MESSAGES


class ReminderKind(StrEnum):
    medication = "medication"
    remeasure = "remeasure"  # fever monitoring: measure the temperature again
    revisit = "revisit"  # 复诊
    exam_prep = "exam_prep"  # e.g. fasting the night before
    chronic_check = "chronic_check"  # blood pressure / glucose check, quarterly visit
    followup_question = "followup_question"  # post-visit "how are you now?"


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ReminderError("bad_timezone", tz=name[:60]) from exc


class ReminderSpec(BaseModel):
    """One reminder as a person asked for it. first_at naive = local time in `tz`.
    count/until bound the rrule (they are merged into it); without rrule the reminder fires once."""

    patient_id: str = Field(min_length=1, max_length=100)
    kind: ReminderKind
    title_zh: str | None = Field(default=None, max_length=200)
    title_en: str | None = Field(default=None, max_length=200)
    body_zh: str | None = Field(default=None, max_length=1000)
    body_en: str | None = Field(default=None, max_length=1000)
    first_at: datetime
    rrule: str | None = Field(default=None, max_length=500)
    count: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    until: datetime | None = None
    tz: str = DEFAULT_TZ
    data: dict[str, Any] = Field(default_factory=dict)  # e.g. {"question_id": ...} for follow-ups

    @field_validator("tz")
    @classmethod
    def _known_tz(cls, value: str) -> str:
        zone(value)
        return value

    @model_validator(mode="after")
    def _has_title(self) -> ReminderSpec:
        if not (self.title_zh or self.title_en):
            raise ValueError("title_zh or title_en is required")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return zone(self.tz)

    def local_first_at(self) -> datetime:
        """first_at as an aware datetime in the reminder's zone."""
        return localize(self.first_at, self.zone)

    def title(self, lang: str | None) -> str:
        zh, en = self.title_zh or self.title_en or "", self.title_en or self.title_zh or ""
        return zh if lang == "zh" else en if lang == "en" else f"{zh} / {en}" if zh != en else zh


def localize(moment: datetime, tz: ZoneInfo) -> datetime:
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment.astimezone(tz)


# ------------------------------------------------------------------------------ RRULE parsing

_ALLOWED = {
    "FREQ", "INTERVAL", "COUNT", "UNTIL", "WKST", "BYSECOND", "BYMINUTE", "BYHOUR", "BYDAY",
    "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH", "BYSETPOS",
}  # fmt: skip
_FREQS = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY", "SECONDLY")
_RANGES = {
    "BYSECOND": (0, 60, False),
    "BYMINUTE": (0, 59, False),
    "BYHOUR": (0, 23, False),
    "BYMONTHDAY": (1, 31, True),
    "BYYEARDAY": (1, 366, True),
    "BYWEEKNO": (1, 53, True),
    "BYMONTH": (1, 12, False),
    "BYSETPOS": (1, 366, True),
}  # name -> (min, max, may be negative)
_DAY_FILTERS = ("BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH", "BYSETPOS")
_BYDAY = re.compile(r"^([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")


def _impossible(detail: str) -> ReminderError:
    return ReminderError("impossible_recurrence", detail=detail)


def parse_rrule_parts(text: str) -> dict[str, str]:
    """'RRULE:FREQ=DAILY;BYHOUR=8' -> {"FREQ": "DAILY", "BYHOUR": "8"}, values checked for range."""
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    if not body or "\n" in body:
        raise _impossible("empty rule" if not body else "one RRULE line only")
    parts: dict[str, str] = {}
    for item in body.upper().split(";"):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise _impossible(f"'{item[:30]}' is not NAME=VALUE")
        if key not in _ALLOWED:
            raise _impossible(f"unknown part {key[:20]}")
        if key in parts:
            raise _impossible(f"{key} given twice")
        parts[key] = value
    if parts.get("FREQ") not in _FREQS:
        raise _impossible("FREQ must be one of " + ", ".join(_FREQS))
    if "COUNT" in parts and "UNTIL" in parts:
        raise _impossible("COUNT and UNTIL together")
    for key, (low, high, signed) in _RANGES.items():
        for raw in parts.get(key, "").split(",") if key in parts else ():
            if not re.fullmatch(r"[+-]?\d{1,3}", raw):
                raise _impossible(f"{key}={raw[:10]}")
            number = int(raw)
            if not (low <= abs(number) <= high) or (number < 0 and not signed):
                raise _impossible(f"{key}={raw} is out of range")
    for raw in parts.get("BYDAY", "").split(",") if "BYDAY" in parts else ():
        match = _BYDAY.match(raw)
        if match is None or (match.group(1) is not None and not 1 <= abs(int(match.group(1))) <= 53):
            raise _impossible(f"BYDAY={raw[:10]}")
    for key in ("INTERVAL", "COUNT"):
        if key in parts and (not parts[key].isdigit() or int(parts[key]) < 1):
            raise _impossible(f"{key}={parts[key][:10]} must be a positive number")
    if int(parts.get("COUNT", "1")) > MAX_COUNT:
        raise _impossible(f"COUNT above {MAX_COUNT}")
    return parts


def _parse_until(value: str, tz: ZoneInfo) -> datetime:
    """UNTIL as RFC 5545 writes it (UTC 'Z', floating local, or a DATE) -> aware local."""
    try:
        if value.endswith("Z"):
            return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).astimezone(tz)
        if "T" in value:
            return datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=tz)
        return datetime.combine(datetime.strptime(value, "%Y%m%d").date(), time(23, 59, 59), tz)
    except ValueError as exc:
        raise _impossible(f"UNTIL={value[:20]}") from exc


def _static_checks(parts: dict[str, str]) -> None:
    """Impossibilities visible without iterating (dateutil would search until year 9999)."""
    if "BYMONTHDAY" in parts:
        days = [int(d) for d in parts["BYMONTHDAY"].split(",")]
        months = [int(m) for m in parts["BYMONTH"].split(",")] if "BYMONTH" in parts else range(1, 13)
        longest = max(calendar.monthrange(2024, m)[1] for m in months)  # 2024: February has 29
        if all(abs(d) > longest for d in days):
            raise _impossible("no such day in the given month(s), e.g. 31 February")
    freq = parts["FREQ"]
    filtered = any(key in parts for key in _DAY_FILTERS if not (freq == "WEEKLY" and key == "BYDAY"))
    if freq in ("DAILY", "HOURLY", "WEEKLY") and int(parts.get("INTERVAL", "1")) > 1 and filtered:
        raise ReminderError("unsupported_recurrence", detail=f"INTERVAL with day filters on a {freq} rule")


def _day_filter_exists(parts: dict[str, str], start: datetime) -> bool:
    """Does any day match the rule's day filters? Asked of an equivalent YEARLY rule, which
    dateutil walks year by year (fast) instead of day by day."""
    day_parts = {k: v for k, v in parts.items() if k in _DAY_FILTERS}
    if not day_parts:
        return True
    text = "FREQ=YEARLY;" + ";".join(f"{k}={v}" for k, v in day_parts.items())
    if parts["FREQ"] == "MONTHLY" and "BYDAY" in parts and "BYMONTH" not in parts:
        return True  # "1MO" read per month always exists; YEARLY would read it per year
    day_start = start.replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    return rrulestr(text, dtstart=day_start).after(day_start, inc=True) is not None


class Schedule(BaseModel):
    """A validated schedule: `rrule` normalised (COUNT/UNTIL merged, UNTIL in UTC) or None."""

    first_at: datetime  # aware, in tz
    rrule: str | None
    tz: str


def build_rule(first_at_local: datetime, rule_text: str) -> rrule:
    """The dateutil rule over naive local wall times (the recurrence is in wall time)."""
    parts = parse_rrule_parts(rule_text)
    tz = first_at_local.tzinfo
    assert isinstance(tz, ZoneInfo)
    until = parts.pop("UNTIL", None)
    text = ";".join(f"{k}={v}" for k, v in parts.items())
    try:
        rule = rrulestr(text, dtstart=first_at_local.replace(tzinfo=None))
    except (ValueError, TypeError) as exc:
        raise _impossible(str(exc)[:80]) from exc
    if until is not None:
        rule = rule.replace(until=_parse_until(until, tz).replace(tzinfo=None))
    assert isinstance(rule, rrule)
    return rule


def validate(spec: ReminderSpec, now: datetime, *, grace: timedelta = DEFAULT_GRACE) -> Schedule:
    """Check the spec against `now` (aware); raise ReminderError or return the normalised schedule."""
    tz = spec.zone
    first = spec.local_first_at().replace(microsecond=0)  # dateutil drops them from DTSTART
    if first < now - grace:
        raise ReminderError("time_in_past", time=first.strftime("%Y-%m-%d %H:%M"))
    if spec.rrule is None:
        if spec.count not in (None, 1) or spec.until is not None:
            raise ReminderError("invalid_field", field="count/until", detail="needs an rrule")
        return Schedule(first_at=first, rrule=None, tz=spec.tz)
    parts = parse_rrule_parts(spec.rrule)
    if spec.count is not None:
        if "COUNT" in parts or "UNTIL" in parts:
            raise _impossible("count given twice")
        parts["COUNT"] = str(spec.count)
    if spec.until is not None:
        if "COUNT" in parts or "UNTIL" in parts:
            raise _impossible("COUNT and UNTIL together")
        parts["UNTIL"] = localize(spec.until, tz).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    if "UNTIL" in parts:
        parts["UNTIL"] = _parse_until(parts["UNTIL"], tz).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        if _parse_until(parts["UNTIL"], tz) < first:
            raise _impossible("UNTIL is before the first time")
    if parts["FREQ"] in ("SECONDLY", "MINUTELY"):
        raise ReminderError("too_frequent", limit=MAX_PER_DAY)
    _static_checks(parts)
    if not _day_filter_exists(parts, first):
        raise _impossible("no date matches the rule")
    normalised = ";".join(f"{k}={v}" for k, v in parts.items())
    rule = build_rule(first, normalised)
    sample = list(islice(iter(rule), FREQ_CHECK_SAMPLE))
    if not sample:
        raise _impossible("the rule has no occurrence")
    if max(Counter(moment.date() for moment in sample).values()) > MAX_PER_DAY:
        raise ReminderError("too_frequent", limit=MAX_PER_DAY)
    return Schedule(first_at=first, rrule=normalised, tz=spec.tz)


def first_occurrence(schedule: Schedule) -> datetime:
    """The first firing time (aware, local): DTSTART itself when it matches the rule, else the
    first match after it (RFC 5545 counts DTSTART; dateutil yields only matches)."""
    tz = zone(schedule.tz)
    first = schedule.first_at.astimezone(tz).replace(microsecond=0)  # as dateutil reads DTSTART
    if schedule.rrule is None:
        return first
    nxt = build_rule(first, schedule.rrule).after(first.replace(tzinfo=None), inc=True)
    return nxt.replace(tzinfo=tz) if nxt is not None else first


def next_occurrence(schedule: Schedule, after: datetime) -> datetime | None:
    """The first occurrence strictly after `after` (aware), aware in the schedule's zone; None
    when the rule is finished (or for a one-off)."""
    if schedule.rrule is None:
        return None
    tz = zone(schedule.tz)
    rule = build_rule(schedule.first_at.astimezone(tz).replace(microsecond=0), schedule.rrule)
    nxt = rule.after(after.astimezone(tz).replace(tzinfo=None), inc=False)
    return None if nxt is None else nxt.replace(tzinfo=tz)


def occurrences(spec: ReminderSpec | Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Occurrences in [start, end] (aware), aware in the reminder's zone."""
    schedule = spec if isinstance(spec, Schedule) else _unchecked_schedule(spec)
    tz = zone(schedule.tz)
    first = schedule.first_at.astimezone(tz).replace(microsecond=0)
    if schedule.rrule is None:
        return [first] if start <= first <= end else []
    rule = build_rule(first, schedule.rrule)
    naive = rule.between(
        start.astimezone(tz).replace(tzinfo=None), end.astimezone(tz).replace(tzinfo=None), inc=True
    )
    return [moment.replace(tzinfo=tz) for moment in naive]


def _unchecked_schedule(spec: ReminderSpec) -> Schedule:
    """A schedule from a spec without the 'in the past' check (listing old reminders)."""
    return validate(spec, spec.local_first_at())


# ------------------------------------------------------------------------------ helpers

DEFAULT_DOSE_TIMES: dict[int, tuple[str, ...]] = {
    1: ("08:00",),
    2: ("08:00", "20:00"),
    3: ("08:00", "14:00", "20:00"),
    4: ("08:00", "12:00", "16:00", "20:00"),
}


def _parse_hhmm(text: str) -> time:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text.strip())
    if match is None:
        raise ReminderError("invalid_field", field="times", detail=f"{text[:10]!r} is not HH:MM")
    return time(int(match.group(1)), int(match.group(2)))


def medication_plan(
    patient_id: str,
    medicine: str,
    times_per_day: int,
    course_days: int,
    start_date: date,
    now: datetime,
    *,
    times: Sequence[str] | None = None,
    tz: str = DEFAULT_TZ,
) -> list[ReminderSpec]:
    """Dose reminders for a course: `times_per_day` doses a day for `course_days` days, i.e.
    times_per_day * course_days doses counted from the first dose time not yet past on
    start_date (a course started at 15:00 begins with the 20:00 dose and ends a little later).
    One spec when all dose times share the minute (BYHOUR=8,14,20;BYMINUTE=0), else one a time."""
    if not 1 <= times_per_day <= 8:
        raise ReminderError("invalid_field", field="times_per_day", detail="1-8")
    if not 1 <= course_days <= 365:
        raise ReminderError("invalid_field", field="course_days", detail="1-365")
    if times is None:
        if times_per_day not in DEFAULT_DOSE_TIMES:
            raise ReminderError("invalid_field", field="times", detail="give the dose times (HH:MM)")
        times = DEFAULT_DOSE_TIMES[times_per_day]
    slots = sorted({_parse_hhmm(t) for t in times})
    if len(slots) != times_per_day:
        raise ReminderError("invalid_field", field="times", detail=f"{times_per_day} different times needed")
    tzinfo = zone(tz)
    local_now = now.astimezone(tzinfo)
    day = max(start_date, local_now.date())
    candidates = [datetime.combine(day + timedelta(days=d), s, tzinfo) for d in (0, 1) for s in slots]
    first = next(c for c in candidates if c >= local_now - DEFAULT_GRACE)
    title_zh, title_en = f"该吃药了：{medicine}", f"Time for your medicine: {medicine}"
    common: dict[str, Any] = {
        "patient_id": patient_id, "kind": ReminderKind.medication, "title_zh": title_zh,
        "title_en": title_en, "tz": tz,
        "data": {"medicine": medicine, "times_per_day": times_per_day, "course_days": course_days},
    }  # fmt: skip
    total = times_per_day * course_days
    if len({s.minute for s in slots}) == 1:
        hours = ",".join(str(s.hour) for s in slots)
        rule = f"FREQ=DAILY;BYHOUR={hours};BYMINUTE={slots[0].minute};BYSECOND=0"
        return [ReminderSpec(first_at=first, rrule=rule, count=total, **common)]
    specs = []
    for slot in slots:
        start = datetime.combine(first.date(), slot, tzinfo)
        if start < first:
            start += timedelta(days=1)
        specs.append(ReminderSpec(first_at=start, rrule="FREQ=DAILY", count=course_days, **common))
    return specs


def exam_prep_for(
    patient_id: str,
    exam_at: datetime,
    exam_name_zh: str,
    exam_name_en: str,
    now: datetime,
    *,
    fasting: bool = True,
    tz: str = DEFAULT_TZ,
) -> ReminderSpec:
    """The evening before at 20:00 ("22:00 后禁食"); when that is already past but the exam is not,
    right away (a minute from now)."""
    tzinfo = zone(tz)
    local = localize(exam_at, tzinfo)
    if local <= now:
        raise ReminderError("time_in_past", time=local.strftime("%Y-%m-%d %H:%M"))
    evening = datetime.combine(local.date() - timedelta(days=1), time(20, 0), tzinfo)
    when = max(evening, now.astimezone(tzinfo) + timedelta(minutes=1))
    at = local.strftime("%m-%d %H:%M")
    zh = f"明天{local:%H:%M}做{exam_name_zh}。" if when.date() < local.date() else f"{at} 做{exam_name_zh}。"
    en = f"{exam_name_en} at {at}."
    if fasting:
        zh += "今晚22:00后禁食，可少量饮水。"
        en += " No food after 22:00 tonight; small sips of water are fine."
    return ReminderSpec(
        patient_id=patient_id, kind=ReminderKind.exam_prep, title_zh=zh, title_en=en,
        first_at=when, tz=tz, data={"exam_at": local.isoformat(), "fasting": fasting},
    )  # fmt: skip


def revisit_for(
    patient_id: str,
    appointment_at: datetime,
    now: datetime,
    *,
    place_zh: str = "",
    place_en: str = "",
    tz: str = DEFAULT_TZ,
) -> list[ReminderSpec]:
    """复诊: 20:00 the day before and 2 h before; the ones already past are left out."""
    tzinfo = zone(tz)
    local = localize(appointment_at, tzinfo)
    if local <= now:
        raise ReminderError("time_in_past", time=local.strftime("%Y-%m-%d %H:%M"))
    at = local.strftime("%m-%d %H:%M")
    where_zh, where_en = (f"（{place_zh}）" if place_zh else ""), (f" ({place_en})" if place_en else "")
    moments = [
        datetime.combine(local.date() - timedelta(days=1), time(20, 0), tzinfo),
        local - timedelta(hours=2),
    ]
    return [
        ReminderSpec(
            patient_id=patient_id,
            kind=ReminderKind.revisit,
            title_zh=f"复诊提醒：{at}{where_zh}，请带上病历和检查结果。",
            title_en=f"Follow-up visit at {at}{where_en}; bring your records and test results.",
            first_at=moment,
            tz=tz,
            data={"appointment_at": local.isoformat()},
        )  # fmt: skip
        for moment in moments
        if moment >= now
    ]


# ------------------------------------------------------------------------------ iCalendar


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _fold(line: str) -> Iterator[str]:
    """RFC 5545 3.1: lines of at most 75 octets, continued with a leading space."""
    encoded = line.encode("utf-8")
    limit = 75
    while len(encoded) > limit:
        cut = limit
        while cut > 0 and (encoded[cut] & 0xC0) == 0x80:  # never split a UTF-8 character
            cut -= 1
        yield encoded[:cut].decode("utf-8")
        encoded = b" " + encoded[cut:]
        limit = 75
    yield encoded.decode("utf-8")


def _vtimezone(tz: ZoneInfo, around: datetime) -> list[str]:
    """A VTIMEZONE with the offset in force (right for zones without DST such as Asia/Shanghai;
    calendar apps resolve the Olson TZID themselves for the others)."""
    offset = around.astimezone(tz).utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    text = f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    name = around.astimezone(tz).tzname() or text
    return [
        "BEGIN:VTIMEZONE", f"TZID:{tz.key}", "BEGIN:STANDARD", "DTSTART:19700101T000000",
        f"TZOFFSETFROM:{text}", f"TZOFFSETTO:{text}", f"TZNAME:{name}", "END:STANDARD", "END:VTIMEZONE",
    ]  # fmt: skip


def stable_uid(reminder_id: str, domain: str = "daozhen.local") -> str:
    digest = hashlib.sha256(reminder_id.encode("utf-8")).hexdigest()[:24]
    return f"{digest}@{domain}"


def to_ical(
    reminders: Sequence[tuple[str, ReminderSpec | Schedule, str, str | None]],
    *,
    tz: str = DEFAULT_TZ,
    stamp: datetime,
    duration_min: int = 15,
) -> str:
    """RFC 5545 text. reminders: (reminder_id, schedule or spec, summary, description). Each is a
    VEVENT (UID stable per reminder_id, DTSTART;TZID in the reminder's own zone so its RRULE keeps
    its wall-clock meaning, RRULE) with a VALARM at its start; one VTIMEZONE per zone used (`tz`
    when there is none)."""
    schedules = [
        (rid, item if isinstance(item, Schedule) else _unchecked_schedule(item), summary, description)
        for rid, item, summary, description in reminders
    ]
    zones = sorted({schedule.tz for _, schedule, _, _ in schedules} or {tz})
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Daozhen//Reminders//ZH", "CALSCALE:GREGORIAN"]
    for name in zones:
        lines += _vtimezone(zone(name), stamp)
    dtstamp = stamp.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    for reminder_id, schedule, summary, description in schedules:
        start = first_occurrence(schedule)
        end = start + timedelta(minutes=duration_min)
        lines += [
            "BEGIN:VEVENT",
            f"UID:{stable_uid(reminder_id)}",
            f"DTSTAMP:{dtstamp}",
            f"DTSTART;TZID={schedule.tz}:{start:%Y%m%dT%H%M%S}",
            f"DTEND;TZID={schedule.tz}:{end:%Y%m%dT%H%M%S}",
            f"SUMMARY:{_escape(summary)}",
        ]
        if description:
            lines.append(f"DESCRIPTION:{_escape(description)}")
        if schedule.rrule:
            lines.append(f"RRULE:{schedule.rrule}")
        lines += [
            "BEGIN:VALARM", "ACTION:DISPLAY", f"DESCRIPTION:{_escape(summary)}",
            "TRIGGER:-PT0M", "END:VALARM", "END:VEVENT",
        ]  # fmt: skip
    lines.append("END:VCALENDAR")
    return "".join(f"{folded}\r\n" for line in lines for folded in _fold(line))
