"""Chronic-care follow-up for hypertension and type 2 diabetes: pure rules over a patient's readings.

    evaluate(patient, today) -> FollowUpStatus(due_date, overdue_days, controlled, worsening, urgent,
                                               risk_score, reasons=[Reason(rule_id, zh, en)], ...)
    overdue_list(patients, today) -> [ClinicListEntry] — overdue, worsening or urgent patients, urgent first,
                                               then risk score, then days overdue
    classify_reading(condition, reading) -> ReadingClass(level "urgent"|"poorly_controlled"|"on_target", ...)

The numbers live in tools/data/chronic_plans.yaml, each with its guideline source. The rules (why they are
shaped like this):

* Controlled = the latest relevant reading is on target (hypertension: blood pressure; diabetes: glucose
  or HbA1c, each against its own target). No reading on file = not known to be controlled.
* Due date = last visit + 90 days when controlled. When not: within 14 days of the first reading of the
  current off-target run — counted from the last visit if the run started before it (the visit saw it) —
  and never later than the routine 90 days. No reading on file: last visit + 14 days.
* Urgent = a reading *after* the last visit meets an urgent threshold (the visit handled earlier ones).
  Urgent thresholds are checked on every reading, whatever the registered conditions: a very high blood
  pressure in a patient registered for diabetes is still dangerous.
* Worsening = a plan's mean-rise rule (this project's alert rule; the guidelines give no number).
* A patient with no visit on record is overdue (they have never been followed up).
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tools.readings import GlucoseContext
from tools.triage_models import Lang

Condition = Literal["hypertension", "diabetes"]
ReadingKind = Literal["bp", "glucose", "hba1c"]
Level = Literal["urgent", "poorly_controlled", "on_target"]
Op = Literal["<", "<=", ">", ">="]

PLANS_PATH = Path(__file__).resolve().parent / "data" / "chronic_plans.yaml"
_EPS = 1e-9  # float tolerance of threshold comparisons (7.0 must equal 7.0)


# ---------------------------------------------------------------------------------------------- plan data


class Source(BaseModel):
    doc_id: str
    section: str


class Text(BaseModel):
    zh: str
    en: str


class Threshold(BaseModel):
    id: str
    measure: str
    op: Op
    value: float
    name: Text | None = None
    source: Source


class FollowUp(BaseModel):
    controlled_days: int = Field(gt=0)
    uncontrolled_days: int = Field(gt=0)
    rule_id: str
    source: Source


class ControlRule(BaseModel):
    id: str
    rule: Literal["latest_reading_off_target"]
    name: Text
    source: Source


class WorseningRule(BaseModel):
    id: str
    kind: Literal["mean_rise"]
    measure: str
    window: int = Field(ge=1)
    min_rise: float = Field(gt=0)
    name: Text
    source: Source


class ConditionPlan(BaseModel):
    name: Text
    follow_up: FollowUp
    targets: list[Threshold]
    poorly_controlled: ControlRule
    urgent: list[Threshold]
    worsening: list[WorseningRule]

    @property
    def measures(self) -> set[str]:
        return {t.measure for t in self.targets} | {t.measure for t in self.urgent}


class RiskWeights(BaseModel):
    urgent: int
    worsening: int
    uncontrolled: int
    no_readings: int
    overdue: int
    overdue_per_week: int
    overdue_weeks_cap: int
    comorbid: int
    source: Source


class ChronicPlans(BaseModel):
    version: str
    conditions: dict[Condition, ConditionPlan]
    risk_weights: RiskWeights

    def sources(self) -> set[tuple[str, str]]:
        found = {(self.risk_weights.source.doc_id, self.risk_weights.source.section)}
        for plan in self.conditions.values():
            items: list[Threshold | FollowUp | ControlRule | WorseningRule] = [
                plan.follow_up,
                plan.poorly_controlled,
                *plan.targets,
                *plan.urgent,
                *plan.worsening,
            ]
            found |= {(i.source.doc_id, i.source.section) for i in items}
        return found


@lru_cache(maxsize=4)
def load_plans(path: Path = PLANS_PATH) -> ChronicPlans:
    return ChronicPlans.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


# ---------------------------------------------------------------------------------------------- patients


class Reading(BaseModel):
    """One measurement, already parsed and in canonical units (mmHg, mmol/L, percent)."""

    model_config = ConfigDict(extra="forbid")

    taken_on: date
    kind: ReadingKind
    systolic: int | None = None
    diastolic: int | None = None
    glucose_mmol: float | None = None
    context: GlucoseContext | None = None  # glucose only
    hba1c_percent: float | None = None

    @model_validator(mode="after")
    def _fields_match_kind(self) -> Reading:
        needed = {
            "bp": (self.systolic, self.diastolic),
            "glucose": (self.glucose_mmol, self.context),
            "hba1c": (self.hba1c_percent,),
        }[self.kind]
        if any(v is None for v in needed):
            raise ValueError(f"a {self.kind} reading needs its value fields")
        return self

    def measures(self) -> dict[str, float]:
        if self.kind == "bp":
            assert self.systolic is not None and self.diastolic is not None
            return {"systolic": self.systolic, "diastolic": self.diastolic}
        if self.kind == "glucose":
            assert self.glucose_mmol is not None
            return {f"glucose_{self.context}": self.glucose_mmol, "glucose_any": self.glucose_mmol}
        assert self.hba1c_percent is not None
        return {"hba1c": self.hba1c_percent}

    def describe(self) -> str:
        if self.kind == "bp":
            return f"{self.systolic}/{self.diastolic} mmHg"
        if self.kind == "glucose":
            return f"{self.glucose_mmol:g} mmol/L"
        return f"HbA1c {self.hba1c_percent:g}%"


class ChronicPatient(BaseModel):
    id: str
    name: str
    conditions: list[Condition] = Field(min_length=1)
    last_visit: date | None = None
    readings: list[Reading] = Field(default_factory=list)
    clinic_id: str
    family_doctor: str | None = None
    village: str | None = None


class Reason(BaseModel):
    rule_id: str
    code: Literal["overdue", "no_visit", "uncontrolled", "no_readings", "worsening", "urgent"]
    zh: str
    en: str

    def text(self, lang: Lang) -> str:
        return self.zh if lang == "zh" else self.en


class ReadingClass(BaseModel):
    level: Level
    rule_ids: list[str]  # the urgent rules met, or the targets missed
    reasons: list[Text]


class ConditionStatus(BaseModel):
    condition: Condition
    due_date: date | None
    controlled: bool
    worsening: bool
    urgent: bool
    latest: Reading | None


class FollowUpStatus(BaseModel):
    patient_id: str
    due_date: date | None  # None: never visited
    overdue: bool
    overdue_days: int  # 0 when not overdue (or never visited)
    controlled: bool
    worsening: bool
    urgent: bool
    risk_score: int
    reasons: list[Reason]
    conditions: list[ConditionStatus]

    @property
    def needs_attention(self) -> bool:
        return self.overdue or self.worsening or self.urgent


class ClinicListEntry(BaseModel):
    patient: ChronicPatient
    status: FollowUpStatus


# ---------------------------------------------------------------------------------------------- rules


def _holds(value: float, op: Op, threshold: float) -> bool:
    if op == "<":
        return value < threshold - _EPS
    if op == "<=":
        return value <= threshold + _EPS
    if op == ">":
        return value > threshold + _EPS
    return value >= threshold - _EPS


def _relevant(plan: ConditionPlan, reading: Reading) -> bool:
    return bool(plan.measures & set(reading.measures()))


def classify_reading(
    condition: Condition, reading: Reading, plans: ChronicPlans | None = None
) -> ReadingClass:
    """Urgent if any urgent threshold is met, else poorly controlled if any target is missed."""
    plan = (plans or load_plans()).conditions[condition]
    values = reading.measures()
    urgent = [t for t in plan.urgent if t.measure in values and _holds(values[t.measure], t.op, t.value)]
    if urgent:
        return ReadingClass(
            level="urgent",
            rule_ids=[t.id for t in urgent],
            reasons=[t.name for t in urgent if t.name is not None],
        )
    missed = [t for t in plan.targets if t.measure in values and not _holds(values[t.measure], t.op, t.value)]
    if missed:
        return ReadingClass(
            level="poorly_controlled",
            rule_ids=[t.id for t in missed],
            reasons=[_target_text(t, values[t.measure]) for t in missed],
        )
    return ReadingClass(level="on_target", rule_ids=[], reasons=[])


_MEASURE_NAMES = {
    "systolic": ("收缩压", "systolic", "mmHg"),
    "diastolic": ("舒张压", "diastolic", "mmHg"),
    "glucose_fasting": ("空腹血糖", "fasting glucose", "mmol/L"),
    "glucose_postprandial": ("餐后血糖", "after-meal glucose", "mmol/L"),
    "glucose_random": ("随机血糖", "random glucose", "mmol/L"),
    "glucose_any": ("血糖", "glucose", "mmol/L"),
    "hba1c": ("糖化血红蛋白", "HbA1c", "%"),
}


def _target_text(target: Threshold, value: float) -> Text:
    zh, en, unit = _MEASURE_NAMES.get(target.measure, (target.measure, target.measure, ""))
    return Text(
        zh=f"{zh} {value:g}{unit}，目标 {target.op} {target.value:g}{unit}",
        en=f"{en} {value:g} {unit}, target {target.op} {target.value:g} {unit}",
    )


def urgent_rules_met(reading: Reading, plans: ChronicPlans | None = None) -> list[Threshold]:
    """Every plan's urgent thresholds this reading meets (whatever the patient is registered for)."""
    plans = plans or load_plans()
    values = reading.measures()
    met: dict[str, Threshold] = {}
    for plan in plans.conditions.values():
        for t in plan.urgent:
            if t.measure in values and _holds(values[t.measure], t.op, t.value):
                met[t.id] = t
    return list(met.values())


