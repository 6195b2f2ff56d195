"""Child-fever traffic light: temperature readings + symptoms -> green / orange / red (+ call 120).

    grade_fever(FeverInput(age_months=18, readings=[{"value": 39.5, "site": "axillary"}],
                           text="playing normally, drinking well")) -> FeverGrade(colour="green", ...)

Deterministic and pure (no LLM, no network; `now` can be passed in). The rules are data
(tools/data/fever_rules.yaml: NICE NG143 Table 1 and the Chinese 0–5 years fever guideline, each
feature with its citation); symptoms come from free zh/en text through the shared concept matcher
(with negation) plus tools/data/fever_concepts.yaml, or from structured signs.
Any red feature -> red; else any orange -> orange; else green. Children of 5 years and over and
adults are graded by the general triage engine's red flags (tools.triage.assess) instead of the
under-5 table; the diary trends and life-threatening features apply at every age.

Temperatures: a reading's estimated core temperature is reading + site offset (rectal/ear 0,
oral/axillary +0.5: fever = rectal >= 38.0 = axillary >= 37.5); forehead readings are taken as
they are but flagged as unreliable. Bare 385 -> 38.5, bare 102 -> °F, impossible values (45, 30)
are not used and ask for a re-measure; readings time-stamped in the future are rejected.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from tools.concept_matcher import ConceptMatcher, Hit
from tools.fact_extraction import extract_facts, normalize_text
from tools.fact_warnings import warning_message
from tools.rulebook import DATA_DIR, Bilingual, ConceptDef, load_rulebook
from tools.triage_models import Facts, FactWarning, Lang, Level, TriageInput, VitalSigns
from tools.units import PLAUSIBLE, fahrenheit_to_celsius

FEVER_ENGINE_VERSION = "0.1.0"
UNDER5_MONTHS = 60.0
MAX_TEXT_CHARS = 4000
Colour = Literal["green", "orange", "red"]
Site = Literal["axillary", "ear", "forehead", "oral", "rectal"]
ConditionId = Literal[
    "immunocompromised",
    "sickle_cell",
    "heart_disease",
    "chronic_lung",
    "kidney_disease",
    "neuro_disability",
    "premature",
    "other_chronic",
]
COLOUR_RANK: dict[str, int] = {"green": 0, "orange": 1, "red": 2}
_CJK = re.compile(r"[\u4e00-\u9fff]")


# =============================================================================== rule data


class GuidelineRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ref: str
    section: str


class VitalCondition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["respiratory_rate", "heart_rate", "spo2", "crt_seconds"]
    op: Literal["<", "<=", ">", ">="]
    value: float


class FeverRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    colour: Colour
    call_120: bool = False
    scope: Literal["under5", "all"] = "under5"
    name: Bilingual
    any: list[str] = Field(default_factory=list)
    all: list[str] = Field(default_factory=list)
    unless: list[str] = Field(default_factory=list)
    min_months: float | None = None
    max_months: float | None = None
    temp_core_gte: float | None = None
    temp_measured_lt: float | None = None
    window_hours: float | None = None  # look-back for the temperature conditions (default recent_hours)
    vital: VitalCondition | None = None
    fever_days_gte: float | None = None
    conditions_any: list[str] = Field(default_factory=list)
    needs_fever: bool = False
    trend: str | None = None
    source: str
    guidelines: list[GuidelineRef] = Field(default_factory=list)
    advice: Bilingual | None = None

    @model_validator(mode="after")
    def _has_a_trigger(self) -> FeverRule:
        triggers = [
            self.any,
            self.all,
            self.temp_core_gte,
            self.temp_measured_lt,
            self.vital,
            self.fever_days_gte,
            self.conditions_any,
            self.trend,
        ]
        if not any(t not in (None, []) for t in triggers):
            raise ValueError(f"fever rule {self.id} has no condition that can fire")
        if self.call_120 and self.colour != "red":
            raise ValueError(f"fever rule {self.id}: call_120 features must be red")
        return self


class SiteDef(BaseModel):
    offset: float
    max_offset: float
    unreliable: bool = False
    zh: str
    en: str


class ConditionDef(BaseModel):
    zh: str
    en: str
    concept: str | None = None


class Remeasure(BaseModel):
    hours: float | None
    zh: str
    en: str


class ColourText(BaseModel):
    label: Bilingual
    meaning: Bilingual
    do_now: list[Bilingual]
    remeasure: Remeasure
    escalation: list[Bilingual]
    source: str


class TrendParams(BaseModel):
    fever_free_hours: float
    rising_window_hours: tuple[float, float]
    rising_min_delta_c: float
    missing_after_hours: dict[str, float]
    missing_source: str


class NumberStatement(BaseModel):
    text: Bilingual
    signs: Bilingual
    infant: Bilingual
    source: str


class Guideline(BaseModel):
    name: str
    year: int


class FeverRulebook(BaseModel):
    version: str
    guidelines: dict[str, Guideline]
    fever_core_c: float
    plausible_c: tuple[float, float]
    decimal_lost_range: tuple[float, float]
    fahrenheit_range: tuple[float, float]
    recent_hours: float
    future_tolerance_minutes: float
    sites: dict[str, SiteDef]
    site_source: str
    conditions: dict[str, ConditionDef]
    rules: list[FeverRule]
    trends: TrendParams
    colours: dict[str, ColourText]
    number_statement: NumberStatement
    disclaimer: Bilingual
    concepts: dict[str, ConceptDef]
    suppressed_by: dict[str, list[str]]

    @model_validator(mode="after")
    def _references_resolve(self) -> FeverRulebook:
        problems: list[str] = []
        known = set(self.concepts)
        for rule in self.rules:
            for concept in [*rule.any, *rule.all, *rule.unless]:
                if concept not in known:
                    problems.append(f"{rule.id}: unknown concept {concept}")
            problems += [
                f"{rule.id}: unknown guideline {g.ref}"
                for g in rule.guidelines
                if g.ref not in self.guidelines
            ]
            problems += [
                f"{rule.id}: unknown condition {c}" for c in rule.conditions_any if c not in self.conditions
            ]
            if rule.trend and rule.trend not in TREND_CODES:
                problems.append(f"{rule.id}: unknown trend {rule.trend}")
        ids = [r.id for r in self.rules]
        problems += [f"duplicate rule id {i}" for i in sorted({i for i in ids if ids.count(i) > 1})]
        for name, cond in self.conditions.items():
            if cond.concept and cond.concept not in known:
                problems.append(f"condition {name}: unknown concept {cond.concept}")
        for concept, contexts in self.suppressed_by.items():
            problems += [
                f"suppressed_by: unknown concept {c}" for c in [concept, *contexts] if c not in known
            ]
        missing_colours = {"green", "orange", "red", "call_120"} - set(self.colours)
        problems += [f"colour text missing: {c}" for c in sorted(missing_colours)]
        if "unknown" not in self.sites or set(SITE_NAMES) - set(self.sites):
            problems.append("sites must define every measurement site and 'unknown'")
        if problems:
            raise ValueError("fever rule data does not resolve:\n" + "\n".join(problems))
        return self

    def sources(self) -> set[str]:
        found = {r.source for r in self.rules} | {c.source for c in self.colours.values()}
        return found | {self.site_source, self.trends.missing_source, self.number_statement.source}


SITE_NAMES: tuple[str, ...] = ("axillary", "ear", "forehead", "oral", "rectal")
TREND_CODES = {"rising_despite_antipyretic", "new_fever_after_free_days", "readings_missing"}


@lru_cache(maxsize=4)
def load_fever_rules(data_dir: Path = DATA_DIR) -> FeverRulebook:
    """fever_rules.yaml + the shared concept vocabulary + fever_concepts.yaml, validated."""
    rules_raw = yaml.safe_load((data_dir / "fever_rules.yaml").read_text(encoding="utf-8"))
    extra_raw = yaml.safe_load((data_dir / "fever_concepts.yaml").read_text(encoding="utf-8"))
    shared = load_rulebook(data_dir).concepts
    extra = {name: ConceptDef(**d) for name, d in (extra_raw.get("concepts") or {}).items()}
    clash = sorted(set(shared) & set(extra))
    if clash:
        raise ValueError(f"fever_concepts.yaml redefines shared concepts: {clash}")
    digest = hashlib.sha256()
    for name in ("fever_rules.yaml", "fever_concepts.yaml", "concepts.yaml"):
        digest.update((data_dir / name).read_bytes())
    return FeverRulebook(
        **{k: v for k, v in rules_raw.items() if k != "version"},
        version=f"{rules_raw.get('version', '0')}.{digest.hexdigest()[:10]}",
        concepts={**shared, **extra},
        suppressed_by=extra_raw.get("suppressed_by") or {},
    )


@dataclass(frozen=True)
class _Engine:
    rules: FeverRulebook
    matcher: ConceptMatcher
    typos: dict[str, str]
    typo_pattern: re.Pattern[str] | None


@lru_cache(maxsize=2)
def _engine(data_dir: Path = DATA_DIR) -> _Engine:
    rules = load_fever_rules(data_dir)
    typos = load_rulebook(data_dir).typos
    ordered = sorted(typos, key=len, reverse=True)
    pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
    return _Engine(rules, ConceptMatcher(rules.concepts), typos, pattern)


# =============================================================================== input


class FeverInputError(ValueError):
    """Input that cannot be graded; a stable code and zh/en messages."""

    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(f"{zh} / {en}")
        self.code, self.zh, self.en = code, zh, en

    def message(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


class TemperatureReading(BaseModel):
    """One measurement. `unit` None: guessed from the value (38.5 °C, 385 -> 38.5, 102 -> °F)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    value: float = Field(allow_inf_nan=False)
    unit: Literal["C", "F"] | None = None
    site: Site | None = None
    time: datetime | None = None  # None: measured now
    # a fever medicine (paracetamol / ibuprofen) was given at this reading's time
    antipyretic_given: bool = Field(
        default=False, validation_alias=AliasChoices("antipyretic_given", "antipyretic")
    )

    @field_validator("unit", mode="before")
    @classmethod
    def _unit_alias(cls, value: object) -> object:
        if isinstance(value, str):
            folded = value.strip().upper().replace("°", "").replace("℃", "C").replace("℉", "F")
            return {"": None, "CELSIUS": "C", "FAHRENHEIT": "F"}.get(folded, folded)
        return value

    @field_validator("site", mode="before")
    @classmethod
    def _site_alias(cls, value: object) -> object:
        return parse_site(value) if isinstance(value, str) else value


