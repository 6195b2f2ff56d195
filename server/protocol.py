"""The websocket chat protocol "daozhen.chat.v1" (documented in server/asyncapi.yaml).

Client messages are parsed into pydantic models here; anything unusable becomes a ProtocolError
with a stable code. Server messages are plain dicts built by the functions at the bottom, so the
shapes live in one place.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.errors import error_message
from tools.triage_models import Lang, MissingFact

PROTOCOL = "daozhen.chat.v1"
ID_MAX_CHARS = 128


class ProtocolError(Exception):
    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code, self.params = code, params


class _ClientMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")  # newer clients may send more fields


class Hello(_ClientMessage):
    type: Literal["hello"]
    protocol: str | None = None
    lang: Lang | None = None
    session_id: str | None = Field(default=None, max_length=ID_MAX_CHARS)


class UserText(_ClientMessage):
    type: Literal["user_text"]
    text: str
    client_msg_id: str | None = Field(default=None, max_length=ID_MAX_CHARS)


class Answer(_ClientMessage):
    type: Literal["answer"]
    question_id: str = Field(max_length=ID_MAX_CHARS)
    value: bool | float | str | None = None  # yes/no: true/false/"yes"/"no"/"unknown"; number; choice
    client_msg_id: str | None = Field(default=None, max_length=ID_MAX_CHARS)


class Locale(_ClientMessage):
    type: Literal["locale"]
    lang: Lang


class Ping(_ClientMessage):
    type: Literal["ping"]


class Pong(_ClientMessage):
    type: Literal["pong"]


ClientMessage = Hello | UserText | Answer | Locale | Ping | Pong
CLIENT_TYPES: dict[str, type[_ClientMessage]] = {
    "hello": Hello,
    "user_text": UserText,
    "answer": Answer,
    "locale": Locale,
    "ping": Ping,
    "pong": Pong,
}


def parse_client_message(raw: str) -> ClientMessage:
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise ProtocolError("bad_json") from exc
    if not isinstance(obj, dict):
        raise ProtocolError("bad_json")
    if has_lone_surrogate(raw):
        raise ProtocolError("bad_message", detail="text with invalid unicode escapes")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("bad_message", detail='"type" is missing')
    model = CLIENT_TYPES.get(kind)
    if model is None:
        raise ProtocolError("unknown_type", type=kind[:40])
    try:
        return model.model_validate(obj)  # type: ignore[return-value]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise ProtocolError("bad_message", detail=f"{where}: {first['msg']}") from exc


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def has_lone_surrogate(raw: str) -> bool:
    """JSON may spell half a UTF-16 pair ("\\ud800"); such text cannot be stored or sent back."""
    if not _SURROGATE_ESCAPE.search(raw):
        return False
    try:
        json.dumps(json.loads(raw), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# ------------------------------------------------------------------ structured answers -> text

# Words the session reads unambiguously (see prompts/session_templates.yaml `words`).
_YES = {"zh": "是", "en": "yes"}
_NO = {"zh": "没有", "en": "no"}
_UNKNOWN = {"zh": "不知道", "en": "don't know"}
_EARLIER = {"zh": "之前的", "en": "earlier"}
_LATER = {"zh": "现在的", "en": "now"}
_YES_VALUES = {"yes", "y", "true", "是", "有"}
_NO_VALUES = {"no", "n", "false", "否", "没有"}
_UNKNOWN_VALUES = {"unknown", "dont_know", "don't know", "不知道", ""}


def _label(value: bool | float | str | None) -> str | None:
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        v = value.strip().lower()
        if v in _YES_VALUES:
            return "yes"
        if v in _NO_VALUES:
            return "no"
        if v in _UNKNOWN_VALUES:
            return "unknown"
    return None


def _plain_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def answer_as_text(question: MissingFact, value: bool | float | str | None, lang: Lang) -> tuple[str, str]:
    """(text for the session, text for the transcript) for a structured answer to `question`.

    The session gets words it reads exactly ("是" / "no" / "39"); the transcript gets the
    question's yes_text / no_text sentence when there is one, which reads better later.
    """
    label = _label(value)
    if question.kind == "yes_no":
        if label is None:
            if isinstance(value, str) and value.strip():
                return value, value  # a free-text answer: the session reads it as a description
            raise ProtocolError("bad_message", detail="value: expected yes, no or unknown")
        if label == "yes":
            return _YES[lang], question.yes_text or _YES[lang]
        if label == "no":
            return _NO[lang], question.no_text or _NO[lang]
        return _UNKNOWN[lang], _UNKNOWN[lang]
    if label == "unknown":
        return _UNKNOWN[lang], _UNKNOWN[lang]
    if question.kind == "choice" and isinstance(value, str) and value in ("earlier", "later"):
        word = (_EARLIER if value == "earlier" else _LATER)[lang]
        return word, word
    if isinstance(value, bool):
        raise ProtocolError("bad_message", detail="value: expected a number or text")
    text = _plain_number(value) if isinstance(value, float | int) else str(value).strip()
    if not text:
        raise ProtocolError("empty_text")
    return text, text


# ------------------------------------------------------------------------ server messages


def session_message(
    session_id: str,
    lang: Lang | None,
    *,
    resumed: bool,
    history: list[dict[str, str]] | None = None,
    pending_question: MissingFact | None = None,
) -> dict[str, Any]:
    return {
        "type": "session",
        "protocol": PROTOCOL,
        "session_id": session_id,
        "lang": lang,
        "resumed": resumed,
        "history": history or [],
        "pending_question": pending_question.model_dump(mode="json") if pending_question else None,
    }


def _with_client_id(message: dict[str, Any], client_msg_id: str | None) -> dict[str, Any]:
    if client_msg_id is not None:
        message["client_msg_id"] = client_msg_id
    return message


def card_message(
    message_id: str, card: dict[str, Any] | None, client_msg_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    """card is None for a turn that answers a guideline question (then `citations` is given);
    `updated: true` marks a card that replaces the turn's earlier one (it got more urgent)."""
    message = {"type": "card", "message_id": message_id, "card": card, **extra}
    return _with_client_id(message, client_msg_id)


def token_message(message_id: str, text: str) -> dict[str, Any]:
    return {"type": "token", "message_id": message_id, "text": text}


def question_message(message_id: str, question: dict[str, Any]) -> dict[str, Any]:
    return {"type": "question", "message_id": message_id, "question": question}


def done_message(
    message_id: str, text: str, llm_used: bool, client_msg_id: str | None = None
) -> dict[str, Any]:
    return _with_client_id(
        {"type": "done", "message_id": message_id, "text": text, "llm_used": llm_used}, client_msg_id
    )


def error_event(
    code: str,
    lang: Lang | None,
    *,
    message: str | None = None,
    message_id: str | None = None,
    client_msg_id: str | None = None,
    **params: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "error",
        "code": code,
        "message": message or error_message(code, lang, **params),
    }
    if message_id is not None:
        out["message_id"] = message_id
    return _with_client_id(out, client_msg_id)


PING = {"type": "ping"}
PONG = {"type": "pong"}
