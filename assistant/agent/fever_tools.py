"""Fever tools for the chat: traffic-light grading of a feverish young child and OTC antipyretic
label checks, as LangChain tools with pydantic arguments. Both are deterministic (tools/)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from tools.antipyretics import check_dose
from tools.fever import FeverInput, FeverInputError, grade_fever
from tools.triage_models import Lang, TriageResult

FEVER_TABLE_MAX_MONTHS = 60  # the traffic-light table is for children under 5
_DRUG = re.compile(
    r"布洛芬|美林|对乙酰氨基酚|扑热息痛|泰诺林|ibuprofen|nurofen|paracetamol|acetaminophen|calpol|tylenol"
)
_HOURS_AGO = re.compile(
    r"(\d+(?:\.\d+)?|半|一|两|二|三|四|五|六)\s*(个)?(半)?\s*(小时|钟头|hours?|hrs?)\s*(了|前|ago)?"
)
_ZH_NUMBER = {"半": 0.5, "一": 1, "两": 2, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6}


class FeverGradeArgs(BaseModel):
    text: str = Field(default="", max_length=4000, description="the child's symptoms and behaviour")
    age_months: float = Field(ge=0, le=216)
    temperature_c: float | None = Field(default=None, ge=25, le=45)
    fever_days: float | None = Field(default=None, ge=0, le=60)
    antipyretic_hours_ago: float | None = Field(default=None, ge=0, le=48)
    lang: Lang | None = None


class DoseCheckArgs(BaseModel):
    drug: str = Field(min_length=1, max_length=60)
    weight_kg: float | None = Field(default=None, gt=0, le=200)
    age_months: float | None = Field(default=None, ge=0, le=1560)
    last_dose_hours_ago: float | None = Field(default=None, ge=0, le=48)


def _grade(**kwargs: Any) -> dict[str, Any]:
    args = FeverGradeArgs(**kwargs)
    now = datetime.now(UTC)
    readings = []
    if args.temperature_c is not None:
        readings.append({"value": args.temperature_c, "unit": "C", "time": now})
    if args.antipyretic_hours_ago is not None and readings:
        # the fever medicine was given before this reading: trends read it as "despite antipyretics"
        readings.insert(
            0,
            {
                "value": args.temperature_c,
                "unit": "C",
                "antipyretic_given": True,
                "time": now - timedelta(hours=args.antipyretic_hours_ago),
            },
        )
    inp = FeverInput(
        age_months=args.age_months,
        readings=readings,
        fever_days=args.fever_days,
        text=args.text,
        lang=args.lang,
        now=now,
    )
    return grade_fever(inp).model_dump(mode="json")


def _dose(**kwargs: Any) -> dict[str, Any]:
    args = DoseCheckArgs(**kwargs)
    now = datetime.now(UTC)
    history = []
    if args.last_dose_hours_ago is not None:
        history.append({"drug": args.drug, "given_at": now - timedelta(hours=args.last_dose_hours_ago)})
    return check_dose(args.drug, args.weight_kg, args.age_months, history, now).model_dump(mode="json")


def make_fever_tool() -> StructuredTool:
    return StructuredTool.from_function(
        func=_grade,
        name="fever_grade",
        args_schema=FeverGradeArgs,
        description="Traffic-light (green/orange/red) grading of a feverish child under 5 (NICE NG143).",
    )


def make_dose_tool() -> StructuredTool:
    return StructuredTool.from_function(
        func=_dose,
        name="antipyretic_check",
        args_schema=DoseCheckArgs,
        description="Label-rule check for paracetamol or ibuprofen: allowed now, dose range, next time.",
    )


def dose_mention(text: str) -> tuple[str, float | None] | None:
    """'吃了布洛芬两小时了' -> ('布洛芬', 2.0)."""
    drug = _DRUG.search(text.lower())
    if not drug:
        return None
    ago = _HOURS_AGO.search(text.lower())
    hours = None
    if ago:
        raw = ago.group(1)
        hours = float(raw) if raw[0].isdigit() else _ZH_NUMBER[raw]
        if ago.group(3):
            hours += 0.5
    return drug.group(), hours


def fever_card(
    result: TriageResult, description: str, lang: str, fever_tool: StructuredTool, dose_tool: StructuredTool
) -> dict[str, Any] | None:
    """The fever grade (and any dose check) for a feverish child under 5, else None."""
    age = result.facts.age_months
    feverish = any(t.rule_id in ("CP-fever", "RF-INF-01") for t in result.rule_trace)
    if age is None or age >= FEVER_TABLE_MAX_MONTHS or not feverish:
        return None
    mention = dose_mention(description)
    try:
        grade = fever_tool.invoke(
            {
                "text": description[-4000:],
                "age_months": age,
                "lang": lang,
                "temperature_c": result.facts.vitals.temperature_c,
                "antipyretic_hours_ago": mention[1] if mention else None,
            }
        )
    except (FeverInputError, ValueError):
        return None
    card: dict[str, Any] = {
        "colour": grade["colour"],
        "call_120": grade["call_120"],
        "label": grade["label"],
        "meaning": grade["meaning"],
        "number_statement": grade["number_statement"],
        "remeasure": grade["remeasure"]["advice"],
        "features": [
            f["name"][lang] if isinstance(f["name"], dict) else f["name"] for f in grade["features"]
        ],
    }
    if mention:
        check = dose_tool.invoke({"drug": mention[0], "age_months": age, "last_dose_hours_ago": mention[1]})
        card["dose"] = {
            "allowed": check["allowed"],
            "code": check["code"],
            "reason": check["reason"][lang],
            "next_allowed_at": check["next_allowed_at"],
            "note": check["note"][lang],
        }
    return card


_COLOUR_NAME = {
    "zh": {"green": "绿色", "orange": "橙色", "red": "红色"},
    "en": {"green": "green", "orange": "orange", "red": "red"},
}


_GREEN_NEUTRAL = {
    "zh": "目前没有看到发热的中、高风险信号。",
    "en": "No intermediate- or high-risk fever signs are seen now.",
}


def fever_text(card: dict[str, Any], lang: str, level: str) -> str:
    """The fever grade as prose. It names the colour, not a care level, so it never reads as a
    second, different triage level next to the card (a green grade's "home care" wording is only
    used when the card itself says self-care)."""
    colour = _COLOUR_NAME[lang][card["colour"]]
    head = f"发热分级：{colour}。" if lang == "zh" else f"Fever grade: {colour}. "
    meaning = card["meaning"]
    if card["colour"] == "green" and level != "self_care":
        meaning = _GREEN_NEUTRAL[lang]
    parts = [head + meaning]
    if card.get("number_statement"):
        parts.append(card["number_statement"])
    parts.append(card["remeasure"])
    if card.get("dose"):
        parts.append(card["dose"]["reason"])
    return "\n".join(p for p in parts if p)