class FeverSigns(BaseModel):
    """Structured observations (a form, a device); they win over numbers read from the text."""

    model_config = ConfigDict(extra="forbid")

    respiratory_rate: float | None = Field(default=None, allow_inf_nan=False)
    heart_rate: float | None = Field(default=None, allow_inf_nan=False)
    spo2: float | None = Field(default=None, allow_inf_nan=False)
    crt_seconds: float | None = Field(default=None, allow_inf_nan=False)
    present: list[str] = Field(default_factory=list)  # concept ids observed
    absent: list[str] = Field(default_factory=list)  # concept ids checked and not there


class FeverInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    age_days: float | None = Field(default=None, allow_inf_nan=False)
    age_months: float | None = Field(default=None, allow_inf_nan=False)
    age_years: float | None = Field(default=None, allow_inf_nan=False)
    weight_kg: float | None = Field(default=None, allow_inf_nan=False)
    readings: list[TemperatureReading] = Field(default_factory=list, max_length=2000)
    fever_days: float | None = Field(default=None, allow_inf_nan=False)  # as reported
    text: str = Field(default="", max_length=MAX_TEXT_CHARS)
    lang: Lang | None = None
    signs: FeverSigns = Field(default_factory=FeverSigns)
    conditions: list[ConditionId] = Field(default_factory=list)
    now: datetime | None = None  # reference time; default: the current time


_SITE_ALIASES: dict[str, str] = {
    "axillary": "axillary", "axilla": "axillary", "armpit": "axillary", "underarm": "axillary",
    "腋下": "axillary", "腋温": "axillary", "腋窝": "axillary",
    "ear": "ear", "tympanic": "ear", "耳温": "ear", "耳朵": "ear", "耳": "ear",
    "forehead": "forehead", "temporal": "forehead", "额温": "forehead", "额头": "forehead", "额": "forehead",
    "oral": "oral", "mouth": "oral", "口温": "oral", "口腔": "oral", "舌下": "oral",
    "rectal": "rectal", "rectum": "rectal", "肛温": "rectal", "肛门": "rectal",
}  # fmt: skip


def parse_site(raw: object) -> str | None:
    """A measurement site from its name in zh or en; unknown words raise FeverInputError."""
    if raw is None:
        return None
    key = str(raw).strip().lower()
    if not key:
        return None
    if key in _SITE_ALIASES:
        return _SITE_ALIASES[key]
    raise FeverInputError(
        "unknown_site",
        f"不认识的测量部位“{raw}”；请用 腋下 / 耳 / 额头 / 口腔 / 肛门"
        "（axillary|ear|forehead|oral|rectal）。",
        f'Unknown measurement site "{raw}"; use axillary, ear, forehead, oral or rectal.',
    )


# =============================================================================== output


class LocalText(BaseModel):
    zh: str
    en: str


class FeverCitation(BaseModel):
    doc_id: str
    section: str
    guideline: str | None = None
    year: int | None = None
    guideline_section: str | None = None


class FeverFeature(BaseModel):
    rule_id: str
    colour: Colour
    call_120: bool
    name: LocalText
    evidence: str
    citations: list[FeverCitation]


class TrendFinding(BaseModel):
    code: str  # rising_despite_antipyretic | new_fever_after_free_days | fever_5_days | readings_missing
    message: str
    rule_id: str | None = None  # the rule it fired, if it set a colour


class RemeasureAdvice(BaseModel):
    in_hours: float | None
    advice: str


