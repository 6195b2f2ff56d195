"""Loads the versioned triage rule data (tools/data/*.yaml) into validated models.

Every rule carries an id and a `source` ("<doc-id>#<section-id>") pointing at the guideline
text in knowledge/corpus that justifies it; tests check that each source exists.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tools.triage_models import Level

DATA_DIR = Path(__file__).resolve().parent / "data"
RULE_FILES = ("concepts", "red_flags", "complaints", "questions", "vitals", "advice", "typos")


class Bilingual(BaseModel):
    zh: str
    en: str

    def get(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


class ConceptDef(BaseModel):
    zh: list[str] = Field(default_factory=list)
    en: list[str] = Field(default_factory=list)


class PatientCondition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_years: float | None = None
    max_years: float | None = None
    max_months: float | None = None
    pregnant: bool | None = None
    min_pregnancy_weeks: float | None = None


class RedFlagRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: Bilingual
    all: list[str] = Field(default_factory=list)
    any: list[str] = Field(default_factory=list)
    also_any: list[str] = Field(default_factory=list)
    unless: list[str] = Field(default_factory=list)
    patient: PatientCondition = Field(default_factory=PatientCondition)
    level: Level
    if_mild: Level | None = None
    if_reassured: Level | None = None  # when the patient is reported well / without symptoms
    departments: list[str]
    source: str
    advice: Bilingual | None = None

    @model_validator(mode="after")
    def _needs_condition(self) -> RedFlagRule:
        if not self.all and not self.any:
            raise ValueError(f"red flag {self.id} needs `all` or `any`")
        return self

    def concepts(self) -> list[str]:
        return [*self.all, *self.any, *self.also_any, *self.unless]


class ComplaintRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Level
    mild_level: Level | None = None
    severe_level: Level | None = None
    chronic_level: Level | None = None
    long_after_hours: float | None = None
    long_level: Level | None = None
    departments: list[str]
    child_departments: list[str] = Field(default_factory=list)
    well_level: Level | None = None  # when the patient is reported well / without symptoms
    reassured_by: list[str] = Field(default_factory=list)  # concepts that make it mild ("can walk")
    subsumed_by: list[str] = Field(default_factory=list)  # skip when a more specific concept is present
    primary_care: bool = False
    questions: list[str] = Field(default_factory=list)
    source: str
    weight: float = 1.0


class QuestionOnly(BaseModel):
    sex: Literal["female_or_unknown"] | None = None
    min_years: float | None = None
    max_years: float | None = None


class QuestionDef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: int
    kind: Literal["yes_no", "number", "choice", "text"] = "yes_no"
    fact: str | None = None
    concepts: list[str] = Field(default_factory=list)
    only: QuestionOnly | None = None
    zh: str
    en: str
    yes_text: Bilingual | None = None
    no_text: Bilingual | None = None
    inverted: bool = False  # "yes" is the reassuring answer (e.g. "can you walk?")


class VitalRule(BaseModel):
    id: str
    vital: str
    op: Literal["<", "<=", ">", ">="]
    value: float
    bands: list[str]
    level: Level
    source: str
    name: Bilingual


class VitalCombo(BaseModel):
    id: str
    vitals: list[str]
    any: list[str]
    level: Level
    source: str
    name: Bilingual


class LevelText(BaseModel):
    label: Bilingual
    advice: Bilingual
    source: str


class AdviceBook(BaseModel):
    levels: dict[Level, LevelText]
    care_settings: dict[str, Bilingual]
    uncertain: Bilingual
    unrecognised: Bilingual
    disclaimer: Bilingual
    reasons: dict[str, Bilingual]


class Rulebook(BaseModel):
    version: str
    concepts: dict[str, ConceptDef]
    red_flags: list[RedFlagRule]
    complaints: dict[str, ComplaintRule]
    questions: dict[str, QuestionDef]
    vital_rules: list[VitalRule]
    vital_combos: list[VitalCombo]
    advice: AdviceBook
    typos: dict[str, str]

    @model_validator(mode="after")
    def _references_resolve(self) -> Rulebook:
        known = set(self.concepts)
        problems: list[str] = []
        for rule in self.red_flags:
            problems += [f"{rule.id}: unknown concept {c}" for c in rule.concepts() if c not in known]
        for name, comp in self.complaints.items():
            if name not in known:
                problems.append(f"complaint {name} is not a concept")
            problems += [f"{name}: unknown question {q}" for q in comp.questions if q not in self.questions]
            problems += [f"{name}: unknown concept {c}" for c in comp.subsumed_by if c not in known]
        for qid, q in self.questions.items():
            problems += [f"question {qid}: unknown concept {c}" for c in q.concepts if c not in known]
        for combo in self.vital_combos:
            problems += [f"{combo.id}: unknown concept {c}" for c in combo.any if c not in known]
        if problems:
            raise ValueError("rule data does not resolve:\n" + "\n".join(problems))
        return self

    def sources(self) -> set[str]:
        found = {r.source for r in self.red_flags}
        found |= {c.source for c in self.complaints.values()}
        found |= {v.source for v in self.vital_rules} | {c.source for c in self.vital_combos}
        found |= {t.source for t in self.advice.levels.values()}
        return found


def _read(name: str, data_dir: Path) -> dict:
    with (data_dir / f"{name}.yaml").open(encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


@lru_cache(maxsize=4)
def load_rulebook(data_dir: Path = DATA_DIR) -> Rulebook:
    raw = {name: _read(name, data_dir) for name in RULE_FILES}
    digest = hashlib.sha256()
    for name in RULE_FILES:
        digest.update((data_dir / f"{name}.yaml").read_bytes())
    return Rulebook(
        version=f"{raw['red_flags'].get('version', '0')}+{digest.hexdigest()[:10]}",
        concepts=raw["concepts"]["concepts"],
        red_flags=raw["red_flags"]["rules"],
        complaints=raw["complaints"]["complaints"],
        questions=raw["questions"]["questions"],
        vital_rules=raw["vitals"]["rules"],
        vital_combos=raw["vitals"].get("combos", []),
        advice=raw["advice"],
        typos=raw["typos"].get("replacements", {}),
    )
