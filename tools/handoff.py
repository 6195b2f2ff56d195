"""Clinician handoff: an SBAR summary of a conversation and its FHIR R4 export. Pure: no I/O
besides the cached rule data (for labels in the clinician's language).

    sbar = build_sbar(turns, decisions, facts, readings, "zh")
    bundle = sbar_to_fhir(sbar, patient_ref="patient-123")   # Bundle (document) with a Composition

S (situation): who asks about what, the latest words, the current level. B (background): the facts
the engine used, readings, what the patient said. A (assessment): the engine's decision — level,
red flags, rule ids, engine and knowledge versions — taken from the recorded decisions, never
from prose; the most urgent decision wins (a later calmer turn does not lower it). R
(recommendation): care setting, departments, the level's advice. Sources: the guideline sections
the rules cite.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from tools.triage_models import (
    CareSetting,
    Citation,
    DepartmentChoice,
    Facts,
    Lang,
    Level,
    RedFlagMatch,
    TriageResult,
)

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SBAR_SYSTEM = "urn:daozhen:sbar"
LEVEL_SYSTEM = "urn:daozhen:triage-level"
RULE_SYSTEM = "urn:daozhen:rule"
XHTML_NS = "http://www.w3.org/1999/xhtml"
SUMMARY_NOTE = ("34133-9", "Summary of episode note")
EMERGENCY_LEVELS = frozenset({Level.emergency, Level.emergency_ambulance})


# ------------------------------------------------------------------------------ inputs


class MeasuredReading(BaseModel):
    """A home reading in canonical units: blood pressure in mmHg, glucose in mmol/L."""

    kind: Literal["bp", "glucose"]
    systolic: float | None = None
    diastolic: float | None = None
    mmol_l: float | None = None
    context: str | None = None  # glucose: fasting / postprandial / random
    text: str = ""  # as the patient typed it
    note: str | None = None  # e.g. "converted from kPa"
    measured_at: datetime | None = None
    level: Level = Level.self_care  # what the rules made of it
    rule_ids: list[str] = Field(default_factory=list)

    def display(self, lang: str) -> str:
        if self.kind == "bp":
            name = "血压" if lang == "zh" else "BP"
            return f"{name} {self.systolic:g}/{self.diastolic:g} mmHg"
        name = "血糖" if lang == "zh" else "glucose"
        return f"{name} {self.mmol_l:.1f} mmol/L"


class Turn(BaseModel):
    role: str  # "user" | "assistant" | "error"
    text: str
    at: str | None = None


class HandoffDecision(BaseModel):
    """One recorded decision with its audit fields (server/store.py StoredDecision, or a
    follow-up answer). `result` is the engine's full result when it was kept."""

    level: Level
    rule_ids: list[str] = Field(default_factory=list)
    engine_version: str = "unknown"
    knowledge_version: str = "unknown"
    input_text: str = ""
    created: str | None = None
    result: TriageResult | None = None
    red_flags: list[RedFlagMatch] = Field(default_factory=list)
    citations: list[Citation] = Field(default_factory=list)


def _plain(item: Any) -> Any:
    if isinstance(item, BaseModel):
        return item.model_dump()
    if is_dataclass(item) and not isinstance(item, type):
        return asdict(item)
    return item


def as_turn(item: Any) -> Turn:
    data = _plain(item)
    if isinstance(data, dict) and "at" not in data and "created" in data:
        data = {**data, "at": data["created"]}
    return Turn.model_validate(data)


def as_decision(item: Any) -> HandoffDecision:
    """A StoredDecision (result as a dict), a dict, a HandoffDecision or a bare TriageResult."""
    if isinstance(item, HandoffDecision):
        return item
    if isinstance(item, TriageResult):
        item = {
            "level": item.level,
            "rule_ids": [f.rule_id for f in item.rule_trace],
            "engine_version": item.engine_version,
            "knowledge_version": item.knowledge_version,
            "result": item,
        }
    data = dict(_plain(item))
    result = data.get("result")
    if isinstance(result, dict):
        try:
            data["result"] = TriageResult.model_validate(result)
        except ValidationError:  # an older stored format: keep the audit fields, drop the rest
            data["result"] = None
    decision = HandoffDecision.model_validate(data)
    if decision.result is not None:
        if not decision.red_flags:
            decision.red_flags = list(decision.result.red_flags)
        if not decision.citations:
            decision.citations = list(decision.result.citations)
    return decision