class TemperatureSummary(BaseModel):
    latest_c: float | None  # as measured (°C)
    latest_site: str | None
    latest_core_c: float | None  # estimated core temperature
    peak_c: float | None  # highest usable reading in the last day, as measured
    peak_core_c: float | None
    fever_now: bool
    readings_used: int
    readings_rejected: int


class FeverGrade(BaseModel):
    colour: Colour
    call_120: bool
    label: str
    meaning: str
    features: list[FeverFeature]
    reassuring: list[str]
    do_now: list[str]
    remeasure: RemeasureAdvice
    escalation_triggers: list[str]
    number_statement: str | None
    temperature: TemperatureSummary
    fever_days: float | None
    age_months: float
    table: Literal["nice_ng143_under5", "general_triage"]
    trends: list[TrendFinding]
    checks: list[str]  # what was not described and is worth looking at now
    warnings: list[FactWarning]
    uncertain: bool
    uncertainty_reasons: list[str]
    rule_trace: list[str]
    lang: Lang
    engine_version: str
    knowledge_version: str
    disclaimer: str


# =============================================================================== readings


@dataclass(frozen=True)
class _Reading:
    index: int
    value_c: float
    site: str  # a SITE_NAMES entry or "unknown"
    core: float
    max_core: float
    time: datetime
    timed: bool  # the time was given (not "now")
    antipyretic: bool
    from_text: bool = False


def _as_aware(moment: datetime) -> datetime:
    """Naive times are read as local wall-clock time."""
    return moment if moment.tzinfo else moment.astimezone()


def _round1(value: float) -> float:
    return float(round(value, 1))


def _celsius(
    value: float, unit: str | None, rules: FeverRulebook, lang: Lang, raw: str
) -> tuple[float | None, FactWarning | None]:
    """The reading in °C, a warning when it was guessed, or None (+ warning) when impossible."""
    low, high = rules.plausible_c
    f_low, f_high = rules.fahrenheit_range
    d_low, d_high = rules.decimal_lost_range

    def warn(code: str, **params: object) -> FactWarning:
        return FactWarning(code=code, message=warning_message(code, lang, raw=raw, **params))

    if unit == "F":
        converted = fahrenheit_to_celsius(value)
        if low <= converted <= high:
            return converted, None
        if low <= value <= high:
            return value, FactWarning(
                code="assumed_celsius",
                message=_t(
                    lang,
                    f"“{raw}”按摄氏度理解（{value:g}℃）；如果不对，请更正。",
                    f'"{raw}" was read as degrees Celsius ({value:g} °C); '
                    "if that is wrong, please correct it.",
                ),
            )
        return None, warn("implausible_temperature")
    if low <= value <= high:
        return _round1(value), None
    if f_low <= value <= f_high:  # no unit, or "°C" on a Fahrenheit number
        converted = fahrenheit_to_celsius(value)
        return converted, warn("assumed_fahrenheit", value=converted)
    if d_low <= value <= d_high and float(value).is_integer():
        return value / 10, warn("assumed_decimal_point", value=value / 10)
    return None, warn("implausible_temperature")


def _readings(
    inp: FeverInput, text_temp: tuple[float, str | None] | None, now: datetime, lang: Lang
) -> tuple[list[_Reading], list[FactWarning], int]:
    rules = _engine().rules
    tolerance = timedelta(minutes=rules.future_tolerance_minutes)
    usable: list[_Reading] = []
    warnings: list[FactWarning] = []
    rejected = 0
    sources: list[tuple[TemperatureReading, bool]] = [(r, False) for r in inp.readings]
    if text_temp is not None:
        sources.append((TemperatureReading(value=text_temp[0], unit="C", site=text_temp[1]), True))
    for index, (reading, from_text) in enumerate(sources):
        moment = _as_aware(reading.time) if reading.time else now
        if moment - now > tolerance:
            raise FeverInputError(
                "future_reading_time",
                f"第{index + 1}个体温的测量时间（{moment:%Y-%m-%d %H:%M}）在未来，"
                "请检查设备或手机的时间后再输入。",
                f"Reading {index + 1} is time-stamped in the future ({moment:%Y-%m-%d %H:%M}); "
                "check the device or phone clock and enter it again.",
            )
        raw = f"{reading.value:g}{'°' + reading.unit if reading.unit else ''}"
        value_c, warning = _celsius(reading.value, reading.unit, rules, lang, raw)
        if warning:
            warnings.append(warning)
        if value_c is None:
            rejected += 1
            continue
        site = reading.site or "unknown"
        bias = rules.sites[site]
        usable.append(
            _Reading(
                index=index,
                value_c=value_c,
                site=site,
                core=_round1(value_c + bias.offset),
                max_core=_round1(value_c + bias.max_offset),
                time=moment,
                timed=reading.time is not None,
                antipyretic=reading.antipyretic_given,
                from_text=from_text,
            )
        )
    usable.sort(key=lambda r: (r.time, r.index))
    return usable, warnings, rejected


@dataclass
class _TempView:
    readings: list[_Reading]
    recent: list[_Reading]
    latest: _Reading | None
    peak: _Reading | None
    fever_now: bool
    computed_days: float | None


def _temperature_view(readings: list[_Reading], rules: FeverRulebook) -> _TempView:
    if not readings:
        return _TempView([], [], None, None, False, None)
    latest = readings[-1]
    window = timedelta(hours=rules.recent_hours)
    recent = [r for r in readings if latest.time - r.time <= window]
    peak = max(recent, key=lambda r: (r.core, r.time))
    return _TempView(
        readings,
        recent,
        latest,
        peak,
        peak.core >= rules.fever_core_c,
        _episode_days(readings, rules),
    )


def _episode_days(readings: list[_Reading], rules: FeverRulebook) -> float | None:
    """Days from the first to the last fever reading of the latest fever episode (timed readings)."""
    timed = [r for r in readings if r.timed and not r.from_text]
    fever = [r for r in timed if r.core >= rules.fever_core_c]
    if len(fever) < 2:
        return None
    start = fever[-1]
    for earlier in reversed(fever[:-1]):
        if _afebrile_gap(timed, earlier, start, rules):
            break
        start = earlier
    return round((fever[-1].time - start.time).total_seconds() / 86400, 2)


def _afebrile_gap(timed: list[_Reading], first: _Reading, second: _Reading, rules: FeverRulebook) -> bool:
    """Fever-free between two fever readings: long enough apart, with normal readings in between."""
    gap_hours = (second.time - first.time).total_seconds() / 3600
    between = [r for r in timed if first.time < r.time < second.time]
    return (
        gap_hours >= rules.trends.fever_free_hours
        and bool(between)
        and all(r.core < rules.fever_core_c for r in between)
    )


# =============================================================================== decision state


