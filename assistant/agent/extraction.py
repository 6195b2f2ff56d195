"""LLM fact extraction for what the rules missed: value + unit under a JSON schema, converted
and validated in code (REFERENCE: asking a small model for bare numbers gets units wrong)."""

from __future__ import annotations

import logging
from typing import Any

from assistant.agent.prompts import prompt_file
from assistant.llm.base import ChatMessage, LLMBackend, LLMError
from tools.triage_models import Facts, VitalSigns
from tools.units import fahrenheit_to_celsius, is_plausible

log = logging.getLogger(__name__)

_AGE_FACTOR = {"days": 1 / 30.4, "weeks": 12 / 52, "months": 1.0, "years": 12.0}
_HOURS = {"hours": 1.0, "days": 24.0, "weeks": 168.0, "months": 730.0}


def llm_extract(llm: LLMBackend, text: str, lang: str) -> Facts:
    """Facts the model found; anything implausible or malformed is dropped, never guessed."""
    spec = prompt_file("extract_facts.yaml")
    messages = [
        ChatMessage(role="system", content=spec["system"][lang]),
        ChatMessage(role="user", content=text),
    ]
    try:
        raw = llm.complete_json(messages, spec["schema"], max_tokens=120)
    except LLMError as exc:
        log.info("fact extraction skipped: %s", exc)
        return Facts()
    return facts_from_extraction(raw)


def facts_from_extraction(raw: dict[str, Any]) -> Facts:
    age = _number(raw.get("age_value"))
    age_months = None
    if age is not None and raw.get("age_unit") in _AGE_FACTOR:
        age_months = age * _AGE_FACTOR[raw["age_unit"]]
        if not is_plausible("age_months", age_months):
            age_months = None
    temp = _number(raw.get("temperature_value"))
    if temp is not None and raw.get("temperature_unit") == "fahrenheit":
        temp = fahrenheit_to_celsius(temp)
    if temp is not None and (raw.get("temperature_unit") is None or not is_plausible("temperature_c", temp)):
        temp = None
    duration = _number(raw.get("duration_value"))
    hours = (
        duration * _HOURS[raw["duration_unit"]]
        if duration is not None and raw.get("duration_unit") in _HOURS
        else None
    )
    sex = raw.get("sex") if raw.get("sex") in ("female", "male") else None
    pregnant = raw.get("pregnant") if isinstance(raw.get("pregnant"), bool) else None
    return Facts(
        age_months=age_months,
        sex=sex,
        pregnant=pregnant,
        duration_hours=hours if hours is None or hours >= 0 else None,
        vitals=VitalSigns(temperature_c=temp),
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