# ------------------------------------------------------------------------------ output


class FactItem(BaseModel):
    field: str
    label: str
    value: str


class SbarSituation(BaseModel):
    text: str
    presenting: str  # the first thing the patient said
    latest: str  # the last thing the patient said
    started_at: str | None
    user_turns: int


class SbarBackground(BaseModel):
    text: str
    facts: list[FactItem]
    readings: list[MeasuredReading]
    statements: list[str]  # the patient's own words, in order


class SbarAssessment(BaseModel):
    text: str
    level: Level | None  # None: no decision recorded yet
    level_label: str
    red_flags: list[RedFlagMatch]
    rule_ids: list[str]  # of the decisive (most urgent, latest) decision
    all_rule_ids: list[str]
    engine_version: str | None
    knowledge_version: str | None
    decided_at: str | None
    uncertain: bool
    uncertainty_reasons: list[str]
    history: list[dict[str, Any]]  # [{at, level}] every decision in order
    latest_level: Level | None = None  # the last decision's level, when lower than the decisive one


class SbarRecommendation(BaseModel):
    text: str
    care_setting: CareSetting | None
    care_setting_label: str
    departments: list[DepartmentChoice]
    advice: str
    call_120: bool


class SbarSection(BaseModel):
    code: Literal["S", "B", "A", "R"]
    title: str
    text: str


class SBAR(BaseModel):
    lang: Lang
    generated_at: str
    title: str
    situation: SbarSituation
    background: SbarBackground
    assessment: SbarAssessment
    recommendation: SbarRecommendation
    sources: list[Citation]
    sections: list[SbarSection]
    disclaimer: str


# ------------------------------------------------------------------------------ wording

_T: dict[str, tuple[str, str]] = {
    "title": ("交接摘要（SBAR）", "Handoff summary (SBAR)"),
    "S": ("S 现状", "S Situation"),
    "B": ("B 背景", "B Background"),
    "A": ("A 评估", "A Assessment"),
    "R": ("R 建议", "R Recommendation"),
    "none": ("无", "none"),
    "not_assessed": ("尚未评估", "not yet assessed"),
    "disclaimer": (
        "本摘要由导诊系统根据患者自述和规则引擎生成，供医护参考，不是诊断。",
        "Generated by Daozhen from the patient's own account and the rule engine, for clinicians; "
        "not a diagnosis.",
    ),
}
_FACT_LABELS: dict[str, tuple[str, str]] = {
    "age_months": ("年龄", "Age"),
    "sex": ("性别", "Sex"),
    "pregnant": ("怀孕", "Pregnant"),
    "pregnancy_weeks": ("孕周", "Pregnancy weeks"),
    "duration_hours": ("病程", "Duration"),
    "vitals.temperature_c": ("体温", "Temperature"),
    "vitals.heart_rate": ("心率", "Heart rate"),
    "vitals.respiratory_rate": ("呼吸", "Respiratory rate"),
    "vitals.spo2": ("血氧", "SpO2"),
    "vitals.systolic_bp": ("收缩压", "Systolic BP"),
    "vitals.diastolic_bp": ("舒张压", "Diastolic BP"),
    "vitals.glucose_mmol": ("血糖", "Glucose"),
    "chronic_conditions": ("基础疾病", "Conditions"),
}
_UNITS = {
    "vitals.temperature_c": "℃",
    "vitals.heart_rate": "/min",
    "vitals.respiratory_rate": "/min",
    "vitals.spo2": "%",
    "vitals.systolic_bp": "mmHg",
    "vitals.diastolic_bp": "mmHg",
    "vitals.glucose_mmol": "mmol/L",
}
_LEVEL_SETTING = {
    Level.emergency_ambulance: CareSetting.ambulance_ed,
    Level.emergency: CareSetting.emergency_department,
    Level.urgent: CareSetting.hospital_clinic,
    Level.routine: CareSetting.hospital_clinic,
    Level.self_care: CareSetting.home,
}


