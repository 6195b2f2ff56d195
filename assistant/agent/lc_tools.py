"""LangChain tools the agent calls: triage and guideline search, with pydantic argument schemas.

The router chooses the tool in code and the arguments come from rules (plus JSON-schema
constrained LLM extraction), so a small model never free-styles a tool call.
"""

from __future__ import annotations

from typing import Any

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from tools.triage import assess
from tools.triage_models import Facts, Lang, TriageInput, VitalSigns


class TriageArgs(BaseModel):
    """Arguments of the triage tool."""

    text: str = Field(min_length=1, max_length=4000, description="the patient's description")
    lang: Lang | None = None
    age_months: float | None = Field(default=None, ge=0, le=1560)
    sex: str | None = Field(default=None, pattern="^(female|male)$")
    pregnant: bool | None = None
    duration_hours: float | None = Field(default=None, ge=0)
    temperature_c: float | None = Field(default=None, ge=34, le=43.5)


class GuidelineSearchArgs(BaseModel):
    """Arguments of the guideline search tool."""

    query: str = Field(min_length=1, max_length=1000)
    lang: Lang | None = None
    k: int = Field(default=2, ge=1, le=5)


def _run_triage(**kwargs: Any) -> dict[str, Any]:
    args = TriageArgs(**kwargs)
    facts = Facts(
        age_months=args.age_months,
        sex=args.sex,  # type: ignore[arg-type]
        pregnant=args.pregnant,
        duration_hours=args.duration_hours,
        vitals=VitalSigns(temperature_c=args.temperature_c),
    )
    return assess(TriageInput(text=args.text, lang=args.lang, facts=facts)).model_dump(mode="json")


def make_triage_tool() -> StructuredTool:
    return StructuredTool.from_function(
        func=_run_triage,
        name="triage",
        description="Deterministic triage: urgency level, departments, red flags, next questions.",
        args_schema=TriageArgs,
    )


def make_guideline_tool(kb: Any) -> StructuredTool:
    def search(query: str, lang: Lang | None = None, k: int = 2) -> list[dict[str, Any]]:
        if kb is None:
            return []
        return [hit.to_dict() for hit in kb.search(query, k=k, lang=lang)]

    return StructuredTool.from_function(
        func=search,
        name="guideline_search",
        description="Search the clinic's guideline documents; returns sections with citations.",
        args_schema=GuidelineSearchArgs,
    )