@dataclass
class _State:
    lang: Lang
    age_months: float
    present: dict[str, str]  # concept -> evidence
    negated: dict[str, str]  # concept -> the denied words ("没有皮疹" -> 皮疹)
    temps: _TempView
    vitals: dict[str, float]
    fever_days: float | None
    conditions: set[str]
    features: list[FeverFeature] = field(default_factory=list)
    trends: list[TrendFinding] = field(default_factory=list)
    trace: list[str] = field(default_factory=list)
    warnings: list[FactWarning] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)
    extra_do_now: list[str] = field(default_factory=list)

    @property
    def fever(self) -> bool:
        return self.temps.fever_now or bool(self.fever_days) or "fever" in self.present

    @property
    def colour(self) -> Colour:
        best: Colour = "green"
        for feature in self.features:
            if COLOUR_RANK[feature.colour] > COLOUR_RANK[best]:
                best = feature.colour
        return best


def detect_lang(text: str) -> Lang:
    return "zh" if _CJK.search(text) or not text.strip() else "en"


# =============================================================================== main entry


def grade_fever(inp: FeverInput) -> FeverGrade:
    """Grades one child's fever. Raises FeverInputError for input that cannot be graded."""
    engine = _engine()
    rules = engine.rules
    lang: Lang = inp.lang or detect_lang(inp.text)
    now = _as_aware(inp.now) if inp.now else datetime.now(UTC)
    text = normalize_text(inp.text)
    if engine.typo_pattern:
        text = engine.typo_pattern.sub(lambda m: engine.typos[m.group()], text)
    extracted = extract_facts(text, lang=lang) if text else None
    warnings = [w.localized(lang) for w in extracted.warnings] if extracted else []
    uncertain: list[str] = []
    trace: list[str] = []

    age_months, age_from_text = _age_months(inp, extracted.facts if extracted else None)
    if age_from_text:
        uncertain.append(
            _t(lang, "年龄是从文字中读出的，请确认", "the age was read from the text; please confirm")
        )
    warnings += _weight_warnings(inp.weight_kg, age_months, lang)

    text_temp = _text_temperature(inp, extracted.facts if extracted else None, text)
    readings, reading_warnings, rejected = _readings(inp, text_temp, now, lang)
    warnings += reading_warnings
    temps = _temperature_view(readings, rules)

    present, negated, fuzzy_red = _concepts(engine, text, inp.signs, lang, warnings)
    if fuzzy_red:
        uncertain.append(
            _t(lang, "部分症状是按近似写法识别的", "some signs were read from approximate spelling")
        )
    vitals = _vitals(inp.signs, extracted.facts.vitals if extracted else None, text, lang, warnings)
    fever_days = _fever_days(inp, extracted.facts if extracted else None, temps, trace)
    conditions = set(inp.conditions)
    for cid, cond in rules.conditions.items():
        if cond.concept and cond.concept in present:
            conditions.add(cid)

    s = _State(lang, age_months, present, negated, temps, vitals, fever_days, conditions)
    s.warnings, s.uncertain, s.trace = warnings, uncertain, trace
    under5 = age_months < UNDER5_MONTHS
    _trend_findings(s, rules)
    _apply_rules(s, rules, under5)
    if not under5:
        _apply_general_triage(s, inp.text)
    _missing_readings(s, rules, now)
    _temperature_notes(s, rules, rejected)
    _behaviour_notes(s)
    return _result(s, rules, under5, rejected)


def _text_temperature(
    inp: FeverInput, text_facts: Facts | None, text: str
) -> tuple[float, str | None] | None:
    """A temperature in the text counts as one more reading taken now (the higher one wins)."""
    if text_facts is None or text_facts.vitals.temperature_c is None:
        return None
    value = text_facts.vitals.temperature_c
    if any(abs(r.value - value) < 0.05 for r in inp.readings):
        return None  # the same number as a structured reading
    site = _site_in_text(text) or (inp.readings[0].site if inp.readings else None)
    return value, site


def _t(lang: Lang, zh: str, en: str) -> str:
    return zh if lang == "zh" else en


# =============================================================================== facts


def _age_months(inp: FeverInput, text_facts: Facts | None) -> tuple[float, bool]:
    given = [
        ("age_days", inp.age_days, inp.age_days * 12 / 365.25 if inp.age_days is not None else None),
        ("age_months", inp.age_months, inp.age_months),
        ("age_years", inp.age_years, inp.age_years * 12 if inp.age_years is not None else None),
    ]
    values = [(name, raw, months) for name, raw, months in given if months is not None]
    for name, raw, months in values:
        assert months is not None
        if months < 0 or months > PLAUSIBLE["age_months"][1]:
            raise FeverInputError(
                "implausible_age",
                f"年龄“{raw:g}”（{name}）不在可能的范围内，请确认孩子的年龄。",
                f'The age "{raw:g}" ({name}) is outside the possible range; please check the child\'s age.',
            )
    months_list = [m for _, _, m in values if m is not None]
    if months_list and max(months_list) - min(months_list) > max(1.0, 0.1 * max(months_list)):
        raise FeverInputError(
            "conflicting_age",
            "填写的几个年龄互相矛盾（天/月/岁），请只填一个。",
            "The ages given (days / months / years) contradict each other; please give one.",
        )
    if months_list:
        return round(months_list[0], 2), False
    if text_facts is not None and text_facts.age_months is not None:
        return text_facts.age_months, True
    raise FeverInputError(
        "missing_age",
        "请告诉我孩子的年龄（天、月或岁）：婴儿发热的判断取决于月龄。",
        "Please give the child's age (days, months or years): infant fever rules depend on it.",
    )


# (max age in months exclusive, min kg, max kg): deliberately wide, to catch typos and unit mix-ups
_WEIGHT_BANDS: tuple[tuple[float, float, float], ...] = (
    (1, 0.8, 7.0),
    (3, 1.2, 9.0),
    (6, 2.0, 12.0),
    (12, 3.5, 16.0),
    (24, 5.5, 20.0),
    (60, 7.0, 35.0),
    (144, 10.0, 90.0),
    (216, 18.0, 200.0),
    (math.inf, 25.0, 350.0),
)


def _weight_warnings(weight: float | None, age_months: float, lang: Lang) -> list[FactWarning]:
    if weight is None:
        return []
    low, high = next((lo, hi) for limit, lo, hi in _WEIGHT_BANDS if age_months < limit)
    if low <= weight <= high:
        return []
    return [
        FactWarning(
            code="implausible_weight",
            message=_t(
                lang,
                f"体重{weight:g}kg与{_age_text(age_months, 'zh')}的年龄不相符"
                f"（通常在{low:g}–{high:g}kg之间），"
                "没有采用；请重新称重（注意斤和公斤）。",
                f"A weight of {weight:g} kg does not fit the age of {_age_text(age_months, 'en')} "
                f"(usually {low:g}–{high:g} kg) and was not used; please weigh again (kg, not jin or lb).",
            ),
        )
    ]


def _age_text(months: float, lang: Lang) -> str:
    if months < 1:
        days = round(months * 365.25 / 12)
        return f"{days}天" if lang == "zh" else f"{days} days"
    if months < 24:
        return f"{months:g}个月" if lang == "zh" else f"{months:g} months"
    return f"{months / 12:.1f}岁" if lang == "zh" else f"{months / 12:.1f} years"