def _t(key: str, lang: Lang) -> str:
    zh, en = _T[key]
    return zh if lang == "zh" else en


@lru_cache(maxsize=1)
def _rules() -> Any:
    from tools.rulebook import load_rulebook

    return load_rulebook()


@lru_cache(maxsize=1)
def _catalogue() -> Any:
    from tools.departments import load_catalogue

    return load_catalogue()


def level_label(level: Level, lang: Lang) -> str:
    return str(_rules().advice.levels[level].label.get(lang))


def _red_flag_name(flag: RedFlagMatch, lang: Lang) -> str:
    """The red flag's name in the clinician's language (the stored one is in the patient's)."""
    rules = _rules()
    for rule in rules.red_flags:
        if rule.id == flag.rule_id:
            return str(rule.name.get(lang))
    for rule in [*rules.vital_rules, *rules.vital_combos]:
        if rule.id == flag.rule_id:
            return str(rule.name.get(lang))
    return flag.name


def _department(choice: DepartmentChoice, lang: Lang) -> DepartmentChoice:
    dept = _catalogue().departments.get(choice.id)
    return choice.model_copy(update={"name": dept.name(lang)}) if dept else choice


def _age_text(months: float, lang: Lang) -> str:
    if months < 1:
        days = round(months * 30.4)
        return f"{days}天" if lang == "zh" else f"{days} days"
    if months < 24:
        return f"{months:g}个月" if lang == "zh" else f"{months:g} months"
    years = months / 12
    return f"{years:.0f}岁" if lang == "zh" else f"{years:.0f} years"


def _fact_value(path: str, value: Any, lang: Lang) -> str:
    if path == "age_months":
        return _age_text(float(value), lang)
    if path == "sex":
        return {"female": ("女", "female"), "male": ("男", "male")}[value][0 if lang == "zh" else 1]
    if isinstance(value, bool):
        return ("是" if value else "否") if lang == "zh" else ("yes" if value else "no")
    if path == "duration_hours":
        hours = float(value)
        if hours >= 48:
            return f"{hours / 24:g}天" if lang == "zh" else f"{hours / 24:g} days"
        return f"{hours:g}小时" if lang == "zh" else f"{hours:g} hours"
    if path == "chronic_conditions":
        return "、".join(value) if lang == "zh" else ", ".join(value)
    unit = _UNITS.get(path, "")
    return f"{value:g} {unit}".strip() if isinstance(value, float | int) else str(value)


def fact_items(facts: Facts, lang: Lang) -> list[FactItem]:
    items: list[FactItem] = []
    data = facts.model_dump()
    flat = {k: v for k, v in data.items() if k != "vitals"}
    flat.update({f"vitals.{k}": v for k, v in data["vitals"].items()})
    for path, (zh, en) in _FACT_LABELS.items():
        value = flat.get(path)
        if value is None or value == []:
            continue
        items.append(
            FactItem(field=path, label=zh if lang == "zh" else en, value=_fact_value(path, value, lang))
        )
    return items


def readings_from_facts(facts: Facts, at: datetime | None = None) -> list[MeasuredReading]:
    """Blood pressure and glucose the patient gave in a chat, as readings for the summary."""
    vitals = facts.vitals
    out: list[MeasuredReading] = []
    if vitals.systolic_bp is not None and vitals.diastolic_bp is not None:
        out.append(
            MeasuredReading(
                kind="bp", systolic=vitals.systolic_bp, diastolic=vitals.diastolic_bp, measured_at=at
            )
        )
    if vitals.glucose_mmol is not None:
        out.append(MeasuredReading(kind="glucose", mmol_l=vitals.glucose_mmol, measured_at=at))
    return out


def _join(items: Iterable[str], lang: Lang) -> str:
    return ("、" if lang == "zh" else ", ").join(items)


