"""The triage engine: free text + structured facts -> level, departments, red flags, next questions.

Deterministic and pure: no LLM, no network. Every decision is a rule firing with an id and a
guideline source; the result carries the whole trace plus engine and knowledge versions.
Order of work: normalise -> extract facts -> match concepts -> red flags -> vital signs ->
complaints -> uncertainty -> departments -> questions -> advice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from tools.concept_matcher import ConceptMatcher, MatchResult
from tools.departments import Catalogue, load_catalogue
from tools.fact_extraction import extract_facts, normalize_text
from tools.fact_warnings import warning_message
from tools.patient import CHILD_MAX_MONTHS, Patient, build_patient
from tools.rulebook import PatientCondition, Rulebook, load_rulebook
from tools.triage_models import (
    LEVEL_ORDER,
    CareSetting,
    Citation,
    DepartmentChoice,
    Facts,
    FactWarning,
    Lang,
    Level,
    MissingFact,
    RedFlagMatch,
    RuleFiring,
    TriageInput,
    TriageResult,
    VitalSigns,
    max_level,
)
from tools.units import PLAUSIBLE, is_plausible

ENGINE_VERSION = "0.1.0"
FEVER_THRESHOLD_C = 37.5  # axillary; 《中国0至5岁儿童病因不明急性发热…指南》2016
MAX_QUESTIONS = 4
_CJK = re.compile(r"[\u4e00-\u9fff]")
_HAS_CONTENT = re.compile(r"[\w\u4e00-\u9fff]")


class TriageInputError(ValueError):
    """Input the engine cannot assess; carries a stable code and zh/en messages."""

    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(en)
        self.code, self.zh, self.en = code, zh, en

    def message(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


@dataclass
class _Decision:
    """Working state of one assessment."""

    lang: Lang
    patient: Patient
    match: MatchResult
    present: dict[str, str]
    negated: set[str]
    facts: Facts
    level: Level = Level.self_care
    trace: list[RuleFiring] = field(default_factory=list)
    red_flags: list[RedFlagMatch] = field(default_factory=list)
    flag_advice: list[str] = field(default_factory=list)
    dept_scores: dict[str, float] = field(default_factory=dict)
    dept_reasons: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    complaints: list[str] = field(default_factory=list)
    uncertain_reasons: list[str] = field(default_factory=list)
    warnings: list[FactWarning] = field(default_factory=list)

    def raise_to(self, level: Level, rule_id: str, detail: str, source: str | None) -> None:
        self.trace.append(RuleFiring(rule_id=rule_id, effect=f"level>={level.value}", detail=detail))
        self.level = max_level(self.level, level)
        if source and source not in self.sources:
            self.sources.append(source)

    def add_departments(self, ids: list[str], weight: float, reason: str) -> None:
        for rank, dept in enumerate(ids):
            score = weight * (1.0 - 0.15 * rank)
            if score > self.dept_scores.get(dept, 0.0):
                self.dept_scores[dept] = score
                self.dept_reasons[dept] = reason


@dataclass(frozen=True)
class _Engine:
    rules: Rulebook
    matcher: ConceptMatcher
    typo_pattern: re.Pattern[str] | None


@lru_cache(maxsize=2)
def _engine(data_dir: Path | None = None) -> _Engine:
    rules = load_rulebook(data_dir) if data_dir else load_rulebook()
    typos = sorted(rules.typos, key=len, reverse=True)
    pattern = re.compile("|".join(map(re.escape, typos))) if typos else None
    return _Engine(rules, ConceptMatcher(rules.concepts), pattern)


DEFAULT_CORPUS_DIR = Path(__file__).resolve().parent.parent / "knowledge" / "corpus"


@lru_cache(maxsize=4)
def knowledge_version(corpus_dir: Path = DEFAULT_CORPUS_DIR) -> str:
    """Version of the guideline corpus the rules cite, for the audit trail."""
    try:
        from knowledge.corpus import knowledge_version as corpus_version
        from knowledge.corpus import load_corpus

        return corpus_version(load_corpus(corpus_dir))
    except Exception:  # a missing or broken corpus must not stop triage; the audit says so
        return "unknown"


def detect_lang(text: str) -> Lang:
    return "zh" if _CJK.search(text) else "en"


def assess(inp: TriageInput, catalogue: Catalogue | None = None) -> TriageResult:
    engine = _engine()
    rules = engine.rules
    catalogue = catalogue or load_catalogue()
    if not _HAS_CONTENT.search(inp.text) and _facts_empty(inp.facts):
        raise TriageInputError(
            "empty_input",
            "请用文字描述症状（例如：哪里不舒服、多久了、多大年龄）。",
            "Please describe the symptoms in words (what is wrong, for how long, the patient's age).",
        )
    lang: Lang = inp.lang or detect_lang(inp.text)
    text = normalize_text(inp.text)
    if engine.typo_pattern:
        text = engine.typo_pattern.sub(lambda m: rules.typos[m.group()], text)

    extracted = extract_facts(text, lang=lang)
    warnings = [w.localized(lang) for w in extracted.warnings]
    facts, warnings = _merge_facts(inp.facts, extracted.facts, warnings, lang)
    match = engine.matcher.match(text)
    present = {name: hit.text for name, hit in match.present().items()}
    negated = match.negated()
    if "pregnancy_words" in present and facts.pregnant is None:
        facts = facts.model_copy(update={"pregnant": True})
    patient = build_patient(facts, set(present))
    d = _Decision(lang, patient, match, present, negated, facts, warnings=warnings)
    if any(w.code.startswith("implausible") or w.code == "unknown_unit" for w in warnings):
        d.uncertain_reasons.append(
            _t(lang, "有数值不合理，已请求重新测量", "a value looked impossible; re-measure requested")
        )

    _fever_from_temperature(d)
    _apply_red_flags(d, rules)
    _apply_vitals(d, rules)
    _apply_complaints(d, rules)
    _apply_patient_minimums(d)
    _apply_uncertainty(d)
    departments = _rank_departments(d, catalogue)
    missing = _next_questions(d, rules)
    return _result(d, rules, departments, missing)


# ---------------------------------------------------------------- facts


def _facts_empty(facts: Facts) -> bool:
    return facts == Facts()


def _merge_facts(
    given: Facts, extracted: Facts, extracted_warnings: list[FactWarning], lang: Lang
) -> tuple[Facts, list[FactWarning]]:
    """Structured facts win over facts read from the text; a disagreement is reported."""
    warnings = list(extracted_warnings)
    merged = given.model_dump()
    for key, value in extracted.model_dump().items():
        if key == "vitals":
            for vkey, vvalue in value.items():
                current = merged["vitals"].get(vkey)
                if current is None:
                    merged["vitals"][vkey] = vvalue
                elif vvalue is not None and abs(current - vvalue) > 0.05 * max(abs(current), 1):
                    warnings.append(_conflict_warning(vkey, current, vvalue, lang))
        elif key == "chronic_conditions":
            merged[key] = sorted(set(merged[key]) | set(value))
        elif merged.get(key) is None:
            merged[key] = value
        elif value is not None and value != merged[key]:
            warnings.append(_conflict_warning(key, merged[key], value, lang))
    for vkey, value in list(merged["vitals"].items()):
        if value is not None and vkey in PLAUSIBLE and not is_plausible(vkey, value):
            warnings.append(
                warning_from_code(_IMPLAUSIBLE_CODE.get(vkey, "unknown_unit"), lang, raw=value, value=value)
            )
            merged["vitals"][vkey] = None
    merged["vitals"] = VitalSigns(**merged["vitals"])
    return Facts(**merged), warnings


_IMPLAUSIBLE_CODE = {
    "temperature_c": "implausible_temperature",
    "heart_rate": "implausible_heart_rate",
    "respiratory_rate": "implausible_respiratory_rate",
    "spo2": "implausible_spo2",
    "systolic_bp": "implausible_blood_pressure",
    "diastolic_bp": "implausible_blood_pressure",
    "glucose_mmol": "implausible_glucose",
}


def warning_from_code(code: str, lang: Lang, **params: object) -> FactWarning:
    return FactWarning(code=code, message=warning_message(code, lang, **params))


def _conflict_warning(key: str, kept: object, ignored: object, lang: Lang) -> FactWarning:
    return FactWarning(
        code="conflicting_fact",
        message=_t(
            lang,
            f"文字中的{key}（{ignored}）与填写的数值（{kept}）不一致，已按填写的数值评估，请确认。",
            f"The {key} in the text ({ignored}) differs from the form value ({kept}); "
            "the form value was used — please confirm.",
        ),
    )


def _fever_from_temperature(d: _Decision) -> None:
    temp = d.facts.vitals.temperature_c
    if temp is None or temp < FEVER_THRESHOLD_C:
        return
    if "fever" in d.negated:
        d.warnings.append(
            FactWarning(
                code="contradiction_fever",
                message=_t(
                    d.lang,
                    f"描述说没有发烧，但体温是{temp:.1f}℃，已按发烧评估，请复测确认。",
                    f"The text says no fever but the temperature is {temp:.1f} °C; "
                    "assessed as fever — please re-check.",
                ),
            )
        )
        d.uncertain_reasons.append(_t(d.lang, "发烧与体温描述矛盾", "fever and temperature contradict"))
        d.negated.discard("fever")
    d.present.setdefault("fever", f"{temp:.1f}℃")


# ---------------------------------------------------------------- rules


def _patient_matches(d: _Decision, cond: PatientCondition) -> bool:
    """Unknown facts count as matching where that is the more urgent reading."""
    p = d.patient
    years = p.years()
    if cond.pregnant is not None and cond.pregnant != p.pregnant:
        return False
    weeks = p.pregnancy_weeks
    if cond.min_pregnancy_weeks is not None and weeks is not None and weeks < cond.min_pregnancy_weeks:
        return False
    if cond.max_months is not None:
        if p.age_months is not None:
            if p.age_months >= cond.max_months:
                return False
        elif not (p.band == "newborn" or (p.band in {"infant_young"} and cond.max_months >= 3)):
            return False
    if cond.max_years is not None:
        if years is not None:
            if years >= cond.max_years:
                return False
        elif not p.is_child:
            return False
    if cond.min_years is not None:
        if years is not None:
            if years < cond.min_years:
                return False
        elif cond.min_years >= 65 and p.band != "elderly" or p.is_child and cond.min_years < 65:
            return False
    return True


def _is_mild(d: _Decision, concepts: list[str]) -> bool:
    """The description calls this (same clause) mild, and nothing calls it severe."""
    if "severe" in d.present:
        severe_clauses = d.match.clauses_of("severe")
        if any(d.match.clauses_of(c) & severe_clauses for c in concepts):
            return False
    mild_clauses = d.match.clauses_of("mild")
    return any(d.match.clauses_of(c) & mild_clauses for c in concepts)


def _complaint_is_mild(d: _Decision, name: str) -> bool:
    """For a complaint's own level a mild word anywhere counts, unless something is called severe
    (red flags use the stricter same-clause test in `_is_mild`)."""
    if _is_mild(d, [name]):
        return True
    return "mild" in d.present and "severe" not in d.present


def _is_severe(d: _Decision, concepts: list[str]) -> bool:
    severe_clauses = d.match.clauses_of("severe")
    return any(d.match.clauses_of(c) & severe_clauses for c in concepts)


def _apply_red_flags(d: _Decision, rules: Rulebook) -> None:
    present = d.present
    for rule in rules.red_flags:
        if not all(c in present for c in rule.all):
            continue
        if rule.any and not any(c in present for c in rule.any):
            continue
        if rule.also_any and not any(c in present for c in rule.also_any):
            continue
        if any(c in present for c in rule.unless):
            continue
        if not _patient_matches(d, rule.patient):
            continue
        level = rule.level
        matched = [c for c in [*rule.all, *rule.any, *rule.also_any] if c in present]
        if rule.if_mild and _is_mild(d, matched):
            level = rule.if_mild
        if rule.if_reassured and any(c in present for c in ("well_appearing", "no_symptoms_now")):
            level = rule.if_reassured
        evidence = "、".join(dict.fromkeys(present[c] for c in matched))
        d.raise_to(level, rule.id, evidence, rule.source)
        d.red_flags.append(
            RedFlagMatch(rule_id=rule.id, name=rule.name.get(d.lang), level=level, evidence=evidence)
        )
        d.add_departments(
            rule.departments, 3.0 + level.rank * 0.5, _reason(d, rules, "red_flag", rule.name.get(d.lang))
        )
        if rule.advice:
            d.flag_advice.append(rule.advice.get(d.lang))


def _compare(value: float, op: str, threshold: float) -> bool:
    return {
        "<": value < threshold,
        "<=": value <= threshold,
        ">": value > threshold,
        ">=": value >= threshold,
    }[op]


def _apply_vitals(d: _Decision, rules: Rulebook) -> None:
    vitals = d.facts.vitals.model_dump()
    bands = d.patient.bands
    fired: set[str] = set()
    for rule in rules.vital_rules:
        value = vitals.get(rule.vital)
        if value is None or not (bands & set(rule.bands)):
            continue
        if _compare(value, rule.op, rule.value):
            fired.add(rule.id)
            d.raise_to(rule.level, rule.id, f"{rule.vital}={value:g}", rule.source)
            if rule.level.rank >= Level.emergency.rank:
                d.red_flags.append(
                    RedFlagMatch(
                        rule_id=rule.id, name=rule.name.get(d.lang), level=rule.level, evidence=f"{value:g}"
                    )
                )
                d.add_departments(
                    ["emergency"],
                    3.0 + rule.level.rank * 0.5,
                    _reason(d, rules, "vital", rule.name.get(d.lang)),
                )
    for combo in rules.vital_combos:
        if fired & set(combo.vitals) and any(c in d.present for c in combo.any):
            d.raise_to(combo.level, combo.id, ",".join(sorted(fired & set(combo.vitals))), combo.source)
            d.red_flags.append(
                RedFlagMatch(
                    rule_id=combo.id, name=combo.name.get(d.lang), level=combo.level, evidence=combo.id
                )
            )
            d.add_departments(["emergency"], 4.5, _reason(d, rules, "vital", combo.name.get(d.lang)))


def _apply_complaints(d: _Decision, rules: Rulebook) -> None:
    hours = d.facts.duration_hours
    for name, comp in rules.complaints.items():
        if name not in d.present or any(c in d.present for c in comp.subsumed_by):
            continue
        d.complaints.append(name)
        level, why = comp.level, "base"
        if comp.chronic_level and "chronic_course" in d.present:
            level, why = comp.chronic_level, "chronic"
        reassured = any(c in d.present for c in comp.reassured_by)
        mild = reassured or _complaint_is_mild(d, name)
        if comp.mild_level and mild and not _not_mild_by_numbers(d, name):
            level, why = comp.mild_level, "mild"
        if comp.well_level and any(c in d.present for c in ("well_appearing", "no_symptoms_now")):
            level, why = comp.well_level, "reported well"
        if comp.severe_level and _is_severe(d, [name]):
            level, why = comp.severe_level, "severe"
        if comp.long_after_hours and comp.long_level and hours is not None and hours >= comp.long_after_hours:
            level, why = max_level(level, comp.long_level), f"duration>={comp.long_after_hours:g}h"
        if name == "fever":
            level, why = _fever_level(d, level, why)
        d.raise_to(level, f"CP-{name}", why, comp.source)
        depts = comp.child_departments if d.patient.is_child and comp.child_departments else comp.departments
        d.add_departments(depts, 2.0 * comp.weight, _reason(d, rules, "complaint", d.present[name]))


def _not_mild_by_numbers(d: _Decision, name: str) -> bool:
    temp = d.facts.vitals.temperature_c
    return name == "fever" and temp is not None and temp >= 38.5


def _fever_level(d: _Decision, level: Level, why: str) -> tuple[Level, str]:
    """Fever height alone does not predict serious illness beyond infancy (NICE NG143; 2016
    Chinese 0-5 guideline); duration and the child's behaviour matter more."""
    p, hours = d.patient, d.facts.duration_hours
    temp = d.facts.vitals.temperature_c
    if hours is not None and hours >= 60 and temp is not None and temp >= 39:
        level, why = max_level(level, Level.urgent), "high fever into the third day"
    if p.is_child:
        if "well_appearing" in d.present and (hours is None or hours < 72) and (temp is None or temp < 40):
            level, why = Level.self_care, "child fever, well-appearing"
        if temp is not None and temp >= 40:
            level, why = max_level(level, Level.routine), "child fever >= 40"
        if hours is not None and p.age_months is not None and p.age_months < 36 and hours >= 48:
            level, why = max_level(level, Level.urgent), "under 3 years, fever >= 2 days"
        if hours is not None and hours >= 120:
            level, why = max_level(level, Level.urgent), "fever >= 5 days"
    return level, why