_TEXT_SITES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"腋|armpit|axill|under ?arm"), "axillary"),
    (re.compile(r"肛|rectal|rectum|bottom temp"), "rectal"),
    (re.compile(r"耳温|耳朵温|耳温枪|\bear\b|tympanic"), "ear"),
    (re.compile(r"额温|额头温|额温枪|forehead|temporal"), "forehead"),
    (re.compile(r"口温|舌下|\boral\b|in (his|her|the) mouth|under (his|her|the) tongue"), "oral"),
)


def _site_in_text(text: str) -> str | None:
    for pattern, site in _TEXT_SITES:
        if pattern.search(text):
            return site
    return None


def _concepts(
    engine: _Engine, text: str, signs: FeverSigns, lang: Lang, warnings: list[FactWarning]
) -> tuple[dict[str, str], dict[str, str], bool]:
    known = engine.rules.concepts
    unknown = [c for c in [*signs.present, *signs.absent] if c not in known]
    if unknown:
        raise FeverInputError(
            "unknown_sign",
            f"不认识的体征：{', '.join(unknown)}。",
            f"Unknown sign id(s): {', '.join(unknown)}.",
        )
    hits = _suppress(engine.matcher.match(text).hits, engine.rules.suppressed_by) if text else []
    present: dict[str, str] = {}
    for hit in hits:
        if not hit.negated:
            present.setdefault(hit.concept, hit.text)
    affirmed = set(present)
    negated: dict[str, str] = {}
    for hit in hits:
        if hit.negated and hit.concept not in affirmed:
            negated.setdefault(hit.concept, hit.text)
    for concept in signs.present:
        present.setdefault(concept, _t(lang, "（表单）", "(form)"))
        negated.pop(concept, None)
    for concept in signs.absent:
        if concept in affirmed:
            warnings.append(
                FactWarning(
                    code="conflicting_sign",
                    message=_t(
                        lang,
                        f"表单说没有“{concept}”，但描述里提到了（“{present[concept]}”），按有处理，请确认。",
                        f'The form says "{concept}" is absent but the text mentions it '
                        f'("{present[concept]}"); it was counted as present — please check.',
                    ),
                )
            )
        elif concept not in present:
            negated.setdefault(concept, concept)
    red_concepts = {c for r in engine.rules.rules if r.colour == "red" for c in [*r.any, *r.all]}
    exact = {h.concept for h in hits if not h.fuzzy and not h.negated}
    fuzzy_red = any(h.fuzzy and not h.negated and h.concept in red_concepts - exact for h in hits)
    return present, negated, fuzzy_red


def _suppress(hits: list[Hit], suppressed_by: dict[str, list[str]]) -> list[Hit]:
    """Drops hits that lie inside a context hit ("以前有过热性惊厥" is history, not a seizure now)."""
    kept = []
    for hit in hits:
        contexts = suppressed_by.get(hit.concept, [])
        if any(
            other.concept in contexts
            and not other.negated
            and other.start < hit.end
            and hit.start < other.end
            for other in hits
        ):
            continue
        kept.append(hit)
    return kept


_CRT_TEXT = re.compile(
    r"(?:毛细血管(?:再)?充盈(?:时间)?|\bcrt\b|capillary refill(?: time)?)[^\d]{0,10}"
    r"(?P<seconds>\d{1,2}(?:\.\d)?)\s*(?:秒|s\b|sec|second)"
)
_VITAL_LIMITS: dict[str, tuple[float, float]] = {
    "respiratory_rate": PLAUSIBLE["respiratory_rate"],
    "heart_rate": PLAUSIBLE["heart_rate"],
    "spo2": PLAUSIBLE["spo2"],
    "crt_seconds": (0.0, 20.0),
}


def _vitals(
    signs: FeverSigns, text_vitals: VitalSigns | None, text: str, lang: Lang, warnings: list[FactWarning]
) -> dict[str, float]:
    found: dict[str, float] = {}
    if text_vitals is not None:
        for name in ("respiratory_rate", "heart_rate", "spo2"):
            value = getattr(text_vitals, name)
            if value is not None:
                found[name] = value
    crt = _CRT_TEXT.search(text)
    if crt:
        found["crt_seconds"] = float(crt.group("seconds"))
    for name in _VITAL_LIMITS:
        value = getattr(signs, name)
        if value is not None:
            found[name] = value
    for name, value in list(found.items()):
        low, high = _VITAL_LIMITS[name]
        if not low <= value <= high:
            code = {"crt_seconds": "implausible_crt"}.get(name, f"implausible_{name}")
            warnings.append(
                FactWarning(
                    code=code,
                    message=warning_message(code, lang, raw=f"{value:g}")
                    if name != "crt_seconds"
                    else _t(
                        lang,
                        f"毛细血管再充盈时间“{value:g}秒”不合理，没有采用，请重新按压测量。",
                        f'A capillary refill time of "{value:g} s" is not possible and was not used; '
                        "please press and count again.",
                    ),
                )
            )
            del found[name]
    return found


def _fever_days(
    inp: FeverInput, text_facts: Facts | None, temps: _TempView, trace: list[str]
) -> float | None:
    if inp.fever_days is not None and not 0 <= inp.fever_days <= 60:
        raise FeverInputError(
            "implausible_days",
            f"发热天数“{inp.fever_days:g}”不合理（应在0–60天之间），请确认。",
            f'A fever duration of "{inp.fever_days:g}" days is not plausible (0–60); please check.',
        )
    candidates: list[tuple[float, str]] = []
    if inp.fever_days is not None:
        candidates.append((inp.fever_days, "reported"))
    elif text_facts is not None and text_facts.duration_hours is not None:
        candidates.append((round(text_facts.duration_hours / 24, 2), "text"))
    if temps.computed_days is not None:
        candidates.append((temps.computed_days, "readings"))
    if not candidates:
        return None
    days, origin = max(candidates)
    trace.append(f"fever_days={days:g} (from {origin})")
    return days


# =============================================================================== rules


def _compare(value: float, op: str, threshold: float) -> bool:
    return {
        "<": value < threshold,
        "<=": value <= threshold,
        ">": value > threshold,
        ">=": value >= threshold,
    }[op]