def _quote(text: str, lang: Lang, limit: int = 200) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"“{text}”" if lang == "zh" else f'"{text}"'


# ------------------------------------------------------------------------------ SBAR


def _decisive(decisions: list[HandoffDecision]) -> HandoffDecision | None:
    """The most urgent decision; among equals the latest (its facts are the most complete)."""
    best: HandoffDecision | None = None
    for d in decisions:
        if best is None or d.level.rank >= best.level.rank:
            best = d
    return best


def build_sbar(
    turns: Sequence[Any],
    decisions: Sequence[Any],
    facts: Facts | None,
    readings: Sequence[MeasuredReading] | None,
    lang: Lang,
    *,
    now: datetime | None = None,
    extra_sources: Sequence[Citation] = (),
    context: str | None = None,
) -> SBAR:
    """context: what kind of conversation this was, put first in S (e.g. "术后随访 day3")."""
    turn_list = [as_turn(t) for t in turns]
    decision_list = [as_decision(d) for d in decisions]
    facts = facts or Facts()
    reading_list = list(readings or [])
    generated = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    user_words = [t.text for t in turn_list if t.role == "user"]
    chosen = _decisive(decision_list)

    assessment = _assessment(decision_list, chosen, lang)
    recommendation = _recommendation(chosen, reading_list, lang)
    situation = _situation(turn_list, user_words, assessment, lang)
    if context:
        situation.text = f"{context}。{situation.text}" if lang == "zh" else f"{context}. {situation.text}"
    background = _background(facts, reading_list, user_words, lang)
    sources: dict[tuple[str, str], Citation] = {}
    for d in decision_list:
        for c in d.citations:
            sources.setdefault((c.doc_id, c.section), c)
    for c in extra_sources:
        sources.setdefault((c.doc_id, c.section), c)
    sections = [
        SbarSection(code="S", title=_t("S", lang), text=situation.text),
        SbarSection(code="B", title=_t("B", lang), text=background.text),
        SbarSection(code="A", title=_t("A", lang), text=assessment.text),
        SbarSection(code="R", title=_t("R", lang), text=recommendation.text),
    ]
    return SBAR(
        lang=lang,
        generated_at=generated,
        title=_t("title", lang),
        situation=situation,
        background=background,
        assessment=assessment,
        recommendation=recommendation,
        sources=list(sources.values()),
        sections=sections,
        disclaimer=_t("disclaimer", lang),
    )


def _assessment(
    decisions: list[HandoffDecision], chosen: HandoffDecision | None, lang: Lang
) -> SbarAssessment:
    if chosen is None:
        text = "尚无规则引擎的分诊结论。" if lang == "zh" else "No triage decision from the rule engine yet."
        return SbarAssessment(
            text=text,
            level=None,
            level_label=_t("not_assessed", lang),
            red_flags=[],
            rule_ids=[],
            all_rule_ids=[],
            engine_version=None,
            knowledge_version=None,
            decided_at=None,
            uncertain=True,
            uncertainty_reasons=[],
            history=[],
        )
    flags: dict[str, RedFlagMatch] = {}
    for d in decisions:
        for f in d.red_flags:
            flags.setdefault(f.rule_id, f.model_copy(update={"name": _red_flag_name(f, lang)}))
    red_flags = sorted(flags.values(), key=lambda f: -f.level.rank)
    all_ids = list(dict.fromkeys(i for d in decisions for i in d.rule_ids))
    result = chosen.result
    uncertain = bool(result and result.uncertain)
    reasons = list(result.uncertainty_reasons) if result else []
    label = level_label(chosen.level, lang)
    latest = decisions[-1].level if decisions[-1].level.rank < chosen.level.rank else None
    shown = (f"{f.name}（{f.evidence}）" if lang == "zh" else f"{f.name} ({f.evidence})" for f in red_flags)
    flag_text = _join(shown, lang) or _t("none", lang)
    if lang == "zh":
        text = (
            f"规则引擎结论：{label}（{chosen.level.value}）。危险信号：{flag_text}。"
            f"依据规则：{', '.join(chosen.rule_ids) or _t('none', lang)}。"
            f"引擎版本 {chosen.engine_version}，知识库版本 {chosen.knowledge_version}。"
        )
        if uncertain:
            text += f"存在不确定：{_join(reasons, lang)}（已按更紧急的级别处理）。"
        if latest is not None:
            text += f"最近一次评估为{level_label(latest, lang)}（{latest.value}），摘要仍按最紧急的一次。"
    else:
        text = (
            f"Rule engine: {label} ({chosen.level.value}). Red flags: {flag_text}. "
            f"Rules: {', '.join(chosen.rule_ids) or _t('none', lang)}. "
            f"Engine {chosen.engine_version}, knowledge {chosen.knowledge_version}."
        )
        if uncertain:
            text += f" Uncertain: {_join(reasons, lang)} (the more urgent level was taken)."
        if latest is not None:
            text += (
                f" The latest decision was {level_label(latest, lang)} ({latest.value});"
                " this summary keeps the most urgent one."
            )
    return SbarAssessment(
        text=text,
        level=chosen.level,
        level_label=label,
        red_flags=red_flags,
        rule_ids=list(chosen.rule_ids),
        all_rule_ids=all_ids,
        engine_version=chosen.engine_version,
        knowledge_version=chosen.knowledge_version,
        decided_at=chosen.created,
        uncertain=uncertain,
        uncertainty_reasons=reasons,
        history=[{"at": d.created, "level": d.level.value} for d in decisions],
        latest_level=latest,
    )