def _apply_patient_minimums(d: _Decision) -> None:
    p = d.patient
    illness = [
        c
        for c in d.complaints
        if c not in {"well_child", "checkup_refill", "developmental", "growth_puberty"}
    ]
    if p.band == "newborn" and illness:
        d.raise_to(Level.urgent, "AGE-NEWBORN", "newborn with symptoms", "redflags-infant#feeding")
    if p.pregnant and illness and d.level == Level.self_care:
        d.raise_to(Level.routine, "PREG-MIN", "pregnant with symptoms", "redflags-pregnancy#bleeding")


def _apply_uncertainty(d: _Decision) -> None:
    recognised = d.complaints or d.red_flags
    if not recognised:
        d.raise_to(
            Level.routine, "FALLBACK-UNRECOGNISED", "no recognised symptom", "urgency-levels#uncertainty"
        )
        d.uncertain_reasons.append(_t(d.lang, "没有识别出具体症状", "no specific symptom recognised"))
    p = d.patient
    if p.age_months is None and p.is_child and "fever" in d.present:
        d.uncertain_reasons.append(
            _t(
                d.lang,
                "孩子年龄不明，婴儿发热的判断取决于月龄",
                "the child's age is unknown and infant fever rules depend on it",
            )
        )
        if p.band == "newborn" or any(
            w in d.present.get("child_words", "") for w in ("宝宝", "婴儿", "baby", "infant")
        ):
            d.raise_to(
                Level.urgent,
                "UNCERTAIN-INFANT-AGE",
                "baby with fever, age unknown",
                "redflags-infant#fever-under-3-months",
            )
    exact = {h.concept for h in d.match.hits if not h.fuzzy}
    if any(
        h.fuzzy and h.concept not in exact
        for h in d.match.hits
        if not h.negated and h.concept in _red_flag_concepts()
    ):
        d.uncertain_reasons.append(
            _t(d.lang, "部分症状是按近似写法识别的", "some symptoms were read from approximate spelling")
        )


