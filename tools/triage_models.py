"""Contract of the triage engine: its input facts and its JSON-serialisable result.

This is a stable contract: the CLI (`daozhen triage --json`), the chat session and
later the server all speak it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Level(StrEnum):
    emergency_ambulance = "emergency_ambulance"  # 立即拨打120
    emergency = "emergency"  # 立即去急诊
    urgent = "urgent"  # 24小时内就医
    routine = "routine"  # 近期门诊就诊
    self_care = "self_care"  # 居家护理观察

    @property
    def rank(self) -> int:
        """Higher is more urgent."""
        return LEVEL_ORDER.index(self)


LEVEL_ORDER: list[Level] = [
    Level.self_care,
    Level.routine,
    Level.urgent,
    Level.emergency,
    Level.emergency_ambulance,
]


def max_level(*levels: Level) -> Level:
    return max(levels, key=lambda lv: lv.rank)


class CareSetting(StrEnum):
    ambulance_ed = "ambulance_ed"
    emergency_department = "emergency_department"
    hospital_clinic = "hospital_clinic"
    community = "community"  # community health centre or family doctor
    home = "home"


Lang = Literal["zh", "en"]
Sex = Literal["female", "male"]


class VitalSigns(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature_c: float | None = None
    heart_rate: float | None = Field(default=None, description="beats per minute")
    respiratory_rate: float | None = Field(default=None, description="breaths per minute")
    spo2: float | None = Field(default=None, description="percent")
    systolic_bp: float | None = Field(default=None, description="mmHg")
    diastolic_bp: float | None = Field(default=None, description="mmHg")
    glucose_mmol: float | None = Field(default=None, description="blood glucose, mmol/L")


class Facts(BaseModel):
    """Structured facts about the patient; every field optional."""

    model_config = ConfigDict(extra="forbid")

    age_months: float | None = Field(default=None, ge=0, le=1560)
    sex: Sex | None = None
    pregnant: bool | None = None
    pregnancy_weeks: float | None = Field(default=None, ge=0, le=45)
    duration_hours: float | None = Field(default=None, ge=0)
    vitals: VitalSigns = Field(default_factory=VitalSigns)
    chronic_conditions: list[str] = Field(default_factory=list)


class TriageInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=4000)
    lang: Lang | None = None  # detected from text when absent
    facts: Facts = Field(default_factory=Facts)


class DepartmentChoice(BaseModel):
    id: str
    name: str  # in the output language
    reason: str


class RedFlagMatch(BaseModel):
    rule_id: str
    name: str
    level: Level
    evidence: str  # the words in the input that matched


class MissingFact(BaseModel):
    """A question whose answer could change the level; the most informative comes first."""

    id: str  # stable question id, e.g. "age", "temperature", "q.breathing"
    question: str  # in the output language
    kind: Literal["yes_no", "number", "choice", "text"] = "yes_no"
    fact: str | None = None  # the Facts field it fills (dotted, e.g. "vitals.temperature_c"), if any
    # For yes/no questions: a sentence (in the output language) the conversation can add to the
    # patient's description when the answer is yes / no, so the engine re-reads it as text.
    yes_text: str | None = None
    no_text: str | None = None


class Citation(BaseModel):
    doc_id: str
    section: str


class RuleFiring(BaseModel):
    rule_id: str
    effect: str  # e.g. "level>=emergency", "department+=cardiology"
    detail: str = ""


class FactWarning(BaseModel):
    code: str  # stable, e.g. "implausible_temperature", "contradiction_fever"
    message: str


class TriageResult(BaseModel):
    level: Level
    level_label: str  # e.g. 立即拨打120 / Call 120 now
    care_setting: CareSetting
    departments: list[DepartmentChoice] = Field(max_length=3)
    red_flags: list[RedFlagMatch]
    missing: list[MissingFact]
    advice: str
    uncertain: bool
    uncertainty_reasons: list[str]
    warnings: list[FactWarning]
    facts: Facts  # facts as the engine understood them (given + extracted from text)
    citations: list[Citation]
    rule_trace: list[RuleFiring]
    lang: Lang
    engine_version: str
    knowledge_version: str
    disclaimer: str