def _recommendation(
    chosen: HandoffDecision | None, readings: list[MeasuredReading], lang: Lang
) -> SbarRecommendation:
    if chosen is None:
        text = (
            "尚无建议；请直接联系患者了解情况。紧急情况请拨打120。"
            if lang == "zh"
            else "No recommendation yet; contact the patient directly. In an emergency call 120."
        )
        return SbarRecommendation(
            text=text, care_setting=None, care_setting_label="", departments=[], advice="", call_120=False
        )
    level = chosen.level
    result = chosen.result
    setting = result.care_setting if result and result.level == level else _LEVEL_SETTING[level]
    care = _rules().advice.care_settings.get(setting.value)
    setting_label = str(care.get(lang)) if care else setting.value
    departments = [_department(d, lang) for d in result.departments] if result else []
    advice = str(_rules().advice.levels[level].advice.get(lang))
    call_120 = level in EMERGENCY_LEVELS
    dept_text = _join((d.name for d in departments), lang) or _t("none", lang)
    if lang == "zh":
        text = f"去向：{setting_label}；建议科室：{dept_text}。{advice}"
        if call_120:
            text += "已建议患者立即拨打120或去急诊；请尽快电话联系确认。"
    else:
        text = f"Where: {setting_label}; departments: {dept_text}. {advice}"
        if call_120:
            text += (
                " The patient was told to call 120 or go to the emergency department now;"
                " please call them to confirm."
            )
    urgent_readings = [r for r in readings if r.level.rank >= Level.urgent.rank]
    if urgent_readings:
        shown = _join((r.display(lang) for r in urgent_readings), lang)
        text += f"需关注的读数：{shown}。" if lang == "zh" else f" Readings needing attention: {shown}."
    return SbarRecommendation(
        text=text,
        care_setting=setting,
        care_setting_label=setting_label,
        departments=departments,
        advice=advice,
        call_120=call_120,
    )


def _situation(
    turns: list[Turn], user_words: list[str], assessment: SbarAssessment, lang: Lang
) -> SbarSituation:
    presenting = user_words[0] if user_words else ""
    latest = user_words[-1] if user_words else ""
    started = turns[0].at if turns else None
    if lang == "zh":
        shown = _quote(presenting, lang) if presenting else "无"
        text = f"患者通过导诊咨询，共 {len(user_words)} 条消息。主诉：{shown}。"
        if len(user_words) > 1:
            text += f"最近一条：{_quote(latest, lang)}。"
        text += f"当前分诊级别：{assessment.level_label}。"
    else:
        shown = _quote(presenting, lang) if presenting else "none"
        text = f"Patient used Daozhen ({len(user_words)} messages). Presenting: {shown}."
        if len(user_words) > 1:
            text += f" Latest: {_quote(latest, lang)}."
        text += f" Current triage level: {assessment.level_label}."
    return SbarSituation(
        text=text, presenting=presenting, latest=latest, started_at=started, user_turns=len(user_words)
    )


