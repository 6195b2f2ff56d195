"""Stable error codes of the server (websocket and REST) with their zh/en messages.

Clients branch on `code`, people read `message`. Codes never change meaning; new ones may be added.
"""

from __future__ import annotations

from typing import Any, Self

from tools.localized_error import LocalizedError
from tools.triage_models import Lang

# code -> (zh, en); messages may use str.format fields given by the caller.
MESSAGES: dict[str, tuple[str, str]] = {
    "bad_json": ("消息不是有效的 JSON 对象。", "The message is not a valid JSON object."),
    "bad_message": ("消息格式不正确：{detail}", "The message is malformed: {detail}"),
    "unknown_type": ("不认识的消息类型：{type}", "Unknown message type: {type}"),
    "too_large": (
        "消息太大（{size} 字节），上限是 {limit} 字节。",
        "The message is too large ({size} bytes); the limit is {limit} bytes.",
    ),
    "binary_not_supported": (
        "不支持二进制消息，请发送 JSON 文本。",
        "Binary frames are not supported; please send JSON text.",
    ),
    "rate_limited": ("消息太频繁，请稍等再发。", "Too many messages; please wait a moment."),
    "empty_text": ("请输入文字内容。", "Please type a message."),
    "unknown_session": (
        "找不到这个会话（可能已过期），已为您开始新的会话。",
        "That session was not found (it may have expired); a new session has been started.",
    ),
    "unsupported_protocol": (
        "不支持的协议版本 {got}，服务器使用 {expected}。",
        "Unsupported protocol {got}; this server speaks {expected}.",
    ),
    "stale_question": (
        "这个问题已经回答过或已不再需要，请直接描述情况。",
        "That question was already answered or is no longer asked; please just describe the situation.",
    ),
    "busy": (
        "上一条消息还在处理中，请稍候再发。",
        "The previous message is still being handled; please wait a moment.",
    ),
    "llm_failed": (
        "生成说明时出错；上面的分诊卡片仍然有效。",
        "Writing the explanation failed; the triage card above still stands.",
    ),
    "timeout": (
        "生成说明超时；上面的分诊卡片仍然有效。",
        "Writing the explanation timed out; the triage card above still stands.",
    ),
    "internal": ("服务器内部错误，请重试。", "Internal server error; please try again."),
    # REST only
    "body_too_large": (
        "请求体太大（上限 {limit} 字节）。",
        "The request body is too large (limit {limit} bytes).",
    ),
    "not_found": ("找不到该内容。", "Not found."),
    "auth_required": (
        "请先取得就诊身份（或登录）后再操作。",
        "Please get a patient pass (or sign in) first.",
    ),
    "invalid_field": ("字段 {field} 无效：{detail}", "Invalid field {field}: {detail}"),
    "not_ready": ("服务尚未就绪，请稍后再试。", "The service is not ready yet; please try again shortly."),
}

# The same REST input problems in every feature API (each feature's MESSAGES starts with these).
REST_MESSAGES: dict[str, tuple[str, str]] = {
    "bad_json": ("请求体不是有效的 JSON 对象。", "The request body is not a valid JSON object."),
    "body_too_large": (
        "请求体太大（上限 {limit} 字节）。",
        "The request body is too large (limit {limit} bytes).",
    ),
    "invalid_field": ("字段 {field} 无效：{detail}", "Invalid field {field}: {detail}"),
    "internal": ("服务器内部错误，请重试。", "Internal server error; please try again."),
}


def error_message(code: str, lang: Lang | None, **params: Any) -> str:
    """The message in `lang`; both languages ("zh / en") when the language is not known."""
    zh, en = MESSAGES.get(code, MESSAGES["internal"])
    zh, en = zh.format(**params), en.format(**params)
    if lang == "zh":
        return zh
    if lang == "en":
        return en
    return f"{zh} / {en}"


def error_body(code: str, lang: Lang | None = None, **params: Any) -> dict[str, Any]:
    """REST error shape: {"error": {"code", "message"}}."""
    return {"error": {"code": code, "message": error_message(code, lang, **params)}}


class FeatureApiError(LocalizedError):
    """A feature API's REST error: HTTP status, stable code and the zh/en message — from the
    subclass's `messages` table (an unknown code reads as "internal"), or given explicitly to carry a
    domain error's own text (`from_domain`)."""

    messages = REST_MESSAGES

    def __init__(
        self, status: int, code: str, *, zh: str | None = None, en: str | None = None, **params: Any
    ) -> None:
        if zh is None or en is None:
            template_zh, template_en = self.messages.get(code, self.messages["internal"])
            zh, en = template_zh.format(**params), template_en.format(**params)
        super().__init__(code, zh, en, **params)
        self.status = status

    @classmethod
    def from_domain(cls, exc: LocalizedError, status: int = 422) -> Self:
        """A domain error (bad reading, impossible recurrence, ...) as this API's error."""
        return cls(status, exc.code, zh=exc.zh, en=exc.en)

    def body(self, lang: Lang | None = None) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message(lang)}}


class ApiError(Exception):
    """Raised by routes and dependencies; rendered as {"error": {"code", "message"}}."""

    def __init__(self, status: int, code: str, lang: Lang | None = None, **params: Any) -> None:
        super().__init__(code)
        self.status, self.code, self.lang, self.params = status, code, lang, params

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.lang, **self.params)


def install_error_handlers(app: Any) -> None:
    """ApiError -> its JSON error body; an HTTPException whose detail already is an error body is
    passed through unchanged (not wrapped in {"detail": ...})."""
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    async def on_api_error(request: Any, exc: Exception) -> Any:
        assert isinstance(exc, ApiError)
        return JSONResponse(exc.body(), status_code=exc.status)

    async def on_http_exception(request: Any, exc: Exception) -> Any:
        assert isinstance(exc, HTTPException)
        if isinstance(exc.detail, dict) and "error" in exc.detail:
            return JSONResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)
        return await http_exception_handler(request, exc)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(HTTPException, on_http_exception)
