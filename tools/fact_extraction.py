"""Deterministic extraction of patient facts from free text (zh simplified/traditional, en, mixed).

    extract_facts("我儿子三岁半，体温39度2，烧了两天") -> ExtractedFacts(facts=Facts(age_months=42,
        sex="male", duration_hours=48, vitals=VitalSigns(temperature_c=39.2)), warnings=[], evidence=…)

Fills Facts.age_months, sex, pregnant, pregnancy_weeks, duration_hours and vitals.*. Rules:

* Every number needs its own context (a unit, or a keyword right before it): "3天" is a duration,
  "39岁" an age, "打了120" / "2楼" / "第3次" are nothing. Each stretch of text feeds one fact only;
  extractors run from most to least specific (blood pressure, pregnancy, age, vitals, duration).
* Impossible values (tools.units.PLAUSIBLE) are not stored; they give an `implausible_*` warning
  asking to re-measure. Alarming but possible values (42 °C, SpO2 85) are kept: urgency is the
  engine's decision. A number whose unit is not understood ("体温39斤") gives `unknown_unit`.
* Guesses are stored *with* a warning: bare temperature 95–110 → °F (`assumed_fahrenheit`),
  bare 340–435 → 34.0–43.5 (`assumed_decimal_point`), bare glucose > 35 → mg/dL (`assumed_mg_dl`),
  BP pair with systolic ≤ 35 → kPa (`assumed_kpa`).
* Approximations: "多" = lower third of the implied range (70多岁 → 73 y, 一个多月 → 1.3 months) but
  +0.3 °C for temperature (39度多 → 39.3; not 39.5, which would over-state); ranges take the upper
  bound (38-39度 → 39, 两三天 → 3 d); "新生儿" with no number → 0.5 months; relative times are rough
  (刚才/just now 0.5 h, 今天早上 6 h, 昨晚 12 h, 昨天/since yesterday 24 h, 前天 48 h, 上周 168 h);
  "第N天"/"day N of" = N*24 - 12 h (the middle of day N: 发烧第三天 → 60 h).
* A bare number counts as a temperature only in the body band (34–43.5, or 95–110 as °F with a
  warning) and a few filler words after a fever/peak word ("发烧第三天了，最高39.2", "峰值39.5",
  "fever, highest 39.4"); an age in brackets after a person ("my daughter (20 months)",
  "女儿（8个月）") is an age; "woman at 30 weeks" / "she is 28 weeks" / "G2P1 at 36 weeks" is a
  pregnancy (not with a child around for she/I), "for 3 weeks" stays a duration.
* Several values of one vital, or a range ("血糖都在16到18"): the most abnormal is kept
  (errs towards urgency); several
  durations: the first explicit one (relative words only when there is none); several different
  ages: the first, plus a `multiple_values` warning (the speaker may have given their own age).
* Sex is taken from the most explicit cue: 男/女/male/woman… > 儿子/女儿/son/daughter >
  爸/妈/老公/husband… > 他/她/he/she; the speaker's own role ("我是孩子妈妈", "as a mom") and
  companions ("和老公一起") are ignored; "孩子"/"宝宝" say nothing. Pregnancy implies female.

Evidence spans are quoted from the *normalised* text (simplified, half-width, lower-case).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from opencc import OpenCC
from pydantic import BaseModel, Field

from tools import units
from tools.fact_warnings import ExtractionWarning, warning_message
from tools.triage_models import Facts, Lang, VitalSigns
from tools.zh_numbers import (
    EN_NUMBER_RE,
    ZH_NUMERAL_RE,
    approx_more,
    parse_en_number,
    parse_number,
    parse_zh_number,
)

__all__ = [
    "ExtractedFacts",
    "ExtractionWarning",
    "extract_facts",
    "normalize_text",
    "parse_zh_number",
    "warning_message",
]

# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------

_T2S = OpenCC("t2s")  # built once: loading the dictionaries is the slow part


def _build_char_table() -> dict[int, int]:
    def lower(cp: int) -> int:
        return cp + 32 if ord("A") <= cp <= ord("Z") else cp

    table = {cp: lower(cp - 0xFEE0) for cp in range(0xFF01, 0xFF5F)}  # full-width ASCII block
    table[0x3000] = 0x20  # ideographic space
    table.update({cp: lower(cp) for cp in range(ord("A"), ord("Z") + 1)})
    for ch in "º˚":  # often typed for the degree sign
        table[ord(ch)] = ord("°")
    for ch in "–—―−":
        table[ord(ch)] = ord("-")
    table[ord("﹪")] = ord("%")
    table[ord("∶")] = ord(":")
    table[ord("〜")] = ord("~")
    return table


_CHAR_TABLE = _build_char_table()
_SPACES = re.compile(r"\s+")


_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")


def normalize_text(text: str) -> str:
    """Traditional → simplified, full-width → half-width, ASCII lower-case, whitespace collapsed."""
    if not text:
        return ""
    # a line break ends a clause (the conversation joins its turns with one): keep it as "; "
    text = _LINE_BREAKS.sub("; ", _T2S.convert(text).translate(_CHAR_TABLE).strip())
    return _SPACES.sub(" ", text).strip()


# ---------------------------------------------------------------------------------------------
# Result model
# ---------------------------------------------------------------------------------------------


class ExtractedFacts(BaseModel):
    facts: Facts = Field(default_factory=Facts)
    warnings: list[ExtractionWarning] = Field(default_factory=list)
    evidence: dict[str, str] = Field(default_factory=dict)  # "vitals.spo2" -> "血氧88"
    normalized_text: str = ""


# ---------------------------------------------------------------------------------------------
# Regex building blocks (all applied to normalised text)
# ---------------------------------------------------------------------------------------------

_ZH_CHARS = "零〇一二两俩三仨四五六七八九十百千万几"
_AR = r"(?<![\d.])\d+(?:\.\d+)?"
_ZH = rf"(?<![{_ZH_CHARS}]){ZH_NUMERAL_RE}(?!分之)"
NUM = rf"(?:{_AR}|{_ZH})"
EN_NUM = rf"(?<![a-z\d.]){EN_NUMBER_RE}"
WS = r"(?<![a-z])"  # ASCII word start/end: \b is useless next to CJK (CJK chars count as \w)
WE = r"(?![a-z])"

_FILL_WORDS = (
    "是|为|有|达到|达|到了|到|了|约|大概|大约|将近|接近|最高到|最高|高达|一直在|一直|在|还是|还|也|都|就|"
    "已经|已|只有|只|仅|才|测的|测了|测|量的|量了|量|显示|值|结果|一下|差不多|快|每分钟|一分钟|每分|"
    "百分之|~|≈|"
    r"is|was|were|are|of|at|around|about|approx\.?|approximately|up to|reached|reaching|hit|hitting|"
    r"went up to|spiked to|as high as|over|above|nearly|almost|reading|reads|read|showed|shows|"
    r"measured|max|only|just|now|currently|today|'s"
)
# Greedy on purpose: "心跳一分钟120下" must not read 一 as the number.
FILL = rf"(?:\s*(?:(?:{_FILL_WORDS})(?=[^a-z]|$)|[:=]))*\s*"

_BABY = "小宝宝|宝宝|宝贝|小婴儿|婴儿|新生儿|小孩子|小孩|孩子|儿子|女儿|闺女|娃娃|娃|男宝|女宝|男婴|女婴|患儿|小宝|宝"  # noqa: E501

# What may follow a number and means "this number is some other quantity": leave it alone.
_OTHER_QTY = re.compile(
    r"\s*(?:个|天|日|周|星期|礼拜|小时|钟头|分钟|秒|岁|年|月|次|回|号|楼|层|点钟|遍|下|片|粒|顿|"
    r"h(?:rs?|ours?)?(?![a-z])|days?(?![a-z])|d(?![a-z])|weeks?(?![a-z])|wks?(?![a-z])|"
    r"months?(?![a-z])|mos?(?![a-z])|years?(?![a-z])|yrs?(?![a-z])|mins?(?![a-z])|"
    r"minutes?(?![a-z])|sec(?:ond)?s?(?![a-z])|times?(?![a-z])|st|nd|rd|th(?![a-z]))"
)
# Measurement units that cannot belong to the quantity in context → unknown_unit.
_FOREIGN_UNIT = re.compile(
    r"\s*(?:公斤|千克|斤|毫克|克|毫升|升|厘米|毫米|公分|公里|米|块钱|块|元|磅|千卡|卡|"
    r"(?:kg|g|mg|lbs?|cm|mm|km|m|ml|l|oz|kcal|cal|mmhg|kpa|bpm|mmol)(?![a-z])|%|"
    r"(?:[a-z]+\s+)?units?(?![a-z]))"
)
_ATTACHED_LETTERS = re.compile(r"[a-z]+")

_TEMP_STRONG_CTX = r"体温|温度|测温|腋温|肛温|耳温|口温|额温|" + WS + r"(?:temperature|temp|tmax|t max)" + WE
_TEMP_WEAK_CTX = (
    r"发烧|发热|高烧|低烧|高热|烧到|烧(?!伤|心|烤|饭|水|菜|香|掉|坏|了?\d+次)|"
    + WS
    + r"(?:fever|febrile)"
    + WE
)
_TEMP_ANY_CTX = re.compile(rf"(?:{_TEMP_STRONG_CTX}|{_TEMP_WEAK_CTX})")
_ENVIRONMENT_CTX = re.compile(
    r"室温|气温|水温|环境|室外|外面|天气|空调|冰箱|洗澡水|零下|"
    + WS
    + r"(?:room|outside|weather|water|bath|fridge|freezer|ambient|oven)"
    + WE
)

# ---------------------------------------------------------------------------------------------
# Internal collection
# ---------------------------------------------------------------------------------------------


@dataclass
class _Hit:
    value: float | bool | str | tuple[float, float | None]
    evidence: str
    start: int
    priority: int = 1  # higher wins over position (explicit beats fallback)
    linked: bool = False  # an age said right after a patient word ("儿子3岁"), preferred


_IMPLAUSIBLE_CODE = {
    "vitals.temperature_c": "implausible_temperature",
    "vitals.heart_rate": "implausible_heart_rate",
    "vitals.respiratory_rate": "implausible_respiratory_rate",
    "vitals.spo2": "implausible_spo2",
    "vitals.systolic_bp": "implausible_blood_pressure",
    "vitals.diastolic_bp": "implausible_blood_pressure",
    "vitals.glucose_mmol": "implausible_glucose",
    "age_months": "implausible_age",
    "pregnancy_weeks": "implausible_pregnancy_weeks",
}


def _num(token: str | None) -> float | None:
    if token is None:
        return None
    return parse_number(token)


def _is_int(value: float) -> bool:
    return value == int(value)


class _Scan:
    """One extraction pass over a normalised text."""

    def __init__(self, text: str, lang: Lang) -> None:
        self.t = text
        self.lang: Lang = lang
        self.consumed: list[tuple[int, int]] = []
        self.hits: dict[str, list[_Hit]] = {}
        self.warnings: list[ExtractionWarning] = []
        # The speaker's own role or a companion ("我是孩子妈妈", "和老公"): never the patient.
        self.speaker_spans = [(m.start(), m.end()) for m in _SEX_NOT_PATIENT.finditer(text)]

    # -- bookkeeping ---------------------------------------------------------------------------
    def free(self, start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in self.consumed)

    def consume(self, start: int, end: int) -> None:
        self.consumed.append((start, end))

    def add(self, field: str, value: _Hit) -> None:
        self.hits.setdefault(field, []).append(value)

    def warn(self, code: str, field: str | None, start: int, end: int, **params: str | float) -> None:
        evidence = self.t[start:end].strip()
        if any(w.code == code and w.evidence == evidence for w in self.warnings):
            return
        self.warnings.append(ExtractionWarning.build(code, self.lang, field, evidence, **params))

    def accept(self, field: str, value: float, start: int, end: int, priority: int = 1) -> bool:
        """Store a measured value if plausible, else warn; the span is consumed either way."""
        self.consume(start, end)
        key = field.removeprefix("vitals.")
        if not units.is_plausible(key, value):
            self.warn(_IMPLAUSIBLE_CODE[field], field, start, end)
            return False
        self.add(field, _Hit(round(value, 2), self.t[start:end].strip(), start, priority))
        return True

    def finditer(self, pattern: re.Pattern[str]) -> Iterator[re.Match[str]]:
        for m in pattern.finditer(self.t):
            if m.group(0).strip() and self.free(m.start(), m.end()):
                yield m

    def after_number(self, pos: int, valid: re.Pattern[str] | None) -> tuple[str, re.Match[str] | None, int]:
        """What follows a number: ("valid"|"other"|"foreign"|"none", unit match, end)."""
        if valid is not None:
            m = valid.match(self.t, pos)
            if m and m.group(0).strip():
                return "valid", m, m.end()
        m = _OTHER_QTY.match(self.t, pos)
        if m:
            return "other", m, pos
        m = _FOREIGN_UNIT.match(self.t, pos) or _ATTACHED_LETTERS.match(self.t, pos)
        if m:
            return "foreign", m, m.end()
        return "none", None, pos

    def context_before(self, pattern: re.Pattern[str], pos: int, width: int = 12) -> bool:
        window = self.t[max(0, pos - width) : pos]
        return bool(pattern.search(window))


# ---------------------------------------------------------------------------------------------
# Blood pressure
# ---------------------------------------------------------------------------------------------

_BP_CTX = r"血压|" + WS + r"(?:bp|b/p|blood pressure)" + WE
_BP_UNIT = re.compile(r"\s*(?:(?P<mmhg>mmhg|mm hg|mm/hg|毫米汞柱)|(?P<kpa>kpa|千帕))")
_BP_PAIR = re.compile(
    rf"(?:(?P<ctx>{_BP_CTX}){FILL})?(?<![\d/])(?P<s>{NUM})(?P<smore>多)?\s*(?:/|\\|over|比)\s*"
    rf"(?P<d>{NUM})(?P<dmore>多)?(?!\s*/\s*\d)"
)
_BP_PART = re.compile(
    r"(?P<which>高压|收缩压|上压|低压|舒张压|下压|"
    + WS
    + r"(?:systolic|diastolic|sbp|dbp)(?: bp| blood pressure| pressure)?"
    + WE
    + rf"){FILL}(?P<num>{NUM})(?P<more>多)?"
)
# "血压高185": the word 高 between keyword and number says "high", not "systolic".
_BP_SINGLE = re.compile(
    rf"(?P<ctx>{_BP_CTX})(?:(?:有点|很|偏|太|特别)?高(?:到|达)?)?{FILL}(?P<num>{NUM})(?P<more>多)?(?!\s*(?:/|\d))"
)
# "上压185下压115": 下 right after a number is usually a count ("120下"), here the next part.
_BP_NEXT_PART = re.compile(r"\s*(?:下压|低压|舒张压)")


def _value_with_more(token: str, more: str | None) -> float | None:
    value = _num(token)
    if value is None:
        return None
    return approx_more(value) if more else value


def _extract_blood_pressure(sc: _Scan) -> None:
    for m in sc.finditer(_BP_PAIR):
        s = _value_with_more(m.group("s"), m.group("smore"))
        d = _value_with_more(m.group("d"), m.group("dmore"))
        if s is None or d is None:
            continue
        kind, unit, end = sc.after_number(m.end(), _BP_UNIT)
        has_ctx = m.group("ctx") is not None
        if kind == "foreign" and has_ctx:
            sc.consume(m.start(), end)
            sc.warn("unknown_unit", "vitals.systolic_bp", m.start(), end)
            continue
        explicit = kind == "valid"
        # A bare "120/80" is a blood pressure only when it looks like one (dates do not).
        looks_like_bp = 70 <= s <= 250 and 30 <= d <= 150 and d < s and _is_int(s) and _is_int(d)
        if not (has_ctx or explicit or looks_like_bp):
            continue
        start = m.start("ctx") if has_ctx else m.start("s")
        end = end if explicit else m.end()
        raw = sc.t[start:end].strip()
        if explicit and unit is not None and unit.group("kpa"):
            s, d = units.kpa_to_mmhg(s), units.kpa_to_mmhg(d)
        elif has_ctx and not explicit and s <= units.BARE_BP_KPA_MAX_SYSTOLIC and d < s:
            s, d = units.kpa_to_mmhg(s), units.kpa_to_mmhg(d)
            sc.warn("assumed_kpa", "vitals.systolic_bp", start, end, value=f"{s:g}/{d:g}")
        _store_bp(sc, s, d, start, end, raw)

    parts: dict[str, tuple[float, int, int]] = {}
    for m in sc.finditer(_BP_PART):
        value = _value_with_more(m.group("num"), m.group("more"))
        if value is None:
            continue
        kind, unit, end = sc.after_number(m.end(), _BP_UNIT)
        if kind == "other" and _BP_NEXT_PART.match(sc.t, m.end()):
            kind = "none"
        if kind == "other":
            continue
        if kind == "foreign":
            sc.consume(m.start(), end)
            sc.warn("unknown_unit", "vitals.systolic_bp", m.start(), end)
            continue
        if kind == "valid" and unit is not None and unit.group("kpa"):
            value = units.kpa_to_mmhg(value)
        end = end if kind == "valid" else m.end()
        sc.consume(m.start(), end)
        which = m.group("which")
        is_systolic = which[0] in "高收上s" and not which.startswith("d")
        parts.setdefault("s" if is_systolic else "d", (value, m.start(), end))
    if parts:
        s_part, d_part = parts.get("s"), parts.get("d")
        start = min(p[1] for p in parts.values())
        end = max(p[2] for p in parts.values())
        _store_bp(
            sc,
            s_part[0] if s_part else None,
            d_part[0] if d_part else None,
            start,
            end,
            sc.t[start:end].strip(),
        )

    for m in sc.finditer(_BP_SINGLE):
        value = _value_with_more(m.group("num"), m.group("more"))
        if value is None:
            continue
        kind, unit, end = sc.after_number(m.end(), _BP_UNIT)
        if kind == "other":
            continue
        if kind == "foreign":
            sc.consume(m.start(), end)
            sc.warn("unknown_unit", "vitals.systolic_bp", m.start(), end)
            continue
        if kind == "valid" and unit is not None and unit.group("kpa"):
            value = units.kpa_to_mmhg(value)
        end = end if kind == "valid" else m.end()
        _store_bp(sc, value, None, m.start(), end, sc.t[m.start() : end].strip())


def _store_bp(sc: _Scan, s: float | None, d: float | None, start: int, end: int, raw: str) -> None:
    sc.consume(start, end)
    ok = True
    if s is not None and not units.is_plausible("systolic_bp", s):
        ok = False
    if d is not None and not units.is_plausible("diastolic_bp", d):
        ok = False
    if s is not None and d is not None and d >= s:
        ok = False
    if not ok:
        sc.warn("implausible_blood_pressure", "vitals.systolic_bp", start, end)
        return
    sc.add("bp", _Hit((s if s is not None else -1.0, d), raw, start))


# ---------------------------------------------------------------------------------------------
# Pregnancy
# ---------------------------------------------------------------------------------------------

_PREG_PREFIX = r"(?:孕|怀孕|妊娠|怀了|怀上)(?:了|已经|已|有|快|第|满|刚)*\s*"
_PREG_WEEKS = [
    re.compile(
        rf"{_PREG_PREFIX}(?P<w>{NUM})(?P<more>多)?(?:\+(?P<d1>\d))?\s*(?:周|个?星期|个?礼拜|w{WE})"
        rf"(?:\s*(?:\+|零|又)?\s*(?P<d2>{NUM})\s*天)?(?!岁|年)"
    ),
    re.compile(rf"(?P<w>{NUM})(?P<more>多)?\s*(?:周|个?星期)(?:的)?(?:身孕|孕妇|孕(?!周))"),
    re.compile(
        rf"(?P<w>{EN_NUM})(?:\+(?P<d1>\d))?\s*-?\s*(?:weeks?|wks?|w)\s*(?:\+?\s*(?P<d2>\d)\s*(?:days?|d)\s*)?"
        r"(?:pregnant|gestation(?:al age)?|of pregnancy|of gestation|into (?:my|her|the) pregnancy|along)"
        + WE
    ),
    re.compile(
        rf"{WS}(?:pregnant|gestation(?:al age)?|ga)\s*(?:at|with|of|,|:)?\s*(?P<w>\d{{1,2}}(?:\.\d)?)"
        rf"(?:\+(?P<d1>\d))?\s*(?:weeks?|wks?|w){WE}"
    ),
]
# English clinical style without the word "pregnant": "a woman at 30 weeks", "she is 28 weeks",
# "G2P1 at 36 weeks". Only an adult female subject (or obstetric G/P notation) followed by
# "at/is" makes the weeks a gestation; "for 3 weeks" stays a duration.
_PREG_EN_SUBJECT = re.compile(
    WS + r"(?P<subj>(?P<gp>g\d{1,2}\s*p\d{1,4}(?:-?\d){0,3}|gravida \d{1,2}|"
    r"primigravida|multigravida|primip|multip)|"
    r"(?P<pronoun>she|i|patient|pt)|woman|lady|wife|girlfriend|partner|mother|mom|mum)"
    + WE
    + r"(?P<mid>(?:'s|'m|\s*,)?(?:\s+(?:who|is|am|at|currently|now|about|around|approximately|approx\.?|"
    r"only|already|just|almost|nearly))*\s+)"
    rf"(?P<w>\d{{1,2}}(?:\.\d)?)(?:\+(?P<d1>\d))?\s*-?\s*(?:weeks?|wks?|wk|w)'?{WE}"
    r"(?:\s*(?:\+|and)?\s*(?P<d2>\d)\s*(?:days?|d)(?![a-z]))?"
    r"(?!\s*(?:(?:old|ago|later|before|after|since|post|postpartum|postnatal|out|from)(?![a-z])|"
    r"of (?!pregnancy|gestation)|into (?!(?:my|her|the) pregnancy)))"
)
_PREG_EN_LINK = re.compile(r"\b(?:at|is|am)\b|'s|'m")
# With "she"/"I"/"patient" the weeks may be a baby's age ("my baby girl, she is 6 weeks").
_CHILD_IN_TEXT = re.compile(
    r"宝宝|孩子|婴儿|女儿|儿子|新生儿|"
    + WS
    + r"(?:baby|babies|infant|newborn|daughter|son|girl|boy|child|kid|toddler)"
    + WE
)
_PREG_EN_WEEKS_BAND = (4.0, 44.0)


def _extract_pregnancy_en_subject(sc: _Scan) -> None:
    for m in sc.finditer(_PREG_EN_SUBJECT):
        if not m.group("gp") and not _PREG_EN_LINK.search(m.group("mid")):
            continue  # "woman 30 weeks" without at/is: too loose
        if m.group("pronoun") and _CHILD_IN_TEXT.search(sc.t):
            continue
        weeks = _num(m.group("w"))
        if weeks is None or not _in(_PREG_EN_WEEKS_BAND, weeks):
            continue
        days = _num(m.group("d1") or m.group("d2"))
        if days is not None and days < 7:
            weeks += days / 7
        start = m.end("subj")
        while start < m.start("w") and sc.t[start] in " ,'":
            start += 1
        if sc.accept("pregnancy_weeks", round(weeks, 1), start, m.end()):
            sc.add("pregnant", _Hit(True, sc.t[start : m.end()].strip(), start))


_PREG_MONTHS = [
    re.compile(rf"{_PREG_PREFIX}(?P<m>{NUM})(?P<more>多)?(?:个)?(?P<half>半)?(?P<more2>多)?月"),
    re.compile(rf"(?P<m>{NUM})(?P<more>多)?个(?P<half>半)?(?P<more2>多)?月(?:的)?(?:身孕|孕妇)"),
    re.compile(
        rf"(?P<m>{EN_NUM})(?P<half> and a half)?\s*-?\s*months?\s*"
        rf"(?:pregnant|into (?:my|her|the) pregnancy|along|of pregnancy){WE}"
    ),
]
_PREG_NEG = re.compile(
    r"(?:没有|没|未|不是|并未|并没有|不可能|不会)(?:在)?(?:怀孕|怀上|孕妇|有孕|妊娠)|未孕|排除(?:了)?怀孕|"
    r"(?:验孕(?:棒|试纸)?|hcg)(?:是|显示|结果)?阴性|"
    + WS
    + r"(?:(?:not|isn'?t|aren'?t|never been|can'?t be|cannot be|couldn'?t be)\s+(?:currently\s+)?pregnant|"
    r"(?:no|negative)\s+(?:chance of\s+)?pregnancy(?:\s+test)?|"
    r"pregnancy test (?:was |is |came back )?negative)"
)
_PREG_MAYBE = re.compile(
    r"(?:可能|也许|怀疑|疑似|不确定|不知道|不清楚|会不会|是不是|有没有)(?:是|自己|已经|她)?(?:怀孕|怀上|有孕)|"
    + WS
    + r"(?:(?:may|might|could)\s+be\s+pregnant|possibly pregnant|"
    r"think (?:i'?m|i am|she'?s|she is) pregnant|"
    r"(?:chance|possibility) (?:that )?(?:i'?m|i am|she'?s|she is|of being) pregnant|"
    r"not sure (?:if|whether) (?:i'?m|i am|she'?s|she is) pregnant)"
)
_PREG_POS = re.compile(
    r"宫外孕|怀孕|怀上|孕妇|有孕|身孕|妊娠|孕期|孕早期|孕中期|孕晚期|有喜|怀着|怀了|"
    + WS
    + r"(?:pregnant|pregnancy|expecting a baby|gestation|trimester|prenatal|antenatal)"
    + WE
)
_PREG_NOT_CURRENT = re.compile(r"备孕|避孕|不孕|孕前|怀孕前|怀孕之前|产后|pregnancy test|pre-pregnancy")


def _extract_pregnancy(sc: _Scan) -> None:
    t = sc.t
    for pattern in _PREG_WEEKS:
        for m in sc.finditer(pattern):
            weeks = _num(m.group("w"))
            if weeks is None:
                continue
            if m.groupdict().get("more"):
                weeks = approx_more(weeks)
            days = _num(m.groupdict().get("d1") or m.groupdict().get("d2"))
            if days is not None and days < 7:
                weeks += days / 7
            if sc.accept("pregnancy_weeks", round(weeks, 1), m.start(), m.end()):
                sc.add("pregnant", _Hit(True, m.group(0).strip(), m.start()))
    _extract_pregnancy_en_subject(sc)
    for pattern in _PREG_MONTHS:
        for m in sc.finditer(pattern):
            months = _num(m.group("m"))
            if months is None:
                continue
            gd = m.groupdict()
            if gd.get("more") or gd.get("more2"):
                months = approx_more(months)
            if gd.get("half"):
                months += 0.5
            if sc.accept("pregnancy_weeks", round(months * units.WEEKS_PER_MONTH, 1), m.start(), m.end()):
                sc.add("pregnant", _Hit(True, m.group(0).strip(), m.start()))

    blocked = [(m.start(), m.end()) for m in _PREG_NOT_CURRENT.finditer(t)]
    negatives = [(m.start(), m.end(), m.group(0)) for m in _PREG_NEG.finditer(t)]
    maybes = [(m.start(), m.end(), m.group(0)) for m in _PREG_MAYBE.finditer(t)]
    covered = blocked + [(s, e) for s, e, _ in negatives + maybes]
    for m in _PREG_POS.finditer(t):
        if all(m.end() <= s or m.start() >= e for s, e in covered):
            sc.add("pregnant", _Hit(True, m.group(0), m.start(), priority=2))
    if "pregnant" not in sc.hits:
        if maybes:
            s, e, raw = maybes[0]
            sc.add("pregnant", _Hit(True, raw, s))
            sc.warn("possible_pregnancy", "pregnant", s, e)
        elif negatives:
            s, _, raw = negatives[0]
            sc.add("pregnant", _Hit(False, raw, s))


# ---------------------------------------------------------------------------------------------
# Age
# ---------------------------------------------------------------------------------------------

_AGE_LEFT = r"(?:(?<=^)|(?<=[，,。.；;！!？?\s:：、(（家个位名是有我的了])|(?<=今年|现在|已经))"
_AGE_STRONG: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(
            rf"(?P<num>{NUM})(?P<more>多|余)?\s*(?:周)?岁(?P<half>半)?"
            rf"(?:(?:零|又)?(?P<mnum>{NUM})(?:个)?(?P<mhalf>半)?(?P<mmore>多)?月)?(?P<more2>多)?"
        ),
        "year",
    ),
    (
        re.compile(
            rf"(?:刚出生|刚生下来|出生后|出生|生下来|降生)(?:才|刚|刚刚|已经|有|了|快|满|第)*\s*"
            rf"(?P<num>{NUM})(?P<more>多)?(?:个)?(?P<half>半)?(?P<unit>天|日|周|星期|礼拜|月)"
        ),
        "",
    ),
    (
        re.compile(
            rf"(?:{_BABY})(?:现在|目前|今年|已经|才|刚|刚刚|快|满|有|都)*\s*(?P<num>{NUM})(?P<more>多)?"
            r"个(?P<half>半)?(?P<more2>多)?月(?:龄|大)?(?!前|后|以前|以后|之前|以来|内|左右)"
        ),
        "month",
    ),
    (
        re.compile(
            rf"{_AGE_LEFT}(?P<num>{NUM})(?P<more>多)?(?:个)?(?P<half>半)?(?P<more2>多)?月"
            rf"(?:龄|大|(?=的?(?:{_BABY})))"
        ),
        "month",
    ),
    (re.compile(rf"{_AGE_LEFT}(?P<num>{NUM})(?P<more>多)?(?:个)?(?P<unit>天|周|星期)(?:大|龄)"), ""),
    (
        # "宝宝40天，发烧": a baby word + days/weeks closing the clause is the baby's age
        # ("宝宝3天没大便" goes on, so it stays a duration).
        re.compile(
            r"(?:小宝宝|宝宝|宝贝|小婴儿|婴儿|新生儿|小宝|男宝|女宝|男婴|女婴)(?:现在|目前|才|刚|刚刚|已经|快|满|有)*"
            rf"(?P<num>{NUM})(?P<more>多)?(?:个)?(?P<unit>天|周|星期)了?(?=[，,。.;；!！?？\s]|$)"
        ),
        "",
    ),
    (
        re.compile(
            rf"(?P<num>{EN_NUM})(?P<half> and a half)?\s*-?\s*"
            r"(?P<unit>years?|yrs?|yr|y|months?|mos?|mo|weeks?|wks?|wk|days?)"
            rf"(?:\s*,?\s*(?:and\s+)?(?P<mnum>{EN_NUM})\s*-?\s*(?:months?|mos?))?\s*-?\s*(?:old|of age){WE}"
        ),
        "",
    ),
    (re.compile(rf"(?<![\d.])(?P<num>\d{{1,3}})\s*(?:yo|y/o|y\.o\.?){WE}"), "year"),
    (
        re.compile(
            rf"{WS}(?:aged?|age of)\s*:?\s*(?P<num>\d{{1,3}}(?:\.\d)?)"
            rf"(?:\s*(?P<unit>years?|yrs?|months?|mos?|weeks?|wks?|days?){WE})?"
        ),
        "year",
    ),
    (re.compile(rf"(?:年龄|年纪)(?:是|为|:|\s)*(?P<num>{NUM})(?P<more>多)?"), "year"),
]
# An age in brackets or apposition right after a person noun: "my daughter (20 months)",
# "baby (6 wks)", "女儿（8个月）", "my son, 3 months, …". Days only inside brackets, where
# "宝宝，3天" (which may be a duration) cannot be meant.
_PERSON_NOUN = (
    r"(?:老公|老婆|丈夫|妻子|爸爸|妈妈|爸|妈|父亲|母亲|爷爷|奶奶|外公|外婆|儿子|女儿|闺女|孩子|小孩|宝宝|宝贝|婴儿|"
    r"男宝|女宝|男婴|女婴|患儿|患者|病人|"
    + WS
    + r"(?:husband|wife|father|mother|dad|mom|mum|son|daughter|child|kid|baby|infant|toddler|newborn|"
    r"boy|girl|patient|grandma|grandpa|grandson|granddaughter|nephew|niece|brother|sister)" + WE + r")"
)
_AGE_APPOSITION_UNIT = (
    r"(?:个(?P<half>半)?(?P<more2>多)?月|岁|周岁|(?P<unit>周|星期)|"
    r"(?P<unit_en>years?|yrs?|yr|y|months?|mos?|mo|weeks?|wks?|wk)" + WE + r")"  # no bare m/w: "45 m" is male
)
_AGE_APPOSITION = re.compile(
    rf"{_PERSON_NOUN}\s*(?:(?P<paren>[(（])|[,，])\s*(?P<num>{NUM})(?P<more>多)?\s*-?\s*"
    rf"(?:{_AGE_APPOSITION_UNIT}|(?P<days>天|days?{WE}|d{WE}))(?:\s*-?\s*(?:old|大|龄))?\s*(?=[)）,，;；]|$)"
)
_APPOSITION_UNITS = {
    "y": "year",
    "yr": "year",
    "yrs": "year",
    "year": "year",
    "years": "year",
    "mo": "month",
    "mos": "month",
    "month": "month",
    "months": "month",
    "wk": "week",
    "wks": "week",
    "week": "week",
    "weeks": "week",
}


def _extract_age_apposition(sc: _Scan) -> None:
    for m in sc.finditer(_AGE_APPOSITION):
        if m.group("days") and not m.group("paren"):
            continue
        if any(s <= m.start() < e for s, e in sc.speaker_spans):
            continue  # "我是孩子妈妈，32岁": the speaker's age, left to the ordinary rules
        value = _num(m.group("num"))
        if value is None:
            continue
        if m.group("more") or m.group("more2"):
            value = approx_more(value)
        if m.group("half"):
            value += 0.5
        matched = sc.t[m.end("num") : m.end()]
        if m.group("days"):
            unit = "day"
        elif m.group("unit"):
            unit = "week"
        elif m.group("unit_en"):
            unit = _APPOSITION_UNITS[m.group("unit_en")]
        else:
            unit = "month" if "月" in matched else "year"
        start = m.start("num") - (1 if m.group("paren") else 0)
        if sc.accept("age_months", units.to_months(value, unit), start, m.end()):
            sc.hits["age_months"][-1].linked = True


# "45m" / "32 f" only where a letter cannot be metres/minutes: end of clause or "with…".
_SEX_LETTER_END = r"\s*(?:[,;.:]|$|with|w/|c/o|presents|presenting|complain|has|had)"
_AGE_WEAK: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(
            rf"(?:^|(?<=[\s,;(]))(?:i'?m |i am |pt |patient )?(?P<num>\d{{1,3}})\s?"
            rf"(?:yo\s?|y/o\s?)?(?P<sexword>male|female|man|woman|boy|girl|m(?={_SEX_LETTER_END})|f(?={_SEX_LETTER_END})){WE}"
        ),
        "year",
    ),
    (
        re.compile(
            rf"今年(?:已经|才|刚|都)?(?P<num>{NUM})(?P<more>多)?"
            r"(?!\s*(?:\d|年|月|天|号|日|周|次|个|斤|公斤|kg|cm|米|块|元|%|/|\.))"
        ),
        "year",
    ),
    (
        re.compile(
            r"(?:^|(?<=[\s,，;；。(（:：]))(?:男|女)(?:性)?[\s,，:：]*(?P<num>\d{1,3})(?![\d.])"
            r"(?!\s*(?:天|日|周|星期|月|年|小时|分钟|次|个|斤|公斤|kg|cm|米|楼|号|%|/|度|℃|°))"
        ),
        "year",
    ),
    (
        re.compile(
            rf"{WS}(?:i'?m|i am|he'?s|he is|she'?s|she is|"
            r"(?:son|daughter|kid|child|baby|boy|girl|husband|wife|mom|mother|dad|father|patient) is)"
            r"\s+(?P<num>\d{1,3})(?![\d.])(?=\s*(?:$|[,.;!?)]|and(?![a-z])|with(?![a-z])|now(?![a-z])|today(?![a-z])))"
        ),
        "year",
    ),
    (re.compile(rf"{WS}in (?:his|her|their|my|your) (?P<decade>[1-9])0s{WE}"), "year"),
    (
        re.compile(
            r"(?:老公|老婆|丈夫|妻子|爸爸|妈妈|爸|妈|父亲|母亲|爷爷|奶奶|外公|外婆|儿子|女儿|孩子|宝宝|患者|病人|"
            + WS
            + r"(?:husband|wife|father|mother|dad|mom|mum|son|daughter|child|kid|baby|patient|"
            r"grandma|grandpa)" + WE + r")\s*[,，(（]\s*(?P<num>\d{1,3})(?![\d.])\s*(?=[,，)）;；]|$)"
        ),
        "year",
    ),
]
_AGE_FALLBACK: list[tuple[re.Pattern[str], float]] = [
    (re.compile(r"新生儿|刚出生|刚生下来|" + WS + r"(?:newborn|new-born|new born|neonate)" + WE), 0.5),
    (re.compile(r"(?:刚|才)满月|满月(?:的)?(?:宝宝|婴儿|孩子)"), 1.0),
    (re.compile(r"(?:刚|才)?(?:满)?百天(?:的)?(?:宝宝|婴儿|孩子)|(?:宝宝|孩子)(?:刚|才)?(?:满)?百天"), 3.29),
]

_UNIT_WORDS = {
    "天": "day",
    "日": "day",
    "周": "week",
    "星期": "week",
    "礼拜": "week",
    "月": "month",
    "y": "year",
    "yr": "year",
    "yrs": "year",
    "year": "year",
    "years": "year",
    "mo": "month",
    "mos": "month",
    "month": "month",
    "months": "month",
    "wk": "week",
    "wks": "week",
    "week": "week",
    "weeks": "week",
    "day": "day",
    "days": "day",
}


def _age_from_match(m: re.Match[str], default_unit: str) -> float | None:
    gd = m.groupdict()
    if gd.get("decade"):
        return units.to_months(int(gd["decade"]) * 10 + 3, "year")
    token = gd["num"]
    if token.strip() == "几":
        return None  # "几岁" is a question, not an age
    value = _num(token)
    if value is None:
        return None
    if gd.get("more") or gd.get("more2"):
        value = approx_more(value)
    if gd.get("half"):
        value += 0.5
    unit = _UNIT_WORDS.get((gd.get("unit") or "").strip(), default_unit) if gd.get("unit") else default_unit
    if not unit:
        unit = "day"
    months = units.to_months(value, unit)
    if gd.get("mnum"):
        extra = _num(gd["mnum"])
        if extra is not None:
            if gd.get("mmore"):
                extra = approx_more(extra)
            if gd.get("mhalf"):
                extra += 0.5
            months += extra
    return round(months, 2)


_PATIENT_WORD = re.compile(
    r"儿子|女儿|闺女|宝宝|孩子|小孩|婴儿|宝|娃|爸|妈|父亲|母亲|爷爷|奶奶|外公|外婆|姥姥|姥爷|老公|老婆|丈夫|妻子|"
    r"老人|患者|病人|哥|姐|弟|妹|先生|女士|"
    + WS
    + r"(?:son|daughter|baby|child|kid|husband|wife|father|mother|dad|mom|mum|grandma|grandpa|patient|"
    r"boy|girl|brother|sister)" + WE
)
_CLAUSE_BREAK = re.compile(r"[，,。.;；!！?？]")


def _linked_to_patient(sc: _Scan, start: int, end: int) -> bool:
    """Is this age attached to a patient word in the same clause (and not the speaker's own role)?"""
    left = sc.t[max(0, start - 8) : start]
    breaks = list(_CLAUSE_BREAK.finditer(left))
    window_start = max(0, start - 8) + (breaks[-1].end() if breaks else 0)
    for m in _PATIENT_WORD.finditer(sc.t, window_start, end):
        if not any(s <= m.start() < e for s, e in sc.speaker_spans):
            return True
    return False


def _extract_age(sc: _Scan, patterns: list[tuple[re.Pattern[str], str]], priority: int) -> None:
    for pattern, default_unit in patterns:
        for m in sc.finditer(pattern):
            months = _age_from_match(m, default_unit)
            if months is None:
                continue
            if sc.accept("age_months", months, m.start(), m.end(), priority):
                sc.hits["age_months"][-1].linked = _linked_to_patient(sc, m.start(), m.end())
                sexword = m.groupdict().get("sexword")
                if sexword:
                    sex = "male" if sexword in ("male", "man", "boy", "m") else "female"
                    sc.add("sex_explicit", _Hit(sex, m.group(0).strip(), m.start()))


def _extract_age_fallback(sc: _Scan) -> None:
    for pattern, months in _AGE_FALLBACK:
        for m in sc.finditer(pattern):
            sc.add("age_months", _Hit(months, m.group(0), m.start(), priority=0))


# ---------------------------------------------------------------------------------------------
# Temperature
# ---------------------------------------------------------------------------------------------

_TEMP_UNIT = (
    r"(?P<unit>°\s?c(?![a-z])|℃|摄氏度|度c(?![a-z])|°\s?f(?![a-z])|℉|华氏度|度f(?![a-z])|"
    r"degrees?\s?(?:celsius|centigrade|c(?![a-z])|fahrenheit|f(?![a-z]))|celsius|centigrade|fahrenheit|"
    r"deg\s?[cf](?![a-z])|°|度|degrees?(?![a-z])|deg(?![a-z])|c(?![a-z])|f(?![a-z]))"
)
_TEMP_WITH_UNIT = re.compile(
    rf"(?P<pre>华氏|摄氏)?(?:(?P<lo>{NUM})\s*(?:-|~|到|至|or|to)\s*)?(?P<num>{NUM})(?P<more1>多)?\s*{_TEMP_UNIT}"
)
_TEMP_BARE = re.compile(
    rf"(?P<ctx>(?P<strong>{_TEMP_STRONG_CTX})|{_TEMP_WEAK_CTX}){FILL}(?P<num>{NUM})(?P<more>多)?"
)
_DU_DECIMAL = re.compile(r"([0-9一二三四五六七八九])(?![\d天日周个小时月年岁次分号楼点.半])")
_TEMP_VALID_UNIT = re.compile(r"\s*" + _TEMP_UNIT)


def _temp_unit_kind(unit: str, pre: str | None) -> str:
    """'c', 'f', 'c?' (weak letter), 'f?' (weak letter) or 'ambiguous'."""
    if pre == "华氏":
        return "f"
    if pre == "摄氏":
        return "c"
    u = unit.replace(" ", "")
    if u in ("℉", "华氏度", "度f", "°f", "degreesf", "degreef", "degf") or "fahrenheit" in u:
        return "f"
    if u in ("℃", "摄氏度", "度c", "°c", "degreesc", "degreec", "degc") or "celsius" in u or "centigr" in u:
        return "c"
    if u == "c":
        return "c?"
    if u == "f":
        return "f?"
    return "ambiguous"


def _in(band: tuple[float, float], value: float) -> bool:
    return band[0] <= value <= band[1]


def _extract_temperature(sc: _Scan) -> None:
    c_band = units.PLAUSIBLE["temperature_c"]
    f_band = units.AMBIGUOUS_FAHRENHEIT_BAND
    field = "vitals.temperature_c"
    for m in sc.finditer(_TEMP_WITH_UNIT):
        value = _num(m.group("num"))
        if value is None:
            continue
        start, end = m.start(), m.end()
        prefix = sc.t[max(0, start - 3) : start]
        if prefix.endswith(("零下", "负", "-")) and not m.group("lo"):
            continue  # weather, not a person
        if m.group("lo"):
            low = _num(m.group("lo"))
            if low is not None and low > value:
                value = low
        unit = m.group("unit")
        if unit == "度":
            dec = _DU_DECIMAL.match(sc.t, end)
            if dec and _is_int(value):
                digit = _num(dec.group(1))
                if digit is not None:
                    value += digit / 10
                    end = dec.end()
        more = bool(m.group("more1"))
        if sc.t.startswith("多", end):
            more, end = True, end + 1
        if more and _is_int(value):
            value += 0.3
        kind = _temp_unit_kind(unit, m.group("pre"))
        has_ctx = sc.context_before(_TEMP_ANY_CTX, start)
        if sc.context_before(_ENVIRONMENT_CTX, start, 8) and not sc.context_before(_TEMP_ANY_CTX, start, 6):
            continue
        if kind in ("c?", "f?", "ambiguous") and not has_ctx:
            # "2度烧伤", "5c", "一度": only take temperature-looking values without a keyword.
            if kind == "c?" and not _in(c_band, value):
                continue
            if kind == "f?" and not _in(f_band, value):
                continue
            if kind == "ambiguous" and not (_in(c_band, value) or _in(f_band, value)):
                continue
        if kind in ("ambiguous", "c?", "f?") and value < 20:
            continue
        raw_end = end
        if kind in ("f", "f?") or (kind == "ambiguous" and _in(f_band, value)):
            celsius = units.fahrenheit_to_celsius(value)
            if kind == "ambiguous":
                sc.warn("assumed_fahrenheit", field, start, raw_end, value=celsius)
        else:
            celsius = value
        sc.accept(field, round(celsius, 2), start, raw_end)

    for m in sc.finditer(_TEMP_BARE):
        value = _num(m.group("num"))
        if value is None:
            continue
        kind, _, end = sc.after_number(m.end(), _TEMP_VALID_UNIT)
        if kind in ("other", "valid"):
            continue
        strong = m.group("strong") is not None
        if kind == "foreign":
            if strong or value >= 30:
                sc.consume(m.start(), end)
                sc.warn("unknown_unit", field, m.start(), end)
            continue
        if m.group("more") and _is_int(value):
            value += 0.3
        if not strong and value < 30:
            continue  # "发烧2" is not a temperature attempt
        start, end = m.start(), m.end()
        if _is_int(value) and 340 <= value <= 435:
            value = value / 10
            sc.warn("assumed_decimal_point", field, start, end, value=value)
        elif _in(units.BARE_FAHRENHEIT_BAND, value):
            value = units.fahrenheit_to_celsius(value)
            sc.warn("assumed_fahrenheit", field, start, end, value=value)
        sc.accept(field, value, start, end)


# A bare number a few words after a fever/peak word ("发烧第三天了，最高39.2", "峰值39.5",
# "fever, highest 39.4"). Runs after the other vitals, so "心率最高40" is already a heart rate;
# only band values count (34–43.5, or 95–110 read as °F with a warning).
_TEMP_PEAK_CTX = (
    r"最高峰|最高|峰值|高峰|" + WS + r"(?:highest|maximum|max|peak(?:ed|ing)?|tmax|t max|topped out at)" + WE
)
_TEMP_NEAR_GAP_WORDS = (
    r"今天|昨天|昨晚|今早|早上|晚上|夜里|半夜|现在|目前|一度|反复|持续|的时候|时|都|"
    r"today|tonight|last night|this morning|now|yesterday"
)
_TEMP_NEAR = re.compile(
    rf"(?P<ctx>{_TEMP_STRONG_CTX}|{_TEMP_WEAK_CTX}|{_TEMP_PEAK_CTX})"
    rf"(?P<gap>(?:\s*(?:(?:{_FILL_WORDS}|{_TEMP_NEAR_GAP_WORDS}|{_TEMP_PEAK_CTX})(?=[^a-z]|$)|[:=,，]))*\s*)"
    rf"(?P<num>{NUM})(?P<more>多)?"
)
_TEMP_NEAR_MAX_GAP = 14  # "~6 chars" of Chinese; English filler words are longer
_TEMP_NEAR_BAD_NEXT = re.compile(r"[分点%/:a-z]|\.\d|\s*(?:个|分)")
# "体重最高40", "heart rate max 40": the peak word belongs to another quantity.
_TEMP_NEAR_OTHER_BEFORE = re.compile(
    r"(?:体重|身高|心率|心跳|血压|血糖|血氧|呼吸|脉搏|分数|得分|"
    r"weight|height|heart rate|pulse|bp|pressure|sugar|glucose|oxygen|sats?|spo2|score|rate)\s*$"
)


def _extract_temperature_near_context(sc: _Scan) -> None:
    field = "vitals.temperature_c"
    for m in sc.finditer(_TEMP_NEAR):
        if len(m.group("gap")) > _TEMP_NEAR_MAX_GAP:
            continue
        if _TEMP_NEAR_OTHER_BEFORE.search(sc.t, max(0, m.start() - 12), m.start()):
            continue
        value = _num(m.group("num"))
        if value is None:
            continue
        kind, _, _ = sc.after_number(m.end(), _TEMP_VALID_UNIT)
        if kind != "none" or _TEMP_NEAR_BAD_NEXT.match(sc.t, m.end()):
            continue  # "最高100分", "最高40次", "max 40mg": some other quantity
        if m.group("more") and _is_int(value):
            value += 0.3
        start, end = m.start(), m.end()
        if _in(units.PLAUSIBLE["temperature_c"], value):
            sc.accept(field, value, start, end)
        elif _in(units.BARE_FAHRENHEIT_BAND, value):
            celsius = units.fahrenheit_to_celsius(value)
            sc.warn("assumed_fahrenheit", field, start, end, value=celsius)
            sc.accept(field, celsius, start, end)


# ---------------------------------------------------------------------------------------------
# Heart rate, breathing rate, SpO2, glucose
# ---------------------------------------------------------------------------------------------

_PER_MIN = r"(?:\s*(?:/|每|一|per|a|an)\s*(?:分钟|分|min(?:ute)?s?(?![a-z])|m(?![a-z])))"
_HR_CTX = r"心率|心跳|脉搏|脉率|" + WS + r"(?:heart ?rate|heart ?beat|pulse(?: rate)?|hr)" + WE
_HR_UNIT = re.compile(
    rf"\s*(?:次|下|beats?(?![a-z])|bpm(?![a-z]))(?:{_PER_MIN})?|\s*/\s*(?:min(?:ute)?(?![a-z])|分钟?|m(?![a-z]))"
)
_RR_CTX = (
    r"呼吸频率|呼吸次数|呼吸速率|呼吸|"
    + WS
    + r"(?:rr|resp(?:iratory|iration)? rate|respirations?|breathing rate|breath rate|rate of breathing)"
    + WE
)
_RR_UNIT = re.compile(
    rf"\s*(?:次|breaths?(?![a-z])|times?(?![a-z]))(?:{_PER_MIN})?|\s*/\s*(?:min(?:ute)?(?![a-z])|分钟?)|"
    r"\s*(?:bpm|rpm|br/min)(?![a-z])"
)
_SPO2_CTX = (
    r"血氧饱和度|经皮血氧|指脉氧|血氧|氧饱和度|氧饱|饱和度|"
    + WS
    + r"(?:spo2|sp02|sao2|o2 sats?|o2 saturation|oxygen saturation|oxygen sat(?:uration)?s?|"
    r"oxygen levels?|o2 levels?|sats|pulse ox(?:imetry|imeter)?(?: reading)?|pulse-ox)" + WE
)
_SPO2_UNIT = re.compile(r"\s*(?:%|percent(?![a-z])|pct(?![a-z]))")
_GLU_CTX = (
    r"随机血糖|空腹血糖|餐后血糖|指尖血糖|末梢血糖|血糖值|血糖|"
    + WS
    + r"(?:blood sugars?|blood glucose|glucose(?: level)?|sugar levels?|sugars?|bgl|bsl|cbg|"
    r"fingerstick(?: glucose)?|finger stick(?: glucose)?)" + WE
)
_GLU_UNIT = re.compile(
    r"\s*(?:(?P<mmol>mmol\s*/\s*l|mmol(?![a-z])|mm/l|毫摩尔(?:\s*(?:每|/)\s*(?:升|l))?)|"
    r"(?P<mg>mg\s*/\s*dl|mg\s*%|mg/100\s?ml|mg(?![a-z])|毫克(?:\s*(?:每|/)\s*(?:分升|dl))?))"
)


def _ctx_re(ctx: str) -> re.Pattern[str]:
    return re.compile(rf"(?P<ctx>{ctx}){FILL}(?P<num>{NUM})(?P<more>多)?")


_HR_RE = _ctx_re(_HR_CTX)
_RR_RE = _ctx_re(_RR_CTX)
_SPO2_RE = _ctx_re(_SPO2_CTX)
_GLU_RE = _ctx_re(_GLU_CTX)
_HR_UNIT_ONLY = re.compile(rf"(?P<num>{_AR})\s*(?:bpm|beats?\s*(?:/|per|a)\s*min(?:ute)?){WE}")
_RR_UNIT_ONLY = re.compile(rf"(?P<num>{_AR})\s*breaths?\s*(?:/|per|a|an)\s*min(?:ute)?{WE}")

# "呼吸有点快，大概每分钟40次": a per-minute count whose keyword sits a little further back.
_PER_MIN_COUNT = re.compile(
    rf"(?:每分钟|一分钟|每分)\s*(?:大概|大约|约|有)?\s*(?P<num>{NUM})(?P<more>多)?\s*(?:次|下)|"
    rf"(?P<num2>{NUM})(?P<more2>多)?\s*(?:次|下)\s*(?:/|每)\s*分钟?"
)
_HR_CTX_RE = re.compile(_HR_CTX)
_RR_CTX_RE = re.compile(_RR_CTX)

# The upper end of a range right after a vital's number: "13-15", "16到18", "120 to 130".
_RANGE_TAIL = re.compile(rf"\s*(?:-|~|到|至|{WS}to{WE})\s*(?P<hi>{NUM})(?P<hmore>多)?")

Converter = Callable[[_Scan, float, re.Match[str] | None, int, int], float | None]


def _scan_vital(
    sc: _Scan,
    pattern: re.Pattern[str],
    field: str,
    valid_unit: re.Pattern[str],
    convert: Converter,
) -> None:
    for m in sc.finditer(pattern):
        value = _num(m.group("num"))
        if value is None:
            continue
        if m.groupdict().get("more"):
            value = approx_more(value)
        values = [value]
        number_end = m.end()
        tail = _RANGE_TAIL.match(sc.t, number_end)
        if tail:  # "血糖都在16到18": both ends are hits, the most abnormal one is kept
            high = _value_with_more(tail.group("hi"), tail.group("hmore"))
            if high is not None:
                values.append(high)
                number_end = tail.end()
        kind, unit, end = sc.after_number(number_end, valid_unit)
        if kind == "other":
            continue
        if kind == "foreign":
            sc.consume(m.start(), end)
            sc.warn("unknown_unit", field, m.start(), end)
            continue
        end = end if kind == "valid" else number_end
        valid = unit if kind == "valid" else None
        if len(values) > 1:
            value = _most_abnormal_of_range(sc, field, values, valid, convert, m.start(), end)
        converted = convert(sc, value, valid, m.start(), end)
        if converted is None:
            sc.consume(m.start(), end)
            continue
        sc.accept(field, converted, m.start(), end)


def _most_abnormal_of_range(
    sc: _Scan,
    field: str,
    values: list[float],
    unit: re.Match[str] | None,
    convert: Converter,
    start: int,
    end: int,
) -> float:
    """The end of a range that is most abnormal once converted (its warning is emitted later)."""
    kept = len(sc.warnings)
    raw_by_hit: dict[int, float] = {}
    candidates: list[_Hit] = []
    for raw in values:
        converted = convert(sc, raw, unit, start, end)
        if converted is not None and units.is_plausible(field.removeprefix("vitals."), converted):
            hit = _Hit(converted, "", start)
            raw_by_hit[id(hit)] = raw
            candidates.append(hit)
    del sc.warnings[kept:]  # conversion warnings are emitted again for the chosen end only
    if not candidates:
        return values[0]
    return raw_by_hit[id(_most_abnormal(field, candidates))]


def _same(sc: _Scan, value: float, unit: re.Match[str] | None, start: int, end: int) -> float:
    return value


def _spo2(sc: _Scan, value: float, unit: re.Match[str] | None, start: int, end: int) -> float:
    return value * 100 if 0 < value <= 1 else value  # "0.88" is a fraction


def _glucose(sc: _Scan, value: float, unit: re.Match[str] | None, start: int, end: int) -> float:
    if unit is not None:
        return units.mg_dl_to_mmol_l(value) if unit.group("mg") else value
    if value > units.BARE_GLUCOSE_MG_DL_ABOVE:
        mmol = units.mg_dl_to_mmol_l(value)
        if units.is_plausible("glucose_mmol", mmol):
            sc.warn("assumed_mg_dl", "vitals.glucose_mmol", start, end, value=mmol)
        return mmol
    return value


def _extract_vitals(sc: _Scan) -> None:
    _scan_vital(sc, _HR_RE, "vitals.heart_rate", _HR_UNIT, _same)
    for m in sc.finditer(_HR_UNIT_ONLY):
        value = _num(m.group("num"))
        if value is not None:
            sc.accept("vitals.heart_rate", value, m.start(), m.end())
    _scan_vital(sc, _RR_RE, "vitals.respiratory_rate", _RR_UNIT, _same)
    for m in sc.finditer(_RR_UNIT_ONLY):
        value = _num(m.group("num"))
        if value is not None:
            sc.accept("vitals.respiratory_rate", value, m.start(), m.end())
    for m in sc.finditer(_PER_MIN_COUNT):
        value = _num(m.group("num") or m.group("num2"))
        if value is None:
            continue
        if m.group("more") or m.group("more2"):
            value = approx_more(value)
        window_start = max(0, m.start() - 15)
        last: dict[str, int] = {}
        for field, ctx in (("vitals.heart_rate", _HR_CTX_RE), ("vitals.respiratory_rate", _RR_CTX_RE)):
            for c in ctx.finditer(sc.t, window_start, m.start()):
                last[field] = c.end()
        if last:
            field = max(last, key=lambda f: last[f])
            sc.accept(field, value, m.start(), m.end())
    _scan_vital(sc, _SPO2_RE, "vitals.spo2", _SPO2_UNIT, _spo2)
    _scan_vital(sc, _GLU_RE, "vitals.glucose_mmol", _GLU_UNIT, _glucose)


# ---------------------------------------------------------------------------------------------
# Duration
# ---------------------------------------------------------------------------------------------

_ZH_DURATION_UNITS = {
    "分钟": "minute",
    "小时": "hour",
    "钟头": "hour",
    "钟": "hour",
    "天": "day",
    "日": "day",
    "周": "week",
    "星期": "week",
    "礼拜": "week",
    "月": "month",
    "年": "year",
    "晚": "night",
    "夜": "night",
}
_DUR_ZH = re.compile(
    rf"(?<![第每隔])(?:(?P<lo>{NUM})\s*(?:-|~|到|至)\s*)?(?P<num>{NUM}|半)(?P<more>多|余|来)?(?P<ge>个)?"
    r"(?P<half>半)?(?P<more2>多)?\s*(?P<unit>分钟|小时|钟头|钟|天|日|周|星期|礼拜|月|年|晚|夜)"
    r"(?P<half2>半)?(?P<more3>多)?"
)
_DUR_ZH_SKIP_AFTER = re.compile(
    rf"两头|到晚|比|\s*(?:{NUM})\s*(?:次|顿|片|粒|回|袋|支|包|趟)|后|以后|之后|级|代|纪|份|底|初|岁|年(?!前)|号|"
    r"一次|上午|下午|晚上"
)
# "发烧第三天" / "day 3 of fever": day N has lasted between (N-1)*24 and N*24 hours; we take the
# middle, N*24 - 12 (第一天 → 12 h, 第三天 → 60 h), so neither bound is over- or under-stated.
_DUR_ZH_DAY_N = re.compile(rf"第(?P<num>{NUM})天")
_DUR_EN_DAY_N = re.compile(rf"{WS}(?:day (?P<num>\d{{1,2}})|(?P<num2>\d{{1,2}})(?:st|nd|rd|th) day) of{WE}")


def _day_n_hours(day: float) -> float:
    return round(day * 24 - 12, 2)


_EN_DURATION_UNITS = {
    "minute": "minute",
    "minutes": "minute",
    "min": "minute",
    "mins": "minute",
    "hour": "hour",
    "hours": "hour",
    "hr": "hour",
    "hrs": "hour",
    "h": "hour",
    "day": "day",
    "days": "day",
    "d": "day",
    "week": "week",
    "weeks": "week",
    "wk": "week",
    "wks": "week",
    "w": "week",
    "month": "month",
    "months": "month",
    "mo": "month",
    "mos": "month",
    "year": "year",
    "years": "year",
    "yr": "year",
    "yrs": "year",
}
_DUR_EN = re.compile(
    rf"(?:(?P<lo>{_AR})\s*(?:-|to|or)\s*)?(?P<num>{EN_NUM})(?P<half>\s+and a half)?\s*-?\s*"
    r"(?P<unit>minutes?|mins?|hours?|hrs?|hr|days?|weeks?|wks?|wk|months?|mos?|years?|yrs?|yr)"
    rf"{WE}(?P<half2>\s+and a half)?"
)
_DUR_EN_SHORT = re.compile(rf"(?<![\d.a-z])(?P<num>\d+(?:\.\d+)?)(?P<unit>h|d|w|min){WE}")
_DUR_EN_SKIP_BEFORE = re.compile(r"(?:every|each|per|times?|twice|once|thrice)\s*$")
_DUR_EN_SKIP_AFTER = re.compile(r"\s*-?\s*(?:old|later|from now|pregnant)(?![a-z])")
_CHRONIC_BEFORE = re.compile(
    r"(?:高血压|血压高|血糖高|糖尿病|冠心病|心脏病|慢阻肺|哮喘|肾病|病史|吸烟|抽烟|烟龄|饮酒|喝酒|"
    r"diabet\w*|hypertension|high blood pressure|asthma|copd|smok\w*|history|hx|drink\w*)[^，,。.;；]{0,8}$"
)

_REL_HOURS_ZH = {
    "大前天": 72,
    "前天": 48,
    "昨天晚上": 12,
    "昨天夜里": 12,
    "昨天半夜": 12,
    "昨晚": 12,
    "昨夜": 12,
    "昨天下午": 20,
    "昨天上午": 28,
    "昨天早上": 30,
    "昨天": 24,
    "昨日": 24,
    "今天凌晨": 6,
    "今天早上": 6,
    "今天上午": 6,
    "今早": 6,
    "今晨": 6,
    "早上": 6,
    "凌晨": 6,
    "半夜": 6,
    "今天中午": 3,
    "今天下午": 3,
    "中午": 3,
    "下午": 3,
    "今天": 6,
    "上个星期": 168,
    "上星期": 168,
    "上礼拜": 168,
    "上周": 168,
    "上个月": 720,
    "上月": 720,
    "去年": 8760,
}
_REL_ZH = re.compile(
    r"(?P<pre>从|自从|自|打)?\s*(?P<when>"
    + "|".join(sorted(_REL_HOURS_ZH, key=len, reverse=True))
    + r")(?P<gap>[^，,。.;；!！?？]{0,6}?)(?P<cue>开始|起|以来|到现在|至今|一直)?"
)
_REL_NOW_ZH = re.compile(r"刚才|刚刚(?!出生|生|满)|方才")
_REL_HOURS_EN = {
    "the day before yesterday": 48,
    "yesterday morning": 30,
    "yesterday afternoon": 20,
    "yesterday evening": 14,
    "yesterday": 24,
    "last night": 12,
    "overnight": 12,
    "this morning": 6,
    "earlier today": 4,
    "this afternoon": 3,
    "this evening": 2,
    "tonight": 1,
    "today": 6,
    "last week": 168,
    "last month": 720,
    "last year": 8760,
}
_REL_WHEN_EN = "|".join(sorted(_REL_HOURS_EN, key=len, reverse=True))
_REL_EN = re.compile(
    rf"{WS}(?:since|started|starting|began|beginning|start(?:ed)? on|from|onset)\s+(?:about\s+|around\s+)?"
    rf"(?P<when>{_REL_WHEN_EN}){WE}|"
    rf"{WS}(?P<when2>{_REL_WHEN_EN})\s+(?:it\s+|they\s+|i\s+|he\s+|she\s+|this\s+|the\s+\w+\s+)?"
    r"(?:started|began|start|begin)(?![a-z])"
)
_REL_NOW_EN = re.compile(rf"{WS}(?:just now|a moment ago|moments ago|a little while ago){WE}")


def _extract_duration(sc: _Scan) -> None:
    t = sc.t
    field = "duration_hours"
    for m in sc.finditer(_DUR_ZH):
        unit = m.group("unit")
        token = m.group("num")
        if unit in ("月", "钟") and not (m.group("ge") or token == "半"):
            continue  # "3月" is March; "两个钟" needs 个
        if unit == "日" and t[max(0, m.start() - 1) : m.start()] == "月":
            continue
        after = m.end()
        if _DUR_ZH_SKIP_AFTER.match(t, after):
            continue  # 3天后 / 一天三次 / 三年级 / 80年代 …
        if _CHRONIC_BEFORE.search(t[max(0, m.start() - 12) : m.start()]):
            sc.consume(m.start(), m.end())
            continue
        value = 0.5 if token == "半" else _num(token)
        if value is None:
            continue
        if unit == "年" and value >= 150:
            continue
        if m.group("more") in ("多", "余") or m.group("more2") or m.group("more3"):
            value = approx_more(value)
        if m.group("half") or m.group("half2"):
            value += 0.5
        sc.consume(m.start(), m.end())
        sc.add(field, _Hit(units.to_hours(value, _ZH_DURATION_UNITS[unit]), m.group(0), m.start()))
    for m in sc.finditer(_DUR_ZH_DAY_N):
        value = _num(m.group("num"))
        if value is not None and value >= 1:
            sc.consume(m.start(), m.end())
            sc.add(field, _Hit(_day_n_hours(value), m.group(0), m.start()))
    for m in sc.finditer(_DUR_EN_DAY_N):
        value = _num(m.group("num") or m.group("num2"))
        if value is not None and value >= 1:
            sc.consume(m.start(), m.end())
            sc.add(field, _Hit(_day_n_hours(value), m.group(0), m.start()))
    for pattern in (_DUR_EN, _DUR_EN_SHORT):
        for m in sc.finditer(pattern):
            if _DUR_EN_SKIP_BEFORE.search(t[max(0, m.start() - 8) : m.start()]):
                continue
            if _DUR_EN_SKIP_AFTER.match(t, m.end()):
                continue
            if _CHRONIC_BEFORE.search(t[max(0, m.start() - 30) : m.start()]):
                sc.consume(m.start(), m.end())
                continue
            value = parse_en_number(m.group("num"))
            if value is None:
                continue
            if m.groupdict().get("half") or m.groupdict().get("half2"):
                value += 0.5
            sc.consume(m.start(), m.end())
            hours = units.to_hours(value, _EN_DURATION_UNITS[m.group("unit")])
            sc.add(field, _Hit(hours, m.group(0).strip(), m.start()))

    for m in sc.finditer(_REL_NOW_ZH):
        sc.add(field, _Hit(0.5, m.group(0), m.start(), priority=0))
    for m in sc.finditer(_REL_NOW_EN):
        sc.add(field, _Hit(0.5, m.group(0), m.start(), priority=0))
    for m in sc.finditer(_REL_ZH):
        if m.group("pre") or m.group("cue"):
            end = m.end() if m.group("cue") else m.end("when")
            sc.add(field, _Hit(float(_REL_HOURS_ZH[m.group("when")]), t[m.start() : end], m.start(), 0))
    for m in sc.finditer(_REL_EN):
        when = m.group("when") or m.group("when2")
        sc.add(field, _Hit(float(_REL_HOURS_EN[when]), m.group(0), m.start(), priority=0))


# ---------------------------------------------------------------------------------------------
# Sex
# ---------------------------------------------------------------------------------------------

_SEX_CUES: list[tuple[int, str, re.Pattern[str]]] = [
    (
        1,
        "male",
        re.compile(
            r"男性|男孩|男童|男婴|男宝宝|男宝|男生|男子|男士|男人|男的|男患者?|男病人|先生|小伙子?|大爷|"
            r"性别[:：\s]*男|(?:患者|病人|病患)[:：,，\s]*男|"
            r"(?:^|(?<=[\s,，、:：;；(（。]))男(?=$|[\s,，、:：;；)）。\d零一二两三四五六七八九十])|"
            + WS
            + r"(?:male|man|boy|gentleman|guy|mr\.?|baby boy)"
            + WE
        ),
    ),
    (
        1,
        "female",
        re.compile(
            r"女性|女孩|女童|女婴|女宝宝|女宝|女生|女子|女士|女人|女的|女患者?|女病人|小姐|姑娘|孕妇|大妈|"
            r"性别[:：\s]*女|(?:患者|病人|病患)[:：,，\s]*女|"
            r"(?:^|(?<=[\s,，、:：;；(（。]))女(?=$|[\s,，、:：;；)）。\d零一二两三四五六七八九十])|"
            + WS
            + r"(?:female|woman|girl|lady|mrs\.?|ms\.?|miss|baby girl)"
            + WE
        ),
    ),
    (2, "male", re.compile(r"儿子|" + WS + r"(?:son|grandson)" + WE)),
    (2, "female", re.compile(r"女儿|闺女|" + WS + r"(?:daughter|granddaughter)" + WE)),
    (
        3,
        "male",
        re.compile(
            r"爸爸|爸|父亲|爷爷|外公|姥爷|老公|丈夫|哥哥|哥|弟弟|弟|叔叔|叔|伯伯|伯父|舅舅|舅(?!妈)|公公|岳父|"
            r"男朋友|男友|孙子|外孙(?!女)|"
            + WS
            + r"(?:husband|father|dad|daddy|grandfather|grandpa|granddad|brother|boyfriend|uncle|nephew)"
            + WE
        ),
    ),
    (
        3,
        "female",
        re.compile(
            r"妈妈|妈|母亲|奶奶|外婆|姥姥|老婆|妻子|媳妇|姐姐|姐|妹妹|妹|阿姨|姨|姑姑|姑|舅妈|婆婆|岳母|"
            r"女朋友|女友|孙女|外孙女|"
            + WS
            + r"(?:wife|mother|mom|mum|mommy|mummy|grandmother|grandma|granny|sister|girlfriend|aunt|niece)"
            + WE
        ),
    ),
    (4, "male", re.compile(r"(?<!其)他(?!们|人|妈的)|" + WS + r"(?:he|him|his)" + WE)),
    (4, "female", re.compile(r"她(?!们)|" + WS + r"(?:she|her|hers)" + WE)),
]
# The speaker's own role or a companion: not the patient.
_SEX_NOT_PATIENT = re.compile(
    r"我是(?:他|她|孩子|宝宝|病人|患者)?的?(?:妈妈|爸爸|母亲|父亲|妈|爸|老公|老婆|妻子|丈夫|儿子|女儿|家属|家长)|"
    r"宝妈|宝爸|孩子(?:的)?(?:妈妈|爸爸|妈|爸)|孩子他(?:爸|妈)|孩他(?:爸|妈)|作为(?:一个|一名)?(?:妈妈|母亲|爸爸|父亲|家长)|"
    r"当妈的|当爸的|(?:和|跟|与)(?:我)?(?:老公|老婆|丈夫|妻子|爸爸|妈妈|爸|妈|男朋友|女朋友)|他妈的|"
    + WS
    + r"(?:(?:i'?m|i am|as)\s+(?:a|an|the|his|her|their)?\s*"
    r"(?:mother|mom|mum|father|dad|parent|wife|husband|son|daughter|caregiver)|"
    r"(?:and|with)\s+my\s+(?:husband|wife|boyfriend|girlfriend|partner))" + WE
)


def _extract_sex(sc: _Scan) -> None:
    t = sc.t
    excluded = sc.speaker_spans
    found: dict[int, list[_Hit]] = {}
    for tier, sex, pattern in _SEX_CUES:
        for m in pattern.finditer(t):
            if any(not (m.end() <= s or m.start() >= e) for s, e in excluded):
                continue
            found.setdefault(tier, []).append(_Hit(sex, m.group(0).strip(), m.start()))
    explicit = sc.hits.get("sex_explicit")
    if explicit:
        found.setdefault(1, []).extend(explicit)
    pregnant = [h for h in sc.hits.get("pregnant", []) if h.value is True]
    if pregnant:
        found = {0: [_Hit("female", pregnant[0].evidence, pregnant[0].start)]}
    for tier in sorted(found):
        hits = sorted(found[tier], key=lambda h: h.start)
        if len({h.value for h in hits}) == 1:
            sc.hits["sex"] = [hits[0]]
        return  # mixed cues in the most explicit tier: leave unknown


# ---------------------------------------------------------------------------------------------
# Choosing one value per field
# ---------------------------------------------------------------------------------------------

_NORMAL = {"temperature_c": 37.0, "heart_rate": 80.0, "respiratory_rate": 16.0, "systolic_bp": 120.0}


def _most_abnormal(field: str, hits: list[_Hit]) -> _Hit:
    key = field.removeprefix("vitals.")
    if key == "spo2":
        return min(hits, key=lambda h: (float(h.value), h.start))  # type: ignore[arg-type]
    if key == "glucose_mmol":
        return max(hits, key=lambda h: (abs(math.log(float(h.value) / 5.5)), -h.start))  # type: ignore[arg-type]
    if key == "bp":
        return max(hits, key=lambda h: (abs(h.value[0] - 120.0) if h.value[0] >= 0 else 0, -h.start))  # type: ignore[index]
    ref = _NORMAL[key]
    return max(hits, key=lambda h: (abs(float(h.value) - ref), -h.start))  # type: ignore[arg-type]


def _first(hits: list[_Hit]) -> _Hit:
    return sorted(hits, key=lambda h: (-h.priority, h.start))[0]


def _assemble(sc: _Scan) -> tuple[Facts, dict[str, str]]:
    evidence: dict[str, str] = {}
    data: dict[str, object] = {}
    vitals: dict[str, float] = {}
    h = sc.hits

    if "age_months" in h:
        chosen = sorted(h["age_months"], key=lambda x: (-x.priority, not x.linked, x.start))[0]
        data["age_months"] = chosen.value
        evidence["age_months"] = chosen.evidence
        top = [x for x in h["age_months"] if x.priority == chosen.priority]
        distinct = sorted({float(x.value) for x in top})  # type: ignore[arg-type]
        if len(distinct) > 1 and distinct[-1] - distinct[0] >= 1:
            values = "、".join(dict.fromkeys(x.evidence for x in sorted(top, key=lambda x: x.start)))
            warning = ExtractionWarning.build(
                "multiple_values", sc.lang, "age_months", chosen.evidence, values=values
            )
            sc.warnings.append(warning)
    if "sex" in h:
        data["sex"] = h["sex"][0].value
        evidence["sex"] = h["sex"][0].evidence
    if "pregnant" in h:
        chosen = _first(h["pregnant"])
        data["pregnant"] = chosen.value
        evidence["pregnant"] = chosen.evidence
    if "pregnancy_weeks" in h:
        chosen = _first(h["pregnancy_weeks"])
        data["pregnancy_weeks"] = chosen.value
        evidence["pregnancy_weeks"] = chosen.evidence
    if "duration_hours" in h:
        chosen = _first(h["duration_hours"])
        data["duration_hours"] = chosen.value
        evidence["duration_hours"] = chosen.evidence
    for field in (
        "vitals.temperature_c",
        "vitals.heart_rate",
        "vitals.respiratory_rate",
        "vitals.spo2",
        "vitals.glucose_mmol",
    ):
        if field in h:
            chosen = _most_abnormal(field, h[field])
            vitals[field.removeprefix("vitals.")] = float(chosen.value)  # type: ignore[arg-type]
            evidence[field] = chosen.evidence
    if "bp" in h:
        chosen = _most_abnormal("bp", h["bp"])
        systolic, diastolic = chosen.value  # type: ignore[misc]
        if systolic >= 0:
            vitals["systolic_bp"] = systolic
            evidence["vitals.systolic_bp"] = chosen.evidence
        if diastolic is not None:
            vitals["diastolic_bp"] = diastolic
            evidence["vitals.diastolic_bp"] = chosen.evidence
    return Facts(vitals=VitalSigns(**vitals), **data), evidence  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------

_CJK = re.compile(r"[\u4e00-\u9fff]")
MAX_TEXT_CHARS = 4000  # same limit as TriageInput.text


def detect_lang(text: str) -> Lang:
    return "zh" if _CJK.search(text) else "en"


def extract_facts(text: str, lang: Lang | None = None) -> ExtractedFacts:
    """Extract age, sex, pregnancy, duration and vital signs from free text.

    `lang` only chooses the language of `warning.message` (both languages are always in
    message_zh / message_en); by default it follows the text. Never raises on odd input.
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    normalized = normalize_text(text[:MAX_TEXT_CHARS])
    sc = _Scan(normalized, lang or detect_lang(normalized))
    if normalized:
        _extract_blood_pressure(sc)
        _extract_pregnancy(sc)
        _extract_age_apposition(sc)
        _extract_age(sc, _AGE_STRONG, priority=1)
        _extract_temperature(sc)
        _extract_vitals(sc)
        _extract_temperature_near_context(sc)
        _extract_age(sc, _AGE_WEAK, priority=1)
        _extract_duration(sc)
        _extract_age_fallback(sc)
        _extract_sex(sc)
    facts, evidence = _assemble(sc)
    return ExtractedFacts(facts=facts, warnings=sc.warnings, evidence=evidence, normalized_text=normalized)