def _mean_rise(series: list[float], window: int) -> float | None:
    if len(series) < 2 * window:
        return None
    last = series[-window:]
    before = series[-2 * window : -window]
    return sum(last) / window - sum(before) / window


def _sorted(readings: list[Reading]) -> list[Reading]:
    return sorted(readings, key=lambda r: r.taken_on)  # stable: same-day readings keep their order


def _evaluate_condition(
    condition: Condition, patient: ChronicPatient, today: date, plans: ChronicPlans, reasons: list[Reason]
) -> ConditionStatus:
    plan = plans.conditions[condition]
    name = plan.name
    readings = [r for r in _sorted(patient.readings) if r.taken_on <= today and _relevant(plan, r)]
    levels = [classify_reading(condition, r, plans).level for r in readings]
    last_visit = patient.last_visit
    fu = plan.follow_up

    controlled = bool(levels) and levels[-1] == "on_target"
    due: date | None = None
    if last_visit is not None:
        routine = last_visit + timedelta(days=fu.controlled_days)
        if controlled:
            due = routine
        elif not readings:
            due = last_visit + timedelta(days=fu.uncontrolled_days)
        else:
            run_start = len(levels)
            while run_start > 0 and levels[run_start - 1] != "on_target":
                run_start -= 1
            anchor = max(last_visit, readings[run_start].taken_on)
            due = min(routine, anchor + timedelta(days=fu.uncontrolled_days))
    if not readings:
        reasons.append(
            Reason(
                rule_id=plan.poorly_controlled.id,
                code="no_readings",
                zh=f"{name.zh}：没有任何读数记录",
                en=f"{name.en}: no reading on file",
            )
        )
    elif not controlled:
        latest = readings[-1]
        reasons.append(
            Reason(
                rule_id=plan.poorly_controlled.id,
                code="uncontrolled",
                zh=f"{name.zh}：最近一次读数 {latest.describe()}（{latest.taken_on}）未达标",
                en=f"{name.en}: latest reading {latest.describe()} ({latest.taken_on}) not on target",
            )
        )

    worsening = False
    for rule in plan.worsening:
        series = [r.measures()[rule.measure] for r in readings if rule.measure in r.measures()]
        rise = _mean_rise(series, rule.window)
        if rise is not None and rise >= rule.min_rise - _EPS:
            worsening = True
            reasons.append(
                Reason(
                    rule_id=rule.id,
                    code="worsening",
                    zh=f"{name.zh}读数上升：{rule.name.zh}（升高 {rise:.1f}）",
                    en=f"{name.en} readings rising: {rule.name.en} (up {rise:.1f})",
                )
            )
    return ConditionStatus(
        condition=condition,
        due_date=due,
        controlled=controlled,
        worsening=worsening,
        urgent=False,  # set from the urgent readings below (they are checked across all plans)
        latest=readings[-1] if readings else None,
    )


