"""The batch mode shared by `daozhen triage --jsonl` and `daozhen fever --jsonl`: one JSON object per
input line, one result or error object per output line, in order; a bad line never aborts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TextIO

Handler = Callable[[dict[str, Any]], dict[str, Any]]
# (code, message) for an input error the command knows how to explain; None: a real bug, re-raised
Describe = Callable[[Exception], tuple[str, str] | None]


def error_object(code: str, message: str, line: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"error": {"code": code, "message": message}}
    if line is not None:
        out["line"] = line
    return out


def run_jsonl_batch(stdin: TextIO, stdout: TextIO, handle: Handler, describe: Describe) -> int:
    for number, line in enumerate(stdin, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                out = error_object(
                    "bad_json", "每行必须是一个 JSON 对象。 / Each line must be a JSON object.", number
                )
            else:
                out = handle(obj)
        except json.JSONDecodeError as exc:
            out = error_object(
                "bad_json",
                f"第{number}行不是有效的 JSON / line {number} is not valid JSON: {exc.msg}",
                number,
            )
        except Exception as exc:
            described = describe(exc)
            if described is None:
                raise
            out = error_object(*described, number)
        print(json.dumps(out, ensure_ascii=False), file=stdout, flush=True)
    return 0