@lru_cache(maxsize=1)
def _red_flag_concepts() -> frozenset[str]:
    rules = _engine().rules
    return frozenset(c for r in rules.red_flags for c in [*r.all, *r.any])


# ---------------------------------------------------------------- output


def _rank_departments(d: _Decision, catalogue: Catalogue) -> list[DepartmentChoice]:
    rules = _engine().rules
    if d.patient.pregnant:
        d.add_departments(["obstetrics"], 2.5, _reason(d, rules, "pregnancy", ""))
    if d.level.rank >= Level.emergency.rank:
        d.add_departments(
            ["emergency"], 10.0, _reason(d, rules, "red_flag", rules.advice.levels[d.level].label.get(d.lang))
        )
    if not d.dept_scores:
        d.add_departments(["general_practice"], 1.0, _reason(d, rules, "fallback", ""))
    routed: dict[str, tuple[float, str]] = {}
    for dept, score in d.dept_scores.items():
        target = catalogue.route(dept, d.patient)
        if target is None:
            continue
        if target not in routed or score > routed[target][0]:
            routed[target] = (score, d.dept_reasons[dept])
    if not routed:
        fallback = catalogue.route("general_practice", d.patient) or next(iter(catalogue.departments))
        routed[fallback] = (1.0, _reason(d, rules, "fallback", ""))
    ranked = sorted(routed.items(), key=lambda kv: -kv[1][0])[:3]
    return [
        DepartmentChoice(id=dept, name=catalogue.departments[dept].name(d.lang), reason=reason)
        for dept, (_, reason) in ranked
    ]