def evaluate(patient: ChronicPatient, today: date, plans: ChronicPlans | None = None) -> FollowUpStatus:
    plans = plans or load_plans()
    weights = plans.risk_weights
    reasons: list[Reason] = []
    statuses = [
        _evaluate_condition(c, patient, today, plans, reasons) for c in dict.fromkeys(patient.conditions)
    ]

    urgent_reasons: list[Reason] = []
    for reading in _sorted(patient.readings):
        if reading.taken_on > today or (
            patient.last_visit is not None and reading.taken_on <= patient.last_visit
        ):
            continue
        for rule in urgent_rules_met(reading, plans):
            assert rule.name is not None
            urgent_reasons.append(
                Reason(
                    rule_id=rule.id,
                    code="urgent",
                    zh=f"{reading.taken_on} 读数 {reading.describe()}：{rule.name.zh}",
                    en=f"{reading.taken_on} reading {reading.describe()}: {rule.name.en}",
                )
            )
            for s in statuses:
                if rule in plans.conditions[s.condition].urgent:
                    s.urgent = True
    urgent = bool(urgent_reasons)

    dues = [s.due_date for s in statuses if s.due_date is not None]
    due = min(dues) if dues else None
    overdue_days = max(0, (today - due).days) if due is not None else 0
    overdue = patient.last_visit is None or overdue_days > 0
    overdue_reasons: list[Reason] = []
    if patient.last_visit is None:
        overdue_reasons.append(
            Reason(
                rule_id=plans.conditions[statuses[0].condition].follow_up.rule_id,
                code="no_visit",
                zh="没有随访记录，需要安排首次随访",
                en="no follow-up visit on record: arrange the first one",
            )
        )
    elif overdue_days > 0:
        first = min(statuses, key=lambda s: s.due_date or date.max)
        overdue_reasons.append(
            Reason(
                rule_id=plans.conditions[first.condition].follow_up.rule_id,
                code="overdue",
                zh=f"随访已逾期 {overdue_days} 天（最晚应在 {due} 随访，上次随访 {patient.last_visit}）",
                en=f"follow-up {overdue_days} days overdue (due by {due}; last visit {patient.last_visit})",
            )
        )

    worsening = any(s.worsening for s in statuses)
    uncontrolled = sum(1 for s in statuses if not s.controlled and s.latest is not None)
    no_readings = sum(1 for s in statuses if s.latest is None)
    score = weights.urgent * urgent + weights.worsening * worsening
    score += weights.uncontrolled * uncontrolled + weights.no_readings * no_readings
    if overdue:
        score += weights.overdue + weights.overdue_per_week * min(
            overdue_days // 7, weights.overdue_weeks_cap
        )
    if len(statuses) > 1:
        score += weights.comorbid
    return FollowUpStatus(
        patient_id=patient.id,
        due_date=due,
        overdue=overdue,
        overdue_days=overdue_days,
        controlled=all(s.controlled for s in statuses),
        worsening=worsening,
        urgent=urgent,
        risk_score=score,
        # most pressing first: urgent, overdue, worsening, control
        reasons=urgent_reasons
        + overdue_reasons
        + [r for r in reasons if r.code == "worsening"]
        + [r for r in reasons if r.code != "worsening"],
        conditions=statuses,
    )