def _rule_evidence(s: _State, rule: FeverRule, rules: FeverRulebook) -> str | None:
    """The evidence when every condition of the rule holds, else None."""
    parts: list[str] = []
    if rule.min_months is not None and s.age_months < rule.min_months:
        return None
    if rule.max_months is not None and s.age_months >= rule.max_months:
        return None
    if rule.all:
        if not all(c in s.present for c in rule.all):
            return None
        parts += [s.present[c] for c in rule.all]
    if rule.any:
        hits = [c for c in rule.any if c in s.present]
        if not hits:
            return None
        parts += [s.present[c] for c in hits]
    if any(c in s.present for c in rule.unless):
        return None
    window = _window(s, rule.window_hours or rules.recent_hours)
    if rule.temp_core_gte is not None:
        peak = max(window, key=lambda r: (r.core, r.time), default=None)
        if peak is None or peak.core < rule.temp_core_gte:
            return None
        parts.append(_reading_text(s, peak))
    if rule.temp_measured_lt is not None:
        # as measured: a site offset must not make a cold baby look warmer
        low = min(window, key=lambda r: (r.value_c, r.time), default=None)
        if low is None or low.value_c >= rule.temp_measured_lt:
            return None
        parts.append(_reading_text(s, low))
    if rule.vital is not None:
        value = s.vitals.get(rule.vital.name)
        if value is None or not _compare(value, rule.vital.op, rule.vital.value):
            return None
        parts.append(f"{rule.vital.name}={value:g}")
    if rule.fever_days_gte is not None:
        if s.fever_days is None or s.fever_days < rule.fever_days_gte:
            return None
        parts.append(_t(s.lang, f"发热{s.fever_days:g}天", f"fever {s.fever_days:g} days"))
    if rule.conditions_any:
        matched = [c for c in rule.conditions_any if c in s.conditions]
        if not matched:
            return None
        parts += [getattr(rules.conditions[c], s.lang) for c in matched]
    if rule.needs_fever and not s.fever:
        return None
    if rule.trend is not None:
        finding = next((f for f in s.trends if f.code == rule.trend), None)
        if finding is None:
            return None
        parts.append(finding.message)
    return "、".join(dict.fromkeys(parts)) if s.lang == "zh" else "; ".join(dict.fromkeys(parts))


def _window(s: _State, hours: float) -> list[_Reading]:
    latest = s.temps.latest
    if latest is None:
        return []
    return [r for r in s.temps.readings if (latest.time - r.time).total_seconds() <= hours * 3600]


def _reading_text(s: _State, reading: _Reading) -> str:
    site = _engine().rules.sites[reading.site]
    if reading.core == reading.value_c:
        return _t(s.lang, f"{reading.value_c:.1f}℃（{site.zh}）", f"{reading.value_c:.1f} °C ({site.en})")
    return _t(
        s.lang,
        f"{reading.value_c:.1f}℃（{site.zh}，约合核心体温{reading.core:.1f}℃）",
        f"{reading.value_c:.1f} °C ({site.en}, about {reading.core:.1f} °C core)",
    )


def _citations(rule: FeverRule, rules: FeverRulebook) -> list[FeverCitation]:
    doc_id, _, section = rule.source.partition("#")
    if not rule.guidelines:
        return [FeverCitation(doc_id=doc_id, section=section)]
    return [
        FeverCitation(
            doc_id=doc_id,
            section=section,
            guideline=rules.guidelines[g.ref].name,
            year=rules.guidelines[g.ref].year,
            guideline_section=g.section,
        )
        for g in rule.guidelines
    ]


def _apply_rules(s: _State, rules: FeverRulebook, under5: bool) -> None:
    for rule in rules.rules:
        if rule.scope == "under5" and not under5:
            continue
        evidence = _rule_evidence(s, rule, rules)
        if evidence is None:
            continue
        s.features.append(
            FeverFeature(
                rule_id=rule.id,
                colour=rule.colour,
                call_120=rule.call_120,
                name=LocalText(zh=rule.name.zh, en=rule.name.en),
                evidence=evidence,
                citations=_citations(rule, rules),
            )
        )
        s.trace.append(f"{rule.id} -> {rule.colour}{' +120' if rule.call_120 else ''}: {evidence}")
        if rule.advice:
            s.extra_do_now.append(rule.advice.get(s.lang))
        for finding in s.trends:
            if rule.trend == finding.code or (
                rule.id == "FV-TREND-5-DAYS" and finding.code == "fever_5_days"
            ):
                finding.rule_id = rule.id


_LEVEL_COLOUR: dict[Level, tuple[Colour, bool]] = {
    Level.emergency_ambulance: ("red", True),
    Level.emergency: ("red", False),
    Level.urgent: ("orange", False),
    Level.routine: ("green", False),
    Level.self_care: ("green", False),
}


def _apply_general_triage(s: _State, text: str) -> None:
    """From 5 years: the triage engine's red flags and levels replace the under-5 table."""
    from tools.triage import TriageInputError, assess

    temp = s.temps.peak
    vitals = VitalSigns(
        # the engine's thresholds are armpit values (fever = 37.5)
        temperature_c=_round1(temp.core - 0.5) if temp else None,
        respiratory_rate=s.vitals.get("respiratory_rate"),
        heart_rate=s.vitals.get("heart_rate"),
        spo2=s.vitals.get("spo2"),
    )
    facts = Facts(
        age_months=s.age_months,
        duration_hours=s.fever_days * 24 if s.fever_days is not None else None,
        vitals=vitals,
    )
    try:
        result = assess(TriageInput(text=text, lang=s.lang, facts=facts))
    except TriageInputError as exc:
        s.uncertain.append(exc.message(s.lang))
        return
    colour, call_120 = _LEVEL_COLOUR[result.level]
    s.trace.append(f"general triage: level={result.level.value} -> {colour}{' +120' if call_120 else ''}")
    names = _triage_names()
    cites = [FeverCitation(doc_id=c.doc_id, section=c.section) for c in result.citations]
    for flag in result.red_flags:
        flag_colour, flag_120 = _LEVEL_COLOUR[flag.level]
        zh, en = names.get(flag.rule_id, (flag.name, flag.name))
        s.features.append(
            FeverFeature(
                rule_id=flag.rule_id,
                colour=flag_colour,
                call_120=flag_120,
                name=LocalText(zh=zh, en=en),
                evidence=flag.evidence,
                citations=cites[:2],
            )
        )
    if COLOUR_RANK[colour] > COLOUR_RANK[s.colour] or (call_120 and not any(f.call_120 for f in s.features)):
        s.features.append(
            FeverFeature(
                rule_id=f"TRIAGE-{result.level.value}",
                colour=colour,
                call_120=call_120,
                name=LocalText(
                    zh=f"综合分诊：{_level_label(result.level, 'zh')}",
                    en=f"General triage: {_level_label(result.level, 'en')}",
                ),
                evidence="; ".join(r.rule_id for r in result.rule_trace[:4]),
                citations=cites[:2],
            )
        )
    if result.level == Level.routine:
        s.extra_do_now.append(
            _t(s.lang, "如果几天内没有好转，请门诊看医生。", "If not better within a few days, see a doctor.")
        )
    s.uncertain += [r for r in result.uncertainty_reasons if r not in s.uncertain]


def _level_label(level: Level, lang: Lang) -> str:
    labels = {
        Level.emergency_ambulance: ("立即拨打120", "call 120 now"),
        Level.emergency: ("立即去急诊", "go to the emergency department now"),
        Level.urgent: ("24小时内就医", "see a doctor within 24 hours"),
        Level.routine: ("近期门诊就诊", "see a doctor in the coming days"),
        Level.self_care: ("居家护理观察", "self-care at home"),
    }
    zh, en = labels[level]
    return zh if lang == "zh" else en


