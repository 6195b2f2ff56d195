"""Error codes of the booking API with zh/en messages, in the server/errors.py shape
{"error": {"code", "message"}}. Clients branch on `code`; codes never change meaning."""

from __future__ import annotations

from typing import Any

from server.errors import REST_MESSAGES, FeatureApiError

# code -> (zh, en); str.format fields come from the caller.
MESSAGES: dict[str, tuple[str, str]] = {
    **REST_MESSAGES,  # bad_json, body_too_large, invalid_field, internal
    "unknown_clinic": ("找不到这家医疗机构：{clinic_id}", "No such clinic: {clinic_id}"),
    "unknown_department": (
        "{clinic_id} 没有可预约的科室 {department_id}。",
        "{clinic_id} has no bookable department {department_id}.",
    ),
    "unknown_doctor": ("{clinic_id} 没有这位医生：{doctor_id}", "{clinic_id} has no doctor {doctor_id}."),
    "unknown_exam": ("{clinic_id} 没有这项检查：{exam_id}", "{clinic_id} offers no exam {exam_id}."),
    "slot_not_found": (
        "这个号源已不存在（可能排班有变动），请重新查询可约号源。",
        "This slot no longer exists (the schedule may have changed); please search again.",
    ),
    "slot_in_past": (
        "这个号源的就诊时间（{start}）已经过去，不能预约。",
        "This slot's time ({start}) has already passed; it cannot be booked.",
    ),
    "slot_taken": (
        "这个号刚刚被别人约走了。可以换一个号，或登记候补，有人退号时自动为您预约。",
        "Someone else just booked this slot. Pick another one, or join the waiting list and you will "
        "be booked automatically when someone cancels.",
    ),
    "not_open_yet": (
        "{date} 的号源还没有放出，最多只能预约 {days} 天内的号。",
        "Slots for {date} are not open yet; booking opens {days} days ahead.",
    ),
    "referral_only": (
        "这个号源留给社区卫生服务中心转诊的患者（号源下沉），{release} 起向所有人开放。",
        "This slot is kept for patients referred by a community health centre; it opens to everyone "
        "from {release}.",
    ),
    "bad_referral": (
        "转诊机构 {referral_from} 不是已登记的社区卫生服务中心。",
        "The referring clinic {referral_from} is not a registered community health centre.",
    ),
    "already_booked": (
        "您在这个时段（{date} {half_day_zh}）已经约了这个科室的号。",
        "You already have an appointment with this department in that session ({date} {half_day_en}).",
    ),
    "appointment_not_found": ("找不到这条预约。", "No such appointment."),
    "not_your_appointment": (
        "这条预约不是您的，不能查看或修改。",
        "This appointment is not yours; you cannot view or change it.",
    ),
    "already_cancelled": ("这条预约已经取消过了。", "This appointment has already been cancelled."),
    "appointment_in_past": (
        "就诊时间已过，不能再取消或改约。",
        "The appointment time has passed; it can no longer be cancelled or rescheduled.",
    ),
    "already_on_waitlist": (
        "您已经在这个时段的候补名单上了（第 {position} 位）。",
        "You are already on the waiting list for that session (position {position}).",
    ),
    "slots_available": (
        "这个时段还有号，请直接预约，不需要候补。",
        "That session still has free slots; please book one directly instead of waiting.",
    ),
    "waitlist_not_found": ("找不到这条候补登记。", "No such waiting-list entry."),
    "exam_full": (
        "{exam_id} 在 {date} {half_day_zh} 已约满。",
        "{exam_id} is fully booked on {date} ({half_day_en}).",
    ),
    "exam_booking_not_found": ("找不到这条检查预约。", "No such exam booking."),
    "no_exams": ("请至少选择一项检查。", "Please choose at least one exam."),
    "idempotency_key_required": (
        "请求缺少 Idempotency-Key（幂等键），重试时才不会重复预约。",
        "The request needs an Idempotency-Key header so that a retry cannot book twice.",
    ),
    "bad_idempotency_key": (
        "Idempotency-Key 应为 1–100 个可见字符。",
        "The Idempotency-Key must be 1-100 visible characters.",
    ),
    "idempotency_conflict": (
        "这个 Idempotency-Key 已用于另一个不同的请求，请为新请求换一个新的键。",
        "This Idempotency-Key was already used for a different request; use a new key for a new request.",
    ),
    "bad_date": ("日期“{text}”看不懂：{detail}", 'Cannot read the date "{text}": {detail}'),
    "date_in_past": ("{date} 已经过去了。", "{date} is in the past."),
    "bad_half_day": ("时段应为 am（上午）或 pm（下午）。", "The session must be am or pm."),
    "wrong_role": ("只有医护账号可以这样做。", "Only clinician accounts may do this."),
    "auth_required": ("请先登录。", "Please sign in first."),
    "busy": ("预约系统繁忙，请稍后再试。", "The booking system is busy; please try again shortly."),
}

HALF_DAY_NAMES: dict[str, tuple[str, str]] = {"am": ("上午", "morning"), "pm": ("下午", "afternoon")}


class BookingError(FeatureApiError):
    """An API error: HTTP status, stable code, zh/en message; `extra` goes into the error object
    (e.g. the waiting-list position, or an alternative slot)."""

    messages = MESSAGES

    def __init__(
        self,
        status: int,
        code: str,
        *,
        zh: str | None = None,
        en: str | None = None,
        extra: dict[str, Any] | None = None,
        **params: Any,
    ) -> None:
        if "half_day" in params and params["half_day"] in HALF_DAY_NAMES:
            params.setdefault("half_day_zh", HALF_DAY_NAMES[params["half_day"]][0])
            params.setdefault("half_day_en", HALF_DAY_NAMES[params["half_day"]][1])
        super().__init__(status, code, zh=zh, en=en, **params)
        self.extra = extra or {}

    def body(self, lang: str | None = None) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message(lang), **self.extra}}
