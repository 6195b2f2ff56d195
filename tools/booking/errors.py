"""Errors of the booking domain: a stable `code` for programs plus zh/en messages for people.

The server maps them to {"error": {"code", "message"}}; `message(lang)` picks the language.
"""

from __future__ import annotations

from typing import Any

# code -> (zh, en); str.format fields come from the error's params.
MESSAGES: dict[str, tuple[str, str]] = {
    # catalogue / slots
    "unknown_clinic": ("找不到这家医疗机构：{clinic_id}。", "Unknown clinic: {clinic_id}."),
    "unknown_department": (
        "{clinic_id} 没有可预约的科室“{department_id}”。",
        "{clinic_id} has no bookable department '{department_id}'.",
    ),
    "unknown_doctor": ("{clinic_id} 没有这位医生：{doctor_id}。", "{clinic_id} has no doctor '{doctor_id}'."),
    "unknown_exam": (
        "{clinic_id} 不提供这项检查：{exam_id}。",
        "{clinic_id} does not offer the exam '{exam_id}'.",
    ),
    "no_exams": ("请至少选择一项检查。", "Please choose at least one exam."),
    "no_exam_session": (
        "未来 {days} 天内排不下这些检查：{exams}，请联系医院。",
        "These exams cannot be scheduled within the next {days} days: {exams}; please contact the clinic.",
    ),
    "bad_slot_id": (
        "号源编号格式不对：{slot_id}（应为 机构:医生:YYYY-MM-DD:am|pm:序号）。",
        "Malformed slot id: {slot_id} (expected clinic:doctor:YYYY-MM-DD:am|pm:number).",
    ),
    "unknown_slot": (
        "没有这个号源：{slot_id}（医生当天没有出诊或序号超出）。",
        "No such slot: {slot_id} (the doctor has no session then, or the number is too high).",
    ),
    "slot_in_past": (
        "这个号源的时间（{start}）已经过去，不能再预约。",
        "This slot ({start}) is in the past and can no longer be booked.",
    ),
    "slot_not_open": (
        "这个号源还没有开放预约（只能预约 {days} 天内的号）。",
        "This slot is not open for booking yet (bookings open {days} days ahead).",
    ),
    "referral_only": (
        "这是留给社区卫生服务中心转诊的号，{release_at} 起向所有人开放。",
        "This number is kept for referrals from community health centres; it opens to everyone at "
        "{release_at}.",
    ),
    "bad_status": ("不支持的状态：{status}。", "Unsupported status: {status}."),
    "bad_fhir_id": ("不能转换成 FHIR 编号：{value}。", "Cannot be turned into a FHIR id: {value}."),
    "bad_clinic_file": ("机构数据文件 {file} 有误：{detail}", "Clinic data file {file} is invalid: {detail}"),
    # dates
    "bad_date": (
        "没看懂日期“{text}”，请说“明天上午”“下周三”或“11月28日”这样的说法。",
        "Could not understand the date '{text}'; try 'tomorrow morning', 'next Wednesday' or '28 Nov'.",
    ),
    "vague_date": (
        "“{text}”不够具体，请说是哪一天，例如“下周三上午”。",
        "'{text}' is not specific enough; please name a day, e.g. 'next Wednesday morning'.",
    ),
    "bad_month": ("没有{month}月，月份只能是1到12。", "There is no month {month}; months run from 1 to 12."),
    "bad_day": ("{month}月没有{day}日。", "Month {month} has no day {day}."),
    "bad_weekday": (
        "没有“{text}”，星期只有一到日（周一至周日）。",
        "There is no '{text}'; weekdays run from Monday to Sunday.",
    ),
    "bad_time": (
        "时间“{text}”不对，请用 8:30 或“下午3点”这样的说法。",
        "The time '{text}' is invalid; try 8:30 or '3 pm'.",
    ),
    "date_in_past": (
        "{date} 已经过去了，请选择今天或以后的时间。",
        "{date} is already in the past; please choose today or a later time.",
    ),
}


class BookingDomainError(ValueError):
    """Base of the booking errors: `code`, `params`, and both messages (`zh`, `en`)."""

    def __init__(self, code: str, **params: Any) -> None:
        self.code = code
        self.params = params
        zh, en = MESSAGES.get(code, ("{code}", "{code}"))
        fields = {"code": code, **params}
        self.zh = zh.format_map(_Lenient(fields))
        self.en = en.format_map(_Lenient(fields))
        super().__init__(f"{code}: {self.en}")

    def message(self, lang: str | None) -> str:
        """The message in `lang`; both ("zh / en") when the language is unknown."""
        if lang == "zh":
            return self.zh
        if lang == "en":
            return self.en
        return f"{self.zh} / {self.en}"

    def to_dict(self, lang: str | None = None) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message(lang)}}


class BookingDataError(BookingDomainError):
    """Unknown clinic/department/doctor/exam/slot, malformed slot id, invalid data file, unbookable slot."""


class DateParseError(BookingDomainError):
    """A date/time phrase that is malformed, impossible (13月5日, 下周八) or in the past."""


class _Lenient(dict):
    """Leaves a missing format field visible instead of raising KeyError inside an error path."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