@lru_cache(maxsize=1)
def _triage_names() -> dict[str, tuple[str, str]]:
    book = load_rulebook()
    names = {r.id: (r.name.zh, r.name.en) for r in book.red_flags}
    names |= {v.id: (v.name.zh, v.name.en) for v in book.vital_rules}
    names |= {c.id: (c.name.zh, c.name.en) for c in book.vital_combos}
    return names


# =============================================================================== trends


def _trend_findings(s: _State, rules: FeverRulebook) -> None:
    params = rules.trends
    timed = [r for r in s.temps.readings if r.timed and not r.from_text]
    recent_ids = {r.index for r in s.temps.recent}
    if s.fever_days is not None and s.fever_days >= 5:
        s.trends.append(
            TrendFinding(
                code="fever_5_days",
                message=_t(
                    s.lang,
                    f"已发热约{s.fever_days:g}天（≥5天）",
                    f"fever for about {s.fever_days:g} days (>= 5)",
                ),
            )
        )
    low, high = params.rising_window_hours
    for dose in (r for r in timed if r.antipyretic):
        after = [
            r
            for r in timed
            if low <= (r.time - dose.time).total_seconds() / 3600 <= high and r.index in recent_ids
        ]
        rising = [
            r
            for r in after
            if r.core >= dose.core + params.rising_min_delta_c and r.core >= rules.fever_core_c
        ]
        if rising:
            top = max(rising, key=lambda r: r.core)
            hours = (top.time - dose.time).total_seconds() / 3600
            s.trends.append(
                TrendFinding(
                    code="rising_despite_antipyretic",
                    message=_t(
                        s.lang,
                        f"用退烧药时{dose.value_c:.1f}℃，{hours:.1f}小时后升到{top.value_c:.1f}℃",
                        f"{dose.value_c:.1f} °C when the medicine was given, {top.value_c:.1f} °C "
                        f"{hours:.1f} h later",
                    ),
                )
            )
            break
    fever = [r for r in timed if r.core >= rules.fever_core_c]
    for first, second in zip(fever, fever[1:], strict=False):
        if second.index in recent_ids and _afebrile_gap(timed, first, second, rules):
            gap_days = (second.time - first.time).total_seconds() / 86400
            s.trends.append(
                TrendFinding(
                    code="new_fever_after_free_days",
                    message=_t(
                        s.lang,
                        f"上次发烧在约{gap_days:.1f}天前，其间体温正常，现在又发烧（{second.value_c:.1f}℃）",
                        f"fever back ({second.value_c:.1f} °C) {gap_days:.1f} days after the last fever, "
                        "with normal readings in between",
                    ),
                )
            )
    # keep one finding per code (the latest)
    unique: dict[str, TrendFinding] = {}
    for finding in s.trends:
        unique[finding.code] = finding
    s.trends = list(unique.values())


def _missing_readings(s: _State, rules: FeverRulebook, now: datetime) -> None:
    colour = s.colour
    limit = rules.trends.missing_after_hours.get(colour)
    timed = [r for r in s.temps.readings if r.timed and not r.from_text]
    if limit is None or not timed:
        return
    hours = (now - timed[-1].time).total_seconds() / 3600
    if hours <= limit:
        return
    s.trends.append(
        TrendFinding(
            code="readings_missing",
            message=_t(
                s.lang,
                f"已经{hours:.0f}小时没有新的体温记录"
                f"（{_colour_word(colour, 'zh')}时应每{limit:g}小时内复测）",
                f"no temperature recorded for {hours:.0f} h "
                f"(at {colour}, re-measure at least every {limit:g} h)",
            ),
        )
    )
    s.extra_do_now.insert(
        0,
        _t(
            s.lang,
            "现在就给孩子量一次体温，并看看精神、面色、呼吸和尿量，然后重新评估。",
            "Measure the temperature now and look at alertness, colour, breathing and urine, "
            "then grade again.",
        ),
    )
    s.uncertain.append(
        _t(s.lang, "最近没有体温记录，结果可能已经过时", "no recent reading; this result may be out of date")
    )


def _colour_word(colour: str, lang: Lang) -> str:
    words = {"green": ("绿色", "green"), "orange": ("橙色", "orange"), "red": ("红色", "red")}
    zh, en = words[colour]
    return zh if lang == "zh" else en


# =============================================================================== notes


def _temperature_notes(s: _State, rules: FeverRulebook, rejected: int) -> None:
    temps = s.temps
    if temps.latest is None:
        s.uncertain.append(
            _t(
                s.lang,
                "没有可用的体温读数，请重新测量（电子体温计测腋下）",
                "no usable temperature reading; please measure again (electronic thermometer in the armpit)",
            )
        )
        if rejected:
            s.extra_do_now.insert(
                0,
                _t(
                    s.lang,
                    "体温读数不合理，请重新测量。",
                    "The temperature reading is not possible; please re-measure.",
                ),
            )
        return
    sites = {r.site for r in temps.recent}
    if "forehead" in sites:
        s.uncertain.append(
            _t(
                s.lang,
                "额温枪读数不够可靠，高或意外的读数请用腋下电子体温计确认",
                "forehead readings are unreliable; confirm a high or surprising reading in the armpit",
            )
        )
    if "unknown" in sites:
        s.uncertain.append(
            _t(
                s.lang,
                "没有说明测量部位，按腋温估计",
                "measurement site not given; read as an armpit reading",
            )
        )
    if "ear" in sites and s.age_months < 1:
        s.uncertain.append(
            _t(
                s.lang,
                "4周以下的宝宝建议用电子体温计测腋温，耳温不够准",
                "under 4 weeks, use an electronic armpit thermometer; ear readings are less accurate",
            )
        )
    if "oral" in sites and s.age_months < UNDER5_MONTHS:
        s.uncertain.append(
            _t(
                s.lang,
                "5岁以下不建议测口温，建议测腋温",
                "oral readings are not advised under 5 years; use the armpit",
            )
        )
    # a threshold between what the site shows and what it can under-read by -> re-check soon
    peak = temps.peak
    assert peak is not None
    thresholds = {rules.fever_core_c} | {
        r.temp_core_gte
        for r in rules.rules
        if r.temp_core_gte is not None
        and (r.min_months is None or s.age_months >= r.min_months)
        and (r.max_months is None or s.age_months < r.max_months)
    }
    crossing = sorted(t for t in thresholds if peak.core < t <= peak.max_core)
    if crossing:
        site = rules.sites[peak.site]
        s.uncertain.append(
            _t(
                s.lang,
                f"{site.zh}可能偏低，{peak.value_c:.1f}℃接近{crossing[0]:g}℃的界线",
                f"{site.en} readings can under-read; "
                f"{peak.value_c:.1f} °C is near the {crossing[0]:g} °C line",
            )
        )
        s.extra_do_now.append(
            _t(
                s.lang,
                "30分钟内再量一次（电子体温计测腋下或耳温），读数更高时重新评估。",
                "Measure again within 30 minutes (electronic armpit or ear thermometer) "
                "and grade again if higher.",
            )
        )


