"""`daozhen fever`: grade a child's fever (green / orange / red, call 120) from the command line.

Stable contract (scripts depend on it):

    daozhen fever --json --age-months N --temp C [--site axillary|ear|forehead|oral|rectal] [--days D] [TEXT]

prints the FeverGrade JSON and exits 0; unusable input prints a zh/en message on stderr and exits 2.
`daozhen fever --jsonl` reads one JSON object per stdin line (`age_months`, `temp_c`, `site`, `days`,
`text`; also `age_days`, `age_years`, `unit`, `readings`, `signs`, `conditions`, `weight_kg`, `lang`,
`now`) and prints one result or error object per line, in order.
Without --json/--jsonl a short human-readable summary is printed.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any, TextIO

from pydantic import ValidationError

from assistant.jsonl_batch import run_jsonl_batch

EXIT_BAD_INPUT = 2
_BATCH_KEYS = {
    "age_months", "age_days", "age_years", "temp_c", "unit", "site", "days", "text", "readings", "signs",
    "conditions", "weight_kg", "lang", "now",
}  # fmt: skip


class FeverCliError(ValueError):
    """Unusable input with a stable code and both languages."""

    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(f"{zh} / {en}")
        self.code = code


def add_fever_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Registers `fever` on the `daozhen` sub-command parser."""
    fever = subparsers.add_parser("fever", help="child fever traffic light: green / orange / red (call 120)")
    fever.add_argument("text", nargs="*", help="other symptoms and behaviour, free zh/en text")
    mode = fever.add_mutually_exclusive_group()
    mode.add_argument("--json", action="store_true", help="print the full grade as JSON")
    mode.add_argument("--jsonl", action="store_true", help="batch: one JSON object per stdin line")
    # numbers are parsed here, not by argparse, so that mistakes get a zh/en message
    fever.add_argument("--age-months", dest="age_months", default=None, help="age in months")
    fever.add_argument("--age-days", dest="age_days", default=None, help="age in days")
    fever.add_argument("--age-years", dest="age_years", default=None, help="age in years")
    fever.add_argument("--temp", default=None, help="temperature (°C; 385 -> 38.5, 95-110 read as °F)")
    fever.add_argument("--site", default=None, help="axillary | ear | forehead | oral | rectal")
    fever.add_argument("--days", default=None, help="days of fever so far (reported)")
    fever.add_argument("--weight-kg", dest="weight_kg", default=None, help="weight in kg (checked, optional)")
    fever.add_argument("--lang", choices=["zh", "en"], default=None)
    return fever


def _number(raw: str | None, name: str, zh_name: str) -> float | None:
    if raw is None:
        return None
    try:
        value = float(str(raw).strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise FeverCliError(
            "bad_number", f"{zh_name}“{raw}”不是一个数字。", f'The {name} "{raw}" is not a number.'
        )
    return value


def _payload(obj: dict[str, Any]) -> Any:
    """FeverInput from the flat CLI / JSONL shape (temp_c = one reading taken now)."""
    from tools.fever import FeverInput

    unknown = sorted(set(obj) - _BATCH_KEYS)
    if unknown:
        raise FeverCliError(
            "unknown_field",
            f"不认识的字段：{', '.join(unknown)}。",
            f"Unknown field(s): {', '.join(unknown)}.",
        )
    text = obj.get("text") or ""
    if not isinstance(text, str):
        raise FeverCliError("bad_text", "text 必须是文字。", '"text" must be a string.')
    readings = list(obj.get("readings") or [])
    if obj.get("temp_c") is not None:
        readings.append({"value": obj["temp_c"], "unit": obj.get("unit"), "site": obj.get("site")})
    if not readings and not text.strip():
        raise FeverCliError(
            "missing_temperature",
            "请给出体温（--temp）或描述孩子的情况。",
            "Please give a temperature (--temp) or describe the child.",
        )
    fields: dict[str, Any] = {"readings": readings, "text": text, "fever_days": obj.get("days")}
    for key in ("age_months", "age_days", "age_years", "signs", "conditions", "weight_kg", "lang", "now"):
        if obj.get(key) is not None:
            fields[key] = obj[key]
    return FeverInput.model_validate(fields)


def _validation_message(exc: ValidationError) -> tuple[str, str]:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return "invalid_field", f"字段 {where} 无效 / invalid field {where}: {first['msg']}"


def cmd_fever(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    from tools.fever import FeverInputError, grade_fever, parse_site

    if args.jsonl:
        return _fever_jsonl(stdin, stdout)
    try:
        temp = _number(args.temp, "temperature", "体温")
        if temp is None:
            raise FeverCliError(
                "missing_temperature", "请用 --temp 给出体温。", "Please give the temperature with --temp."
            )
        obj: dict[str, Any] = {
            "age_months": _number(args.age_months, "age in months", "月龄"),
            "age_days": _number(args.age_days, "age in days", "日龄"),
            "age_years": _number(args.age_years, "age in years", "年龄"),
            "temp_c": temp,
            "site": parse_site(args.site),
            "days": _number(args.days, "number of days", "发热天数"),
            "weight_kg": _number(args.weight_kg, "weight", "体重"),
            "text": " ".join(args.text),
            "lang": args.lang,
        }
        grade = grade_fever(_payload(obj))
    except FeverCliError as exc:
        print(f"daozhen fever: {exc}", file=stderr)
        return EXIT_BAD_INPUT
    except FeverInputError as exc:
        print(f"daozhen fever: {exc.zh} / {exc.en}", file=stderr)
        return EXIT_BAD_INPUT
    except ValidationError as exc:
        print(f"daozhen fever: {_validation_message(exc)[1]}", file=stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(grade.model_dump(mode="json"), ensure_ascii=False, indent=2), file=stdout)
    else:
        print(human_summary(grade.model_dump(mode="json")), file=stdout)
    return 0


def _fever_jsonl(stdin: TextIO, stdout: TextIO) -> int:
    from tools.fever import FeverInputError, grade_fever

    def describe(exc: Exception) -> tuple[str, str] | None:
        if isinstance(exc, FeverCliError):
            return exc.code, str(exc)
        if isinstance(exc, FeverInputError):
            return exc.code, f"{exc.zh} / {exc.en}"
        if isinstance(exc, ValidationError):
            return _validation_message(exc)
        return None

    return run_jsonl_batch(
        stdin, stdout, lambda obj: grade_fever(_payload(obj)).model_dump(mode="json"), describe
    )


def human_summary(grade: dict[str, Any]) -> str:
    zh = grade["lang"] == "zh"
    lines = [grade["label"], grade["meaning"]]
    for feature in grade["features"]:
        name = feature["name"]["zh" if zh else "en"]
        lines.append(f"  • {name} [{feature['rule_id']}] — {feature['evidence']}")
    if grade["number_statement"]:
        lines.append(grade["number_statement"])
    lines.append("现在做什么：" if zh else "What to do now:")
    lines += [f"  - {item}" for item in grade["do_now"]]
    lines.append(("复测：" if zh else "Re-measure: ") + grade["remeasure"]["advice"])
    if grade["escalation_triggers"]:
        lines.append("出现以下情况要升级：" if zh else "Escalate if:")
        lines += [f"  - {item}" for item in grade["escalation_triggers"]]
    for finding in grade["trends"]:
        lines.append(f"~ {finding['message']}")
    for warning in grade["warnings"]:
        lines.append(f"! {warning['message']}")
    if grade["uncertainty_reasons"]:
        lines.append(("不确定：" if zh else "Uncertain: ") + "；".join(grade["uncertainty_reasons"]))
    lines.append(grade["disclaimer"])
    return "\n".join(lines)