def sort_key(status: FollowUpStatus) -> tuple[int, int, int, str]:
    """Urgent first, then higher risk, then more days overdue; the id keeps the order stable."""
    return (0 if status.urgent else 1, -status.risk_score, -status.overdue_days, status.patient_id)


def overdue_list(
    patients: list[ChronicPatient], today: date, plans: ChronicPlans | None = None
) -> list[ClinicListEntry]:
    """The clinic's worklist: patients overdue for follow-up, worsening or urgent, most pressing first."""
    plans = plans or load_plans()
    entries = []
    for patient in patients:
        status = evaluate(patient, today, plans)
        if status.needs_attention:
            entries.append(ClinicListEntry(patient=patient, status=status))
    entries.sort(key=lambda e: sort_key(e.status))
    return entries


class TriageFlag(BaseModel):
    """The triage engine's reading of an urgent measurement (plus any symptoms given with it)."""

    level: str
    level_label: str
    rule_ids: list[str]  # vital-sign rules and red flags that fired
    advice: str


def triage_for_reading(reading: Reading, symptoms: str = "", lang: Lang = "zh") -> TriageFlag | None:
    """Run the triage engine on the reading as text ("血压190/120 头痛"); None for HbA1c, which has no
    triage rule. The engine decides the level; this only builds its input."""
    from tools.triage import assess  # heavy import: only when a reading needs it
    from tools.triage_models import TriageInput

    if reading.kind == "bp":
        text = (
            f"血压{reading.systolic}/{reading.diastolic}"
            if lang == "zh"
            else (f"blood pressure {reading.systolic}/{reading.diastolic}")
        )
    elif reading.kind == "glucose":
        text = (
            f"血糖{reading.glucose_mmol:g}mmol/L"
            if lang == "zh"
            else f"blood glucose {reading.glucose_mmol:g} mmol/L"
        )
    else:
        return None
    if symptoms.strip():
        text += ("，" if lang == "zh" else ", ") + symptoms.strip()[:500]
    result = assess(TriageInput(text=text, lang=lang))
    fired = [f.rule_id for f in result.red_flags]
    fired += [r.rule_id for r in result.rule_trace if r.rule_id.startswith("VS-") and r.rule_id not in fired]
    return TriageFlag(
        level=result.level.value, level_label=result.level_label, rule_ids=fired, advice=result.advice
    )
