"""Error codes of the fever API with zh/en messages (the server/errors.py shape:
{"error": {"code", "message"}}). Clients branch on `code`; codes never change meaning."""

from __future__ import annotations

from typing import Any

from server.errors import REST_MESSAGES

# code -> (zh, en); str.format fields come from the caller.
MESSAGES: dict[str, tuple[str, str]] = {
    **REST_MESSAGES,  # bad_json, body_too_large, invalid_field, internal
    "auth_required": ("请先登录。", "Please sign in first."),
    "bad_token": (
        "登录已失效，请重新登录。",
        "Your sign-in is not valid or has expired; please sign in again.",
    ),
    "bad_credentials": ("用户名或密码不对。", "Wrong username or password."),
    "username_taken": (
        "这个用户名已经有人用了，请换一个。",
        "That username is taken; please choose another.",
    ),
    "bad_clinic_code": (
        "机构注册码不对，不能创建医护账号。",
        "The clinic code is wrong; a clinician account cannot be created.",
    ),
    "wrong_role": ("只有{role_zh}账号可以这样做。", "Only {role_en} accounts may do this."),
    "not_your_child": (
        "这个孩子不在您的账号下，不能查看或记录。",
        "This child is not on your account; you cannot read or record anything for them.",
    ),
    "not_your_clinic": ("这条内容不属于您的机构。", "This belongs to another clinic."),
    "not_your_form": ("这份预问诊单不是您的。", "This pre-consultation form is not yours."),
    "child_not_found": ("找不到这个孩子的档案。", "No such child profile."),
    "form_not_found": ("找不到这份预问诊单。", "No such pre-consultation form."),
    "callback_not_found": ("找不到这条回电请求。", "No such callback request."),
    "future_time": (
        "时间 {time} 在未来，请检查手机或体温计的时钟后再记录。",
        "The time {time} is in the future; check the phone or thermometer clock and record it again.",
    ),
    "before_birth": (
        "时间 {time} 早于孩子的出生日期，请核对。",
        "The time {time} is before the child's birth date; please check.",
    ),
    "bad_payload_hex": (
        "蓝牙数据不是有效的十六进制字符串。",
        "The Bluetooth payload is not a valid hexadecimal string.",
    ),
    "ble_no_value": (
        "体温计没有给出有效读数（{special}），请重新测量。",
        "The thermometer sent no usable value ({special}); please measure again.",
    ),
    "bad_phone": (
        "电话号码格式不对（只能有数字、空格、+ 和 -，5–20 位）。",
        "The phone number is not valid (digits, spaces, + and - only; 5-20 characters).",
    ),
    "rate_limited": ("消息太频繁，请稍等再发。", "Too many messages; please wait a moment."),
    "too_large": ("消息太大（上限 {limit} 字节）。", "The message is too large (limit {limit} bytes)."),
    "unknown_type": ("不认识的消息类型：{type}", "Unknown message type: {type}"),
}


class FeverError(Exception):
    """An API error: HTTP status, stable code, zh/en message. `zh`/`en` given explicitly carry
    messages from the domain tools (FeverInputError, BleParseError, a dose refusal)."""

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
        if zh is None or en is None:
            template_zh, template_en = MESSAGES.get(code, MESSAGES["internal"])
            zh, en = template_zh.format(**params), template_en.format(**params)
        super().__init__(f"{code}: {en}")
        self.status, self.code, self.zh, self.en = status, code, zh, en
        self.extra = extra or {}

    @property
    def message(self) -> str:
        return f"{self.zh} / {self.en}"

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        error.update(self.extra.get("error", {}))
        return {"error": error, **{k: v for k, v in self.extra.items() if k != "error"}}


ROLE_NAMES: dict[str, tuple[str, str]] = {"family": ("家长", "family"), "clinician": ("医护", "clinician")}


def wrong_role(role: str) -> FeverError:
    zh, en = ROLE_NAMES[role]
    return FeverError(403, "wrong_role", role_zh=zh, role_en=en)
