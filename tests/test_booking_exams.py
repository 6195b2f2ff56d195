"""Exam planning: preparation order, trips, session hours, capacity and the 24-hour target."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from tools.booking.catalogue import load_directory, session_window
from tools.booking.errors import BookingDataError
from tools.booking.exams import BLADDER_FILL, ExamPlan, plan_exams

TZ = ZoneInfo("Asia/Shanghai")
MON_0700 = datetime(2026, 11, 23, 7, 0, tzinfo=TZ)
MON_1030 = datetime(2026, 11, 23, 10, 30, tzinfo=TZ)  # too late for fasting exams today
MON_1400 = datetime(2026, 11, 23, 14, 0, tzinfo=TZ)
MON_1650 = datetime(2026, 11, 23, 16, 50, tzinfo=TZ)
ALL = [
    "ct",
    "ecg",
    "urine_routine",
    "ultrasound_pelvis",
    "blood_routine",
    "ultrasound_abdomen",
    "blood_biochem",
]


@pytest.fixture(scope="module")
def hospital():
    return load_directory().get("demo-general-hospital")


def order(plan: ExamPlan, trip: int = 0) -> list[str]:
    return [e.exam_id for e in plan.trips[trip].exams]


def assert_within_sessions(plan: ExamPlan, clinic) -> None:
    for trip in plan.trips:
        begin, end = session_window(clinic, trip.date, trip.half_day)
        for exam in trip.exams:
            assert begin <= exam.start < exam.end <= end
            service = next(e for e in clinic.exams if e.id == exam.exam_id)
            assert trip.half_day in service.open_half_days
        starts = [e.start for e in trip.exams]
        assert starts == sorted(starts)
        assert all(a.end <= b.start for a, b in zip(trip.exams, trip.exams[1:], strict=False))
        assert trip.arrive_by < trip.exams[0].start


def test_everything_in_one_morning_in_preparation_order(hospital) -> None:
    plan = plan_exams(hospital, ALL, MON_0700)
    assert plan.total_trips == 1 and len(plan.trips) == 1
    trip = plan.trips[0]
    assert (trip.date, trip.half_day) == (date(2026, 11, 23), "am")
    assert order(plan) == [
        "blood_biochem",  # fasting, first thing
        "blood_routine",  # same blood draw
        "ultrasound_abdomen",  # fasting
        "ultrasound_pelvis",  # full bladder: after the fasting exams
        "urine_routine",  # right after the full-bladder scan
        "ecg",
        "ct",  # remove metal, last
    ]
    exams = {e.exam_id: e for e in trip.exams}
    assert exams["blood_biochem"].start.time() == time(8, 0)
    assert exams["ultrasound_abdomen"].start.time() <= time(10, 0)
    assert exams["ultrasound_pelvis"].start >= exams["ultrasound_abdomen"].end + BLADDER_FILL
    assert plan.within_24h
    assert trip.arrive_by == datetime(2026, 11, 23, 7, 45, tzinfo=TZ)
    assert trip.preparation_ids == ["fasting_8h", "full_bladder", "remove_metal"]
    assert any("憋尿" in i and "空腹" in i for i in trip.instructions)  # drink only after fasting exams
    assert_within_sessions(plan, hospital)


def test_reports_and_follow_up(hospital) -> None:
    plan = plan_exams(hospital, ["blood_biochem", "ct"], MON_0700)
    exams = {e.exam_id: e for e in plan.trips[0].exams}
    assert plan.report_ready_at["blood_biochem"] == exams["blood_biochem"].end + timedelta(hours=4)
    assert plan.report_ready_at["ct"] == exams["ct"].end + timedelta(hours=4)
    assert plan.follow_up_after == max(plan.report_ready_at.values())
    assert plan.follow_up_before == plan.follow_up_after + timedelta(days=7)
    # reports ready around 12:30 -> see the ordering doctor that afternoon (预就诊)
    assert (plan.follow_up_date, plan.follow_up_half_day) == (date(2026, 11, 23), "pm")


def test_mri_report_takes_a_day(hospital) -> None:
    plan = plan_exams(hospital, ["mri"], MON_0700)
    mri = plan.trips[0].exams[0]
    assert plan.follow_up_after == mri.end + timedelta(hours=24)
    assert (plan.follow_up_date, plan.follow_up_half_day) == (date(2026, 11, 24), "am")


def test_fasting_exams_move_to_the_next_morning_after_ten(hospital) -> None:
    plan = plan_exams(hospital, ["blood_biochem"], MON_1030)
    assert (plan.trips[0].date, plan.trips[0].half_day) == (date(2026, 11, 24), "am")
    assert plan.within_24h  # Tuesday 08:05 is within 24 h of Monday 10:30
    same_day = plan_exams(hospital, ["ecg", "ct"], MON_1030)  # no preparation conflict: still today
    assert (same_day.trips[0].date, same_day.trips[0].half_day) == (date(2026, 11, 23), "am")
    assert same_day.trips[0].exams[0].start == datetime(2026, 11, 23, 11, 0, tzinfo=TZ)  # 30 min to get there


def test_fewest_trips_beats_the_earliest_first_exam(hospital) -> None:
    # Greedy would do the CT this afternoon and the fasting blood tomorrow (2 trips); one trip is better.
    plan = plan_exams(hospital, ["ct", "blood_biochem"], MON_1400)
    assert plan.total_trips == 1
    assert (plan.trips[0].date, plan.trips[0].half_day) == (date(2026, 11, 24), "am")
    assert order(plan) == ["blood_biochem", "ct"]
    assert plan.within_24h


def test_afternoon_exams_today_when_nothing_needs_fasting(hospital) -> None:
    plan = plan_exams(hospital, ["ecg", "ct", "ultrasound_pelvis"], MON_1400)
    assert plan.total_trips == 1
    assert (plan.trips[0].date, plan.trips[0].half_day) == (date(2026, 11, 23), "pm")
    assert_within_sessions(plan, hospital)


def test_late_in_the_day_goes_to_tomorrow(hospital) -> None:
    plan = plan_exams(hospital, ["mri"], MON_1650)  # 40 minutes no longer fit before 17:00
    assert (plan.trips[0].date, plan.trips[0].half_day) == (date(2026, 11, 24), "am")


def test_a_full_session_moves_the_exam_to_the_next_one(hospital) -> None:
    def ct_full_on_monday(exam_id: str, day: date, half_day: str) -> int:
        return 0 if exam_id == "ct" and day == date(2026, 11, 23) else 10

    plan = plan_exams(hospital, ["ct"], MON_0700, capacity=ct_full_on_monday)
    assert (plan.trips[0].date, plan.trips[0].half_day) == (date(2026, 11, 24), "am")
    assert not plan.within_24h  # Tuesday 08:15 is more than 24 h after Monday 07:00


def test_exams_that_cannot_share_a_session_make_two_trips(hospital) -> None:
    def mri_only_in_afternoons(exam_id: str, day: date, half_day: str) -> int:
        return 0 if exam_id == "mri" and half_day == "am" else 5

    plan = plan_exams(hospital, ["mri", "blood_biochem"], MON_0700, capacity=mri_only_in_afternoons)
    assert plan.total_trips == 2
    assert [(t.date, t.half_day, order(plan, i)) for i, t in enumerate(plan.trips)] == [
        (date(2026, 11, 23), "am", ["blood_biochem"]),
        (date(2026, 11, 23), "pm", ["mri"]),
    ]
    assert plan.within_24h
    assert plan.trips[1].preparation_ids == ["remove_metal"]


def test_no_capacity_anywhere_is_a_clear_error(hospital) -> None:
    with pytest.raises(BookingDataError) as excinfo:
        plan_exams(hospital, ["mri"], MON_0700, capacity=lambda *_: 0)
    assert excinfo.value.code == "no_exam_session" and "mri" in excinfo.value.en


def test_unknown_and_missing_exams(hospital) -> None:
    with pytest.raises(BookingDataError) as excinfo:
        plan_exams(hospital, ["ct", "x_ray_of_the_soul"], MON_0700)
    assert excinfo.value.code == "unknown_exam" and "x_ray_of_the_soul" in excinfo.value.zh
    with pytest.raises(BookingDataError) as excinfo:
        plan_exams(hospital, [], MON_0700)
    assert excinfo.value.code == "no_exams"
    lingxia = load_directory().get("demo-chc-lingxia")
    with pytest.raises(BookingDataError) as excinfo:
        plan_exams(lingxia, ["ct"], MON_0700)  # a township health centre has no CT
    assert excinfo.value.code == "unknown_exam"


def test_duplicates_are_planned_once_and_english_texts(hospital) -> None:
    plan = plan_exams(hospital, ["ecg", "ecg", "blood_biochem"], MON_0700, "en")
    assert order(plan) == ["blood_biochem", "ecg"]
    assert plan.trips[0].exams[0].name.startswith("Fasting blood chemistry")
    assert any("Fast for at least 8 hours" in i for i in plan.trips[0].instructions)
    assert all(i.isascii() for i in plan.trips[0].instructions)


def test_community_centre_uses_its_own_hours(hospital) -> None:
    east = load_directory().get("demo-chc-east")
    plan = plan_exams(east, ["ultrasound_abdomen", "ecg"], MON_1400)
    assert (plan.trips[0].date, plan.trips[0].half_day) == (date(2026, 11, 24), "am")
    assert_within_sessions(plan, east)
    assert plan.report_ready_at["ecg"] - plan.trips[0].exams[-1].end == timedelta(minutes=30)


def test_request_order_does_not_change_the_plan(hospital) -> None:
    forward = plan_exams(hospital, ALL, MON_1400)
    backward = plan_exams(hospital, list(reversed(ALL)), MON_1400)
    assert forward == backward
    assert forward.total_trips == 1 and forward.trips[0].date == date(2026, 11, 24)