def _question_applies(d: _Decision, qid: str, rules: Rulebook) -> bool:
    q = rules.questions[qid]
    if q.fact and _fact_known(d.facts, q.fact):
        return False
    if q.concepts and any(c in d.present or c in d.negated for c in q.concepts):
        return False
    if q.only:
        p = d.patient
        if q.only.sex == "female_or_unknown" and p.sex == "male":
            return False
        years = p.years()
        if years is None and p.is_child:
            return False
        if years is not None and q.only.min_years is not None and years < q.only.min_years:
            return False
        if years is not None and q.only.max_years is not None and years > q.only.max_years:
            return False
    if qid == "pregnancy" and d.patient.pregnant:
        return False
    return not (qid == "age" and d.patient.age_months is not None)


def _fact_known(facts: Facts, path: str) -> bool:
    value: object = facts
    for part in path.split("."):
        value = getattr(value, part, None)
    return value is not None


def _next_questions(d: _Decision, rules: Rulebook) -> list[MissingFact]:
    wanted: list[str] = []
    if d.patient.age_months is None and (d.patient.is_child or "fever" in d.present):
        wanted.append("age")
    for name in d.complaints:
        wanted += rules.complaints[name].questions
    ordered = sorted(dict.fromkeys(wanted), key=lambda q: rules.questions[q].priority)
    chosen = [q for q in ordered if _question_applies(d, q, rules)][:MAX_QUESTIONS]
    out = []
    for qid in chosen:
        q = rules.questions[qid]
        out.append(
            MissingFact(
                id=qid,
                question=q.zh if d.lang == "zh" else q.en,
                kind=q.kind,
                fact=q.fact,
                yes_text=q.yes_text.get(d.lang) if q.yes_text else None,
                no_text=q.no_text.get(d.lang) if q.no_text else None,
            )
        )
    return out