def _background(
    facts: Facts, readings: list[MeasuredReading], user_words: list[str], lang: Lang
) -> SbarBackground:
    items = fact_items(facts, lang)
    fact_text = _join((f"{i.label} {i.value}" for i in items), lang) or _t("none", lang)
    reading_text = _join((r.display(lang) + (f" ({r.note})" if r.note else "") for r in readings), lang)
    if lang == "zh":
        text = f"已知信息：{fact_text}。"
        if reading_text:
            text += f"读数：{reading_text}。"
        if user_words:
            text += "患者原话：" + " / ".join(_quote(w, lang, 120) for w in user_words[:8]) + "。"
    else:
        text = f"Known facts: {fact_text}."
        if reading_text:
            text += f" Readings: {reading_text}."
        if user_words:
            text += " Patient's words: " + " / ".join(_quote(w, lang, 120) for w in user_words[:8]) + "."
    return SbarBackground(text=text, facts=items, readings=readings, statements=user_words)


# ------------------------------------------------------------------------------ FHIR R4


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "daozhen:handoff:" + ":".join(parts)))


def narrative(text: str) -> dict[str, str]:
    """FHIR Narrative: the text escaped inside an XHTML div (line breaks kept)."""
    lines = "<br/>".join(html.escape(line, quote=True) for line in text.split("\n"))
    return {"status": "generated", "div": f'<div xmlns="{XHTML_NS}"><p>{lines}</p></div>'}


