"""tools/reminders.py: validation of reminder times and RRULEs, the planning helpers and the
iCalendar export (parsed back with the icalendar package)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
from pydantic import ValidationError

from tools.reminders import (
    MAX_PER_DAY,
    ReminderError,
    ReminderKind,
    ReminderSpec,
    exam_prep_for,
    first_occurrence,
    medication_plan,
    next_occurrence,
    occurrences,
    revisit_for,
    stable_uid,
    to_ical,
    validate,
)

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai


def spec(**changes: object) -> ReminderSpec:
    base: dict[str, object] = {
        "patient_id": "p1",
        "kind": ReminderKind.medication,
        "title_zh": "吃药",
        "first_at": datetime(2026, 11, 24, 9, 0),  # naive: Shanghai local
    }
    base.update(changes)
    return ReminderSpec.model_validate(base)


def code_of(item: ReminderSpec, now: datetime = NOW) -> str:
    with pytest.raises(ReminderError) as caught:
        validate(item, now)
    return caught.value.code


def test_naive_time_is_local_and_daily_rule_stays_at_local_wall_time() -> None:
    schedule = validate(spec(rrule="FREQ=DAILY;BYHOUR=9,21;BYMINUTE=0", count=4), NOW)
    assert schedule.first_at == datetime(2026, 11, 24, 9, 0, tzinfo=SH)
    assert schedule.rrule == "FREQ=DAILY;BYHOUR=9,21;BYMINUTE=0;COUNT=4"
    got = occurrences(schedule, NOW, NOW + timedelta(days=10))
    assert [(m.day, m.hour) for m in got] == [(24, 9), (24, 21), (25, 9), (25, 21)]
    assert all(m.utcoffset() == timedelta(hours=8) for m in got)
    assert next_occurrence(schedule, got[-1]) is None  # the course is over


def test_first_time_with_microseconds_is_still_the_first_occurrence() -> None:
    at = datetime(2026, 11, 24, 1, 0, 0, 123456, tzinfo=UTC)
    schedule = validate(spec(first_at=at, rrule="FREQ=HOURLY", count=3), NOW)
    first = first_occurrence(schedule)
    assert first == at.replace(microsecond=0)
    assert next_occurrence(schedule, first) == first + timedelta(hours=1)


def test_configurable_time_zone() -> None:
    schedule = validate(spec(tz="Europe/Berlin", first_at=datetime(2026, 11, 24, 9, 0)), NOW)
    assert schedule.first_at.utcoffset() == timedelta(hours=1)
    with pytest.raises(ValidationError):
        spec(tz="Mars/Olympus")


def test_time_in_past_beyond_grace_is_refused_with_both_languages() -> None:
    past = spec(first_at=datetime(2026, 11, 24, 7, 0))  # an hour before now (local)
    with pytest.raises(ReminderError) as caught:
        validate(past, NOW)
    assert caught.value.code == "time_in_past"
    assert "已经过去" in caught.value.message("zh") and "in the past" in caught.value.message("en")
    # 30 s late is within the grace (a form submitted at 08:00:30 for "08:00")
    assert validate(spec(first_at=datetime(2026, 11, 24, 7, 59, 30)), NOW)


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=31",  # 31 February
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",  # dateutil would search for seconds
        "FREQ=MONTHLY;BYMONTH=4,6;BYMONTHDAY=31",
        "FREQ=DAILY;UNTIL=20250101T000000Z",  # UNTIL before DTSTART
        "FREQ=YEARLY;BYYEARDAY=1;BYMONTH=2",  # day 1 of the year is never in February
        "FREQ=DAILY;COUNT=0",
        "FREQ=WEEKLY;BYDAY=XX",
        "FREQ=FORTNIGHTLY",
        "not a rule",
        "FREQ=DAILY;BYHOUR=25",
        "FREQ=DAILY;COUNT=3;UNTIL=20270101T000000Z",
        "",
    ],
)
def test_impossible_recurrence(rule: str) -> None:
    started = time.perf_counter()
    assert code_of(spec(rrule=rule)) == "impossible_recurrence"
    assert time.perf_counter() - started < 2.0  # refused quickly, not after a search to year 9999


def test_until_field_before_first_time_is_impossible() -> None:
    item = spec(rrule="FREQ=DAILY", until=datetime(2026, 11, 23, 9, 0))
    assert code_of(item) == "impossible_recurrence"


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=MINUTELY",
        "FREQ=SECONDLY;COUNT=5",
        "FREQ=DAILY;BYHOUR=" + ",".join(map(str, range(24))) + ";BYMINUTE=0,30",
    ],
)
def test_too_frequent(rule: str) -> None:
    assert code_of(spec(rrule=rule)) == "too_frequent"


def test_hourly_is_the_most_frequent_allowed() -> None:
    schedule = validate(spec(rrule="FREQ=HOURLY"), NOW)
    start = schedule.first_at
    day = occurrences(schedule, start, start + timedelta(days=1) - timedelta(seconds=1))
    assert len(day) == MAX_PER_DAY


def test_interval_with_day_filter_on_daily_rule_is_unsupported() -> None:
    assert code_of(spec(rrule="FREQ=DAILY;INTERVAL=7;BYDAY=MO")) == "unsupported_recurrence"


def test_quarterly_visit_and_weekly_blood_pressure_check() -> None:
    quarterly = validate(spec(kind="chronic_check", rrule="FREQ=MONTHLY;INTERVAL=3", count=4), NOW)
    got = occurrences(quarterly, NOW, NOW + timedelta(days=400))
    assert [(m.year, m.month, m.day) for m in got] == [
        (2026, 11, 24),
        (2027, 2, 24),
        (2027, 5, 24),
        (2027, 8, 24),
    ]
    weekly = validate(spec(kind="chronic_check", rrule="FREQ=WEEKLY;BYDAY=MO,TH"), NOW)
    week = occurrences(weekly, NOW, NOW + timedelta(days=7))
    assert [m.strftime("%a") for m in week] == ["Thu", "Mon"]


def test_first_occurrence_is_the_first_match_when_dtstart_does_not_match() -> None:
    schedule = validate(spec(rrule="FREQ=WEEKLY;BYDAY=FR;BYHOUR=9;BYMINUTE=0"), NOW)  # the 24th is a Tuesday
    assert first_occurrence(schedule) == datetime(2026, 11, 27, 9, 0, tzinfo=SH)


def test_count_without_rule_is_invalid() -> None:
    assert code_of(spec(count=3)) == "invalid_field"


def test_title_required() -> None:
    with pytest.raises(ValidationError):
        spec(title_zh=None)


def test_medication_plan_three_times_a_day_for_a_week_started_mid_afternoon() -> None:
    now = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)  # 15:00 local: the 08:00 and 14:00 doses are past
    (plan,) = medication_plan("p1", "阿莫西林", 3, 7, date(2026, 11, 24), now)
    schedule = validate(plan, now)
    doses = occurrences(schedule, now, now + timedelta(days=30))
    assert len(doses) == 21
    assert doses[0] == datetime(2026, 11, 24, 20, 0, tzinfo=SH)
    assert {d.hour for d in doses} == {8, 14, 20}
    assert "阿莫西林" in (plan.title_zh or "")


def test_medication_plan_with_uneven_minutes_makes_one_rule_per_time() -> None:
    plans = medication_plan("p1", "药", 2, 5, date(2026, 11, 25), NOW, times=["07:30", "19:00"])
    assert len(plans) == 2
    doses = sorted(d for p in plans for d in occurrences(validate(p, NOW), NOW, NOW + timedelta(days=30)))
    assert len(doses) == 10 and (doses[0].hour, doses[0].minute) == (7, 30)


@pytest.mark.parametrize(
    ("times_per_day", "course_days", "times"), [(0, 5, None), (3, 0, None), (6, 5, None), (2, 5, ["08:00"])]
)
def test_medication_plan_bad_input(times_per_day: int, course_days: int, times: list[str] | None) -> None:
    with pytest.raises(ReminderError) as caught:
        medication_plan("p1", "药", times_per_day, course_days, date(2026, 11, 25), NOW, times=times)
    assert caught.value.code == "invalid_field"


def test_exam_prep_the_evening_before_says_fasting_after_22() -> None:
    item = exam_prep_for("p1", datetime(2026, 11, 26, 8, 0), "空腹血生化", "Fasting blood test", NOW)
    assert item.local_first_at() == datetime(2026, 11, 25, 20, 0, tzinfo=SH)
    assert "22:00后禁食" in (item.title_zh or "") and "22:00" in (item.title_en or "")
    late_evening = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # 22:00 local, exam next morning
    soon = exam_prep_for("p1", datetime(2026, 11, 26, 8, 0), "空腹血生化", "Fasting blood test", late_evening)
    assert soon.local_first_at() == datetime(2026, 11, 25, 22, 1, tzinfo=SH)


def test_revisit_day_before_and_two_hours_before_past_ones_left_out() -> None:
    both = revisit_for("p1", datetime(2026, 11, 26, 9, 0), NOW)
    assert [s.local_first_at() for s in both] == [
        datetime(2026, 11, 25, 20, 0, tzinfo=SH),
        datetime(2026, 11, 26, 7, 0, tzinfo=SH),
    ]
    evening = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)  # 21:00 local the day before
    assert len(revisit_for("p1", datetime(2026, 11, 26, 9, 0), evening)) == 1
    with pytest.raises(ReminderError):
        revisit_for("p1", datetime(2026, 11, 23, 9, 0), NOW)


def test_ical_export_parses_with_tzid_rrule_alarm_and_stable_uid() -> None:
    meds = validate(spec(rrule="FREQ=DAILY;BYHOUR=9,21;BYMINUTE=0", count=4), NOW)
    visit = validate(spec(kind="revisit", first_at=datetime(2026, 11, 30, 9, 0)), NOW)
    long_title = "复诊提醒：请带上病历、检查结果和正在服用的药物清单；如有不适请提前就诊" * 2
    text = to_ical(
        [("r-1", meds, "吃药, take medicine; now", None), ("r-2", visit, long_title, "备注")], stamp=NOW
    )
    assert all(len(line.encode("utf-8")) <= 75 for line in text.split("\r\n"))
    calendar = icalendar.Calendar.from_ical(text)
    events = calendar.walk("VEVENT")
    assert [str(e["UID"]) for e in events] == [stable_uid("r-1"), stable_uid("r-2")]
    assert stable_uid("r-1") == stable_uid("r-1") != stable_uid("r-2")
    first = events[0]
    assert first.decoded("DTSTART") == datetime(2026, 11, 24, 9, 0, tzinfo=SH)
    assert first["DTSTART"].params["TZID"] == "Asia/Shanghai"
    assert str(first["SUMMARY"]) == "吃药, take medicine; now"
    assert first["RRULE"]["COUNT"] == [4] and first["RRULE"]["BYHOUR"] == [9, 21]
    assert first.walk("VALARM")[0]["ACTION"] == "DISPLAY"
    assert str(events[1]["SUMMARY"]) == long_title  # folded lines come back whole
    assert calendar.walk("VTIMEZONE")[0]["TZID"] == "Asia/Shanghai"


def test_ical_keeps_each_reminders_own_zone() -> None:
    berlin = validate(spec(tz="Europe/Berlin", rrule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0", count=2), NOW)
    shanghai = validate(spec(), NOW)
    calendar = icalendar.Calendar.from_ical(
        to_ical([("b", berlin, "B", None), ("s", shanghai, "S", None)], stamp=NOW)
    )
    assert sorted(str(z["TZID"]) for z in calendar.walk("VTIMEZONE")) == ["Asia/Shanghai", "Europe/Berlin"]
    first, second = calendar.walk("VEVENT")
    assert first["DTSTART"].params["TZID"] == "Europe/Berlin" and first.decoded("DTSTART").hour == 9
    assert second["DTSTART"].params["TZID"] == "Asia/Shanghai"
