"""Error codes of the kiosk API with zh/en messages, in the server/errors.py shape
{"error": {"code", "message"}}. Clients branch on `code`; codes never change meaning."""

from __future__ import annotations

from typing import Any, Literal

# code -> (HTTP status, zh, en); messages may use str.format fields given by the raiser.
MESSAGES: dict[str, tuple[int, str, str]] = {
    "stt_unavailable": (
        503,
        "语音输入暂不可用：{reason_zh}。请直接打字。",
        "Voice input is not available: {reason_en}. Please type instead.",
    ),
    "stt_language": (
        422,
        "本机的语音识别模型不支持{lang_zh}，请打字，或换用英文说。",
        "The speech model on this kiosk does not understand {lang_en}; please type instead.",
    ),
    "bad_audio": (
        422,
        "没有听清楚（录音是空的或无法读取），请再说一次或直接打字。",
        "The recording could not be read (empty or not audio); please try again or type.",
    ),
    "no_speech": (
        422,
        "没有听到说话声，请靠近一点再说一次，或直接打字。",
        "No speech was heard; please come closer and try again, or type.",
    ),
    "audio_too_long": (
        422,
        "录音太长（上限 {limit} 秒），请分几次说。",
        "The recording is too long (limit {limit} seconds); please say it in shorter parts.",
    ),
    "tts_unavailable": (
        503,
        "朗读功能暂不可用：{reason_zh}。",
        "Reading aloud is not available: {reason_en}.",
    ),
    "tts_failed": (503, "朗读失败，请再试一次。", "Reading aloud failed; please try again."),
    "empty_text": (422, "没有要朗读的文字。", "There is no text to read aloud."),
    "text_too_long": (
        422,
        "文字太长（{size} 字，上限 {limit} 字）。",
        "The text is too long ({size} characters; the limit is {limit}).",
    ),
    "bad_plan": (422, "就诊计划的内容不正确：{detail}", "The visit plan is not valid: {detail}"),
    "plan_too_long": (
        422,
        "就诊计划太长，放不进二维码。",
        "The visit plan is too long to fit in a QR code.",
    ),
    "bad_json": (400, "请求体不是有效的 JSON 对象。", "The request body is not a valid JSON object."),
    "invalid_field": (422, "字段 {field} 无效：{detail}", "Invalid field {field}: {detail}"),
    "body_too_large": (
        413,
        "请求体太大（上限 {limit} 字节）。",
        "The request body is too large (limit {limit} bytes).",
    ),
}


class KioskError(Exception):
    """A kiosk failure with a stable code; the HTTP status and zh/en text come from MESSAGES."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code, self.params = code, params

    @property
    def status(self) -> int:
        return MESSAGES[self.code][0]

    def message(self, lang: Literal["zh", "en"] | None) -> str:
        _, zh, en = MESSAGES[self.code]
        zh, en = zh.format(**self.params), en.format(**self.params)
        if lang == "zh":
            return zh
        if lang == "en":
            return en
        return f"{zh} / {en}"

    def body(self, lang: Literal["zh", "en"] | None) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message(lang)}}

    def __str__(self) -> str:
        return f"{self.code}: {self.message('en')}"