def _reading_observation(reading: MeasuredReading, obs_id: str, patient_urn: str) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": obs_id,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs" if reading.kind == "bp" else "laboratory",
                    }
                ]
            }
        ],
        "subject": {"reference": patient_urn},
    }
    if reading.measured_at is not None:
        obs["effectiveDateTime"] = reading.measured_at.isoformat()
    if reading.kind == "bp":
        obs["code"] = {
            "coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}],
            "text": "Blood pressure",
        }
        obs["component"] = [
            {
                "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
                "valueQuantity": {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
            }
            for code, display, value in (
                ("8480-6", "Systolic blood pressure", reading.systolic),
                ("8462-4", "Diastolic blood pressure", reading.diastolic),
            )
        ]
    else:
        obs["code"] = {
            "coding": [{"system": LOINC, "code": "15074-8", "display": "Glucose [Moles/volume] in Blood"}],
            "text": "Blood glucose",
        }
        obs["valueQuantity"] = {"value": reading.mmol_l, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"}
    if reading.text or reading.note:
        obs["note"] = [{"text": " ".join(p for p in (reading.text, reading.note or "") if p)}]
    if reading.level != Level.self_care:
        obs["interpretation"] = [
            {
                "coding": [{"system": LEVEL_SYSTEM, "code": reading.level.value}],
                "text": ", ".join(reading.rule_ids),
            }
        ]
    return obs


def sbar_to_fhir(sbar: SBAR, patient_ref: str, *, document_id: str | None = None) -> dict[str, Any]:
    """FHIR R4 Bundle (type document): Composition (LOINC 34133-9, sections S/B/A/R with escaped
    XHTML narrative) first, then Patient, the Device that wrote it, the triage-level Observation
    and one Observation per reading (referenced from the B section)."""
    doc = document_id or _uuid(patient_ref, sbar.generated_at)
    patient_urn = f"urn:uuid:{_uuid(doc, 'patient')}"
    device_urn = f"urn:uuid:{_uuid(doc, 'device')}"
    composition_urn = f"urn:uuid:{_uuid(doc, 'composition')}"
    a = sbar.assessment
    patient = {
        "resourceType": "Patient",
        "id": patient_urn.removeprefix("urn:uuid:"),
        "identifier": [{"system": "urn:daozhen:patient", "value": patient_ref}],
    }
    device = {
        "resourceType": "Device",
        "id": device_urn.removeprefix("urn:uuid:"),
        "deviceName": [{"name": "Daozhen triage engine", "type": "model-name"}],
        "version": [
            {"type": {"text": "engine"}, "value": a.engine_version or "unknown"},
            {"type": {"text": "knowledge"}, "value": a.knowledge_version or "unknown"},
        ],
    }
    entries: list[dict[str, Any]] = []
    level_refs: list[dict[str, str]] = []
    if a.level is not None:
        level_urn = f"urn:uuid:{_uuid(doc, 'level')}"
        level_obs: dict[str, Any] = {
            "resourceType": "Observation",
            "id": level_urn.removeprefix("urn:uuid:"),
            "status": "final",
            "code": {
                "coding": [{"system": SBAR_SYSTEM, "code": "triage-level"}],
                "text": "Triage urgency level",
            },
            "subject": {"reference": patient_urn},
            "valueCodeableConcept": {
                "coding": [{"system": LEVEL_SYSTEM, "code": a.level.value, "display": a.level_label}],
                "text": a.level_label,
            },
            "method": {
                "coding": [{"system": RULE_SYSTEM, "code": rule_id} for rule_id in a.rule_ids],
                "text": f"engine {a.engine_version}; knowledge {a.knowledge_version}",
            },
            "device": {"reference": device_urn},
        }
        if a.decided_at:
            level_obs["effectiveDateTime"] = a.decided_at
        entries.append({"fullUrl": level_urn, "resource": level_obs})
        level_refs.append({"reference": level_urn})
    reading_refs: list[dict[str, str]] = []
    for index, reading in enumerate(sbar.background.readings):
        obs_urn = f"urn:uuid:{_uuid(doc, 'reading', str(index))}"
        entries.append(
            {
                "fullUrl": obs_urn,
                "resource": _reading_observation(reading, obs_urn.removeprefix("urn:uuid:"), patient_urn),
            }
        )
        reading_refs.append({"reference": obs_urn})

    def section(part: SbarSection) -> dict[str, Any]:
        out: dict[str, Any] = {
            "title": part.title,
            "code": {"coding": [{"system": SBAR_SYSTEM, "code": part.code}], "text": part.title},
            "text": narrative(part.text),
        }
        refs = {"B": reading_refs, "A": level_refs}.get(part.code, [])
        if refs:
            out["entry"] = refs
        return out

    sections = [section(s) for s in sbar.sections]
    if sbar.sources:
        listed = "\n".join(f"{c.doc_id}#{c.section}" for c in sbar.sources)
        sections.append(
            {
                "title": "Sources" if sbar.lang == "en" else "依据",
                "code": {"coding": [{"system": SBAR_SYSTEM, "code": "sources"}]},
                "text": narrative(listed),
            }
        )
    composition = {
        "resourceType": "Composition",
        "id": composition_urn.removeprefix("urn:uuid:"),
        "language": "zh-CN" if sbar.lang == "zh" else "en",
        "status": "final",
        "type": {
            "coding": [{"system": LOINC, "code": SUMMARY_NOTE[0], "display": SUMMARY_NOTE[1]}],
            "text": sbar.title,
        },
        "subject": {"reference": patient_urn},
        "date": sbar.generated_at,
        "author": [{"reference": device_urn, "display": "Daozhen"}],
        "title": sbar.title,
        "section": sections,
    }
    return {
        "resourceType": "Bundle",
        "id": doc,
        "identifier": {"system": "urn:daozhen:handoff", "value": doc},
        "type": "document",
        "timestamp": sbar.generated_at,
        "entry": [
            {"fullUrl": composition_urn, "resource": composition},
            {"fullUrl": patient_urn, "resource": patient},
            {"fullUrl": device_urn, "resource": device},
            *entries,
        ],
    }
