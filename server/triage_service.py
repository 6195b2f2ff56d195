"""POST /api/triage: the same contract as `daozhen triage --json` / one `--jsonl` row.

The body is parsed by the CLI's own `triage_payload`, so both accept exactly the same fields
(text, lang, facts nested or flat) and report the same error codes.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from assistant.cli import InputProblem, triage_payload
from server.errors import error_message
from tools.triage import TriageInputError, assess

MAX_BODY_BYTES = 64 * 1024


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")  # NaN / Infinity are not valid JSON


def triage_from_body(body: bytes) -> dict[str, Any]:
    """The TriageResult JSON for a request body; raises ApiError for unusable input."""
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", error_message("body_too_large", None, limit=MAX_BODY_BYTES))
    try:
        obj = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_json", "请求体不是有效的 JSON / the request body is not valid JSON") from exc
    try:
        inp = triage_payload(obj)
    except InputProblem as exc:
        raise ApiError(400 if exc.code == "bad_json" else 422, exc.code, str(exc)) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ApiError(
            422, "invalid_fact", f"字段 {where} 无效 / invalid field {where}: {first['msg']}"
        ) from exc
    except (TypeError, ValueError) as exc:  # e.g. "facts" given as a string or a list
        raise ApiError(
            422, "invalid_fact", "facts / vitals 必须是 JSON 对象 / facts and vitals must be JSON objects"
        ) from exc
    try:
        return assess(inp).model_dump(mode="json")
    except TriageInputError as exc:
        raise ApiError(422, exc.code, f"{exc.zh} / {exc.en}") from exc