_ALERTNESS = {
    "well_appearing", "reduced_activity", "lethargy", "very_drowsy", "unresponsive", "floppy",
    "no_social_response", "looks_very_ill", "confusion", "inconsolable_cry", "unconscious",
}  # fmt: skip
_RED_ALERTNESS = _ALERTNESS - {"well_appearing"}
_CHECKS: tuple[tuple[frozenset[str], str, str], ...] = (
    (
        frozenset(_ALERTNESS),
        "精神和反应：能不能逗笑、玩耍，叫醒后能不能保持清醒",
        "alertness: does the child smile and play, and stay awake once woken",
    ),
    (
        frozenset({"dyspnea", "severe_dyspnea", "grunting", "grunting_breath", "chest_indrawing",
                   "nasal_flaring", "fast_breathing",
                   "breathing_difficulty", "not_breathing_normally"}),
        "呼吸：安静时数1分钟呼吸次数，看有没有呻吟、鼻翼扇动、胸口往里陷",
        "breathing: count breaths for a full minute at rest; "
        "look for grunting, nostril flaring, chest sucking in",
    ),
    (
        frozenset({"pale_skin", "mottled_skin", "ashen_skin", "cyanosis"}),
        "面色：皮肤、嘴唇有没有苍白、发花、发灰或发紫",
        "colour: is the skin or are the lips pale, mottled, grey or blue",
    ),
    (
        frozenset({"poor_feeding", "reduced_urine", "no_urine_long", "dry_mouth", "dehydration_signs",
                   "dehydration_marked"}),
        "喝水和尿量：喝得怎么样，最近一次尿是什么时候",
        "drinking and urine: how much is the child drinking, when did they last pass urine",
    ),
    (
        frozenset({"rash", "non_blanching_rash"}),
        "皮疹：有皮疹时用玻璃杯压一压，看是否褪色",
        "rash: if there is one, press a glass on it and see whether it fades",
    ),
)  # fmt: skip


def _behaviour_notes(s: _State) -> None:
    if "well_appearing" in s.present and any(c in s.present for c in _RED_ALERTNESS):
        s.uncertain.append(
            _t(
                s.lang,
                "描述里既说孩子精神好又说精神差，按更严重的处理",
                "the description says both well and unwell; the more serious reading was used",
            )
        )
    described = set(s.present) | set(s.negated)
    if not (described & _ALERTNESS) and s.colour != "red":
        s.uncertain.append(
            _t(
                s.lang,
                "没有描述孩子的精神状态，这比体温更重要",
                "the child's alertness was not described; it matters more than the number",
            )
        )


def _checks(s: _State) -> list[str]:
    described = set(s.present) | set(s.negated)
    has_rr = "respiratory_rate" in s.vitals
    out = []
    for concepts, zh, en in _CHECKS:
        if described & concepts or (has_rr and "dyspnea" in concepts):
            continue
        out.append(_t(s.lang, zh, en))
    return out


# =============================================================================== result


def _result(s: _State, rules: FeverRulebook, under5: bool, rejected: int) -> FeverGrade:
    colour = s.colour
    call_120 = any(f.call_120 for f in s.features)
    key = "call_120" if call_120 else colour
    texts = rules.colours[key]
    if not s.features:
        s.trace.append("no orange or red feature -> green")
    reassuring = [s.present["well_appearing"]] if "well_appearing" in s.present else []
    watched = {c for r in rules.rules for c in [*r.any, *r.all]} | {
        c for group, _, _ in _CHECKS for c in group
    }
    denied = list(dict.fromkeys(text for concept, text in s.negated.items() if concept in watched))
    if denied:
        reassuring.append(
            _t(s.lang, "已说明没有：", "stated absent: ") + ("、" if s.lang == "zh" else ", ").join(denied)
        )
    do_now = s.extra_do_now + [d.get(s.lang) for d in texts.do_now]
    temps = s.temps
    latest, peak = temps.latest, temps.peak
    features = sorted(s.features, key=lambda f: (-int(f.call_120), -COLOUR_RANK[f.colour]))
    return FeverGrade(
        colour=colour,
        call_120=call_120,
        label=texts.label.get(s.lang),
        meaning=texts.meaning.get(s.lang),
        features=features,
        reassuring=reassuring,
        do_now=list(dict.fromkeys(do_now)),
        remeasure=RemeasureAdvice(in_hours=texts.remeasure.hours, advice=getattr(texts.remeasure, s.lang)),
        escalation_triggers=[e.get(s.lang) for e in texts.escalation],
        number_statement=_number_statement(s, rules),
        temperature=TemperatureSummary(
            latest_c=latest.value_c if latest else None,
            latest_site=latest.site if latest else None,
            latest_core_c=latest.core if latest else None,
            peak_c=peak.value_c if peak else None,
            peak_core_c=peak.core if peak else None,
            fever_now=temps.fever_now,
            readings_used=len(temps.readings),
            readings_rejected=rejected,
        ),
        fever_days=s.fever_days,
        age_months=s.age_months,
        table="nice_ng143_under5" if under5 else "general_triage",
        trends=s.trends,
        checks=_checks(s) if not call_120 else [],
        warnings=s.warnings,
        uncertain=bool(s.uncertain),
        uncertainty_reasons=list(dict.fromkeys(s.uncertain)),
        rule_trace=s.trace,
        lang=s.lang,
        engine_version=f"fever-{FEVER_ENGINE_VERSION}+rules.{rules.version}",
        knowledge_version=_knowledge_version(),
        disclaimer=rules.disclaimer.get(s.lang),
    )


_TEMPERATURE_RULES = {"FV-RED-AGE-U3M", "FV-ORANGE-AGE-3-6M", "FV-ORANGE-VERY-HIGH"}


def _number_statement(s: _State, rules: FeverRulebook) -> str | None:
    """Said whenever there is a fever and the colour does not come from the number itself."""
    peak = s.temps.peak
    if peak is None or not s.temps.fever_now:
        return None
    by_number = any(f.rule_id in _TEMPERATURE_RULES for f in s.features)
    parts = []
    if not s.features:
        parts.append(rules.number_statement.text.get(s.lang).format(temp=f"{peak.value_c:.1f}"))
    elif not by_number:
        parts.append(rules.number_statement.signs.get(s.lang))
    if s.age_months < 6:
        parts.append(rules.number_statement.infant.get(s.lang))
    return ("" if s.lang == "zh" else " ").join(parts) or None


def _knowledge_version() -> str:
    from tools.triage import knowledge_version

    return knowledge_version()


def grade_json(payload: dict[str, Any]) -> dict[str, Any]:
    """Convenience for callers speaking JSON: FeverInput fields in, FeverGrade JSON out."""
    return grade_fever(FeverInput.model_validate(payload)).model_dump(mode="json")


__all__ = [
    "FeverGrade",
    "FeverInput",
    "FeverInputError",
    "FeverSigns",
    "TemperatureReading",
    "grade_fever",
    "grade_json",
    "load_fever_rules",
    "parse_site",
]
