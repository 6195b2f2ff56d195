"""Date/time phrases of booking requests, resolved against fixed `now` values (never the clock)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from tools.booking.dates import WhenSpec, find_when, parse_when
from tools.booking.errors import DateParseError
from tools.booking.models import SessionTimes

TZ = ZoneInfo("Asia/Shanghai")
MON = datetime(2026, 11, 23, 9, 30, tzinfo=TZ)  # Monday morning
WED_0900 = datetime(2026, 11, 25, 9, 0, tzinfo=TZ)
WED_1300 = datetime(2026, 11, 25, 13, 0, tzinfo=TZ)  # the morning session is over
WED_1800 = datetime(2026, 11, 25, 18, 0, tzinfo=TZ)  # the day is over


def when(d: date | None = None, half: str | None = None, t: time | None = None) -> tuple:
    return (d, half, t)


def as_tuple(spec: WhenSpec | None) -> tuple | None:
    return None if spec is None else (spec.date, spec.half_day, spec.time)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("今天", when(date(2026, 11, 23))),
        ("明天", when(date(2026, 11, 24))),
        ("明天上午", when(date(2026, 11, 24), "am")),
        ("明早", when(date(2026, 11, 24), "am")),
        ("后天下午", when(date(2026, 11, 25), "pm")),
        ("大后天", when(date(2026, 11, 26))),
        ("周三", when(date(2026, 11, 25))),
        ("星期三", when(date(2026, 11, 25))),
        ("礼拜三", when(date(2026, 11, 25))),
        ("这周三", when(date(2026, 11, 25))),
        ("本周五下午", when(date(2026, 11, 27), "pm")),
        ("下周三", when(date(2026, 12, 2))),
        ("下个星期一上午", when(date(2026, 11, 30), "am")),
        ("下下周五", when(date(2026, 12, 11))),
        ("周日", when(date(2026, 11, 29))),
        ("星期天", when(date(2026, 11, 29))),
        ("周末", when(date(2026, 11, 28))),
        ("11月28日", when(date(2026, 11, 28))),
        ("11月28号", when(date(2026, 11, 28))),
        ("十一月二十八日", when(date(2026, 11, 28))),
        ("12月1号上午", when(date(2026, 12, 1), "am")),
        ("1月5日", when(date(2027, 1, 5))),  # said in November: next January
        ("2026年12月3日", when(date(2026, 12, 3))),
        ("28号", when(date(2026, 11, 28))),
        ("二十八号", when(date(2026, 11, 28))),
        ("5号", when(date(2026, 12, 5))),  # the 5th already passed long ago this month
        ("下个月3号", when(date(2026, 12, 3))),
        ("2026-11-25", when(date(2026, 11, 25))),
        ("11/25", when(date(2026, 11, 25))),
        ("明天8:30", when(date(2026, 11, 24), "am", time(8, 30))),
        ("明天8点半", when(date(2026, 11, 24), "am", time(8, 30))),
        ("明天下午3点", when(date(2026, 11, 24), "pm", time(15, 0))),
        ("明天3点", when(date(2026, 11, 24), "pm", time(15, 0))),  # 3 o'clock at a clinic is 15:00
        ("下周一上午十点一刻", when(date(2026, 11, 30), "am", time(10, 15))),
        ("下午", when(None, "pm")),
        ("8点半", when(None, "am", time(8, 30))),
        ("today", when(date(2026, 11, 23))),
        ("tomorrow morning", when(date(2026, 11, 24), "am")),
        ("tomorrow afternoon", when(date(2026, 11, 24), "pm")),
        ("day after tomorrow", when(date(2026, 11, 25))),
        ("Wednesday", when(date(2026, 11, 25))),
        ("this Wednesday", when(date(2026, 11, 25))),
        ("next Monday", when(date(2026, 11, 30))),
        ("next wed", when(date(2026, 12, 2))),
        ("on Friday afternoon", when(date(2026, 11, 27), "pm")),
        ("25 Nov", when(date(2026, 11, 25))),
        ("Nov 25", when(date(2026, 11, 25))),
        ("November 28th", when(date(2026, 11, 28))),
        ("the 28th", when(date(2026, 11, 28))),
        ("tomorrow at 3pm", when(date(2026, 11, 24), "pm", time(15, 0))),
        ("tomorrow 9:15 am", when(date(2026, 11, 24), "am", time(9, 15))),
        ("２０２６－１１－２６", when(date(2026, 11, 26))),  # full-width digits
    ],
)
def test_parse_when_on_a_monday_morning(text: str, expected: tuple) -> None:
    assert as_tuple(parse_when(text, MON)) == expected


def test_today_is_today_while_it_is_open_else_next_week() -> None:
    assert as_tuple(parse_when("周三", WED_0900)) == when(date(2026, 11, 25))
    assert as_tuple(parse_when("周三上午", WED_0900)) == when(date(2026, 11, 25), "am")
    assert as_tuple(parse_when("周三上午", WED_1300)) == when(date(2026, 12, 2), "am")  # morning over
    assert as_tuple(parse_when("周三下午", WED_1300)) == when(date(2026, 11, 25), "pm")
    assert as_tuple(parse_when("周三", WED_1800)) == when(date(2026, 12, 2))
    assert as_tuple(parse_when("Wednesday", WED_1800)) == when(date(2026, 12, 2))
    # 下周三 on a Wednesday is always a week later; 这周三 is today
    assert as_tuple(parse_when("下周三", WED_0900)) == when(date(2026, 12, 2))
    assert as_tuple(parse_when("这周三", WED_0900)) == when(date(2026, 11, 25))


def test_session_times_of_the_clinic_decide_what_is_still_open() -> None:
    late_am = SessionTimes(am_end="11:30")
    at_1145 = datetime(2026, 11, 25, 11, 45, tzinfo=TZ)
    assert as_tuple(parse_when("周三上午", at_1145)) == when(date(2026, 11, 25), "am")
    assert as_tuple(parse_when("周三上午", at_1145, session_times=late_am)) == when(date(2026, 12, 2), "am")


def test_now_in_another_zone_is_converted_to_the_clinic_zone() -> None:
    utc_evening = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # already Tuesday 01:00 in Shanghai
    assert parse_when("明天", utc_evening).date == date(2026, 11, 25)
    assert parse_when("today", utc_evening).date == date(2026, 11, 24)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("下周八", "bad_weekday"),
        ("星期零", "bad_weekday"),
        ("周八", "bad_weekday"),
        ("13月5日", "bad_month"),
        ("十三月五日", "bad_month"),
        ("2月30日", "bad_day"),
        ("11月31号", "bad_day"),
        ("2026-02-29", "bad_day"),
        ("32号", "bad_day"),
        ("13/5", "bad_month"),
        ("Feb 30", "bad_day"),
        ("25:00", "bad_time"),
        ("25点", "bad_time"),
        ("明天上午15点", "bad_time"),
        ("昨天", "date_in_past"),
        ("yesterday", "date_in_past"),
        ("前天下午", "date_in_past"),
        ("上周三", "date_in_past"),
        ("last Monday", "date_in_past"),
        ("11月20号", "date_in_past"),
        ("2025-11-25", "date_in_past"),
        ("今天早上8点", "date_in_past"),  # it is 09:30
        ("下周", "vague_date"),
        ("next week", "vague_date"),
        ("上周", "date_in_past"),
        ("hello", "bad_date"),
        ("", "bad_date"),
        ("帮我挂个号", "bad_date"),
    ],
)
def test_parse_when_rejects_bad_dates_with_a_code_and_both_languages(text: str, code: str) -> None:
    with pytest.raises(DateParseError) as excinfo:
        parse_when(text, MON)
    err = excinfo.value
    assert err.code == code
    assert err.zh and err.en and err.zh != err.en
    assert err.message("zh") == err.zh and err.message("en") == err.en
    assert err.to_dict("en") == {"error": {"code": code, "message": err.en}}


def test_error_messages_name_the_problem() -> None:
    with pytest.raises(DateParseError) as excinfo:
        parse_when("13月5日", MON)
    assert "13" in excinfo.value.zh and "13" in excinfo.value.en
    with pytest.raises(DateParseError) as excinfo:
        parse_when("2月30日", MON)
    assert excinfo.value.zh == "2月没有30日。"
    with pytest.raises(DateParseError) as excinfo:
        parse_when("下周八", MON)
    assert "下周八" in excinfo.value.zh and "Monday to Sunday" in excinfo.value.en
    with pytest.raises(DateParseError) as excinfo:
        parse_when("昨天", MON)
    assert "2026-11-22" in excinfo.value.zh


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("帮我挂明天上午皮肤科的号", when(date(2026, 11, 24), "am")),
        ("book dermatology tomorrow morning", when(date(2026, 11, 24), "am")),
        ("下周一下午", when(date(2026, 11, 30), "pm")),
        ("11月28号", when(date(2026, 11, 28))),
        ("我想约11月28号的心内科", when(date(2026, 11, 28))),
        ("明天皮肤科上午的号还有吗", when(date(2026, 11, 24), "am")),  # half-day said apart from the day
        ("昨天开始发烧，帮我挂后天的", when(date(2026, 11, 25))),  # 昨天 is the story, 后天 the booking
        ("有没有下午的号", when(None, "pm")),
        ("can I see a GP on Friday?", when(date(2026, 11, 27))),
        ("周三下午3点可以吗", when(date(2026, 11, 25), "pm", time(15, 0))),
    ],
)
def test_find_when_pulls_the_date_out_of_free_text(text: str, expected: tuple) -> None:
    assert as_tuple(find_when(text, MON)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "我想挂皮肤科",
        "发烧3天了",
        "烧了三天，39度",
        "体温38点5度",
        "吃了1/2片退烧药",
        "一周三次",
        "这周一直咳嗽",
        "一日三次，每次两片",
        "好一点了",
        "8点吃了药",  # a clock time alone is not a booking date
        "我昨天开始发烧，想挂号",  # narrative past only
        "上周三开始咳嗽",
        "3号楼在哪里",
        "头疼一个月了",
        "I sat on the sofa",
        "I have had a fever for 3 days at 39 degrees",
    ],
)
def test_find_when_returns_none_without_a_date_phrase(text: str) -> None:
    assert find_when(text, MON) is None


@pytest.mark.parametrize(
    ("text", "code"),
    [("帮我挂下周八的号", "bad_weekday"), ("挂13月5日的号", "bad_month"), ("2月30日上午", "bad_day")],
)
def test_find_when_raises_for_impossible_dates(text: str, code: str) -> None:
    with pytest.raises(DateParseError) as excinfo:
        find_when(text, MON)
    assert excinfo.value.code == code


def test_find_when_explicit_past_date_is_an_error_unless_a_usable_date_follows() -> None:
    with pytest.raises(DateParseError) as excinfo:
        find_when("帮我挂11月20号的号", MON)
    assert excinfo.value.code == "date_in_past"
    assert find_when("11月20号开始咳嗽，想挂明天的号", MON) == WhenSpec(date=date(2026, 11, 24), text="明天")


def test_naive_now_is_taken_as_clinic_local_time() -> None:
    assert parse_when("明天", datetime(2026, 11, 23, 23, 30)).date == date(2026, 11, 24)