def _care_setting(d: _Decision, rules: Rulebook) -> CareSetting:
    if d.level == Level.emergency_ambulance:
        return CareSetting.ambulance_ed
    if d.level == Level.emergency:
        return CareSetting.emergency_department
    if d.level == Level.urgent:
        return CareSetting.hospital_clinic
    if d.level == Level.self_care:
        return CareSetting.home
    primary = d.complaints and all(rules.complaints[c].primary_care for c in d.complaints)
    if primary and d.patient.band not in {"newborn", "infant_young"} and not d.patient.pregnant:
        return CareSetting.community
    return CareSetting.hospital_clinic


def _result(
    d: _Decision, rules: Rulebook, departments: list[DepartmentChoice], missing: list[MissingFact]
) -> TriageResult:
    level_text = rules.advice.levels[d.level]
    d.sources.append(level_text.source)
    advice_parts = [level_text.advice.get(d.lang)] + d.flag_advice[:2]
    if not d.complaints and not d.red_flags:
        advice_parts = [rules.advice.unrecognised.get(d.lang)]
    if d.uncertain_reasons:
        advice_parts.append(rules.advice.uncertain.get(d.lang))
    citations = []
    for source in dict.fromkeys(d.sources):
        doc_id, _, section = source.partition("#")
        citations.append(Citation(doc_id=doc_id, section=section))
    red_flags = sorted(d.red_flags, key=lambda f: -f.level.rank)
    return TriageResult(
        level=d.level,
        level_label=level_text.label.get(d.lang),
        care_setting=_care_setting(d, rules),
        departments=departments,
        red_flags=red_flags,
        missing=missing,
        advice=("" if d.lang == "zh" else " ").join(advice_parts),
        uncertain=bool(d.uncertain_reasons),
        uncertainty_reasons=d.uncertain_reasons,
        warnings=d.warnings,
        facts=d.facts,
        citations=citations,
        rule_trace=d.trace,
        lang=d.lang,
        engine_version=f"{ENGINE_VERSION}+rules.{rules.version}",
        knowledge_version=knowledge_version(),
        disclaimer=rules.advice.disclaimer.get(d.lang),
    )


def _reason(d: _Decision, rules: Rulebook, kind: str, detail: str) -> str:
    label = rules.advice.reasons[kind].get(d.lang)
    if not detail:
        return label
    return f"{label}：{detail}" if d.lang == "zh" else f"{label}: {detail}"


def _t(lang: Lang, zh: str, en: str) -> str:
    return zh if lang == "zh" else en


__all__ = ["assess", "TriageInputError", "detect_lang", "ENGINE_VERSION", "LEVEL_ORDER", "CHILD_MAX_MONTHS"]
