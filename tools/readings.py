"""Parse chronic-care readings typed or spoken by patients and village doctors, with their units.

    parse_blood_pressure("高压150低压95") -> BloodPressure(systolic=150, diastolic=95, unit_given="mmHg")
    parse_blood_pressure("12/8")          -> BloodPressure(90, 60, unit_given=None, converted=True, warning)
    parse_blood_pressure("180/")          -> raises ReadingError("incomplete_bp", zh, en)
    parse_glucose("140 mg/dL")            -> Glucose(mmol_l=7.8, unit_given="mg/dL", converted=True)
    parse_hba1c("糖化7.2%")               -> HbA1c(percent=7.2)

Rules (why): a value is never silently guessed. A conversion is kept *with* a warning the UI shows
("read as kPa", "read as mg/dL"); anything that cannot be one person's reading is refused with a
zh/en message asking to measure again, because a wrong number in a follow-up record is worse than none.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

from tools import units
from tools.fact_extraction import normalize_text
from tools.localized_error import LocalizedError
from tools.triage_models import Lang
from tools.zh_numbers import ZH_NUMERAL_RE, parse_zh_number

GlucoseContext = Literal["fasting", "postprandial", "random"]
BpUnit = Literal["mmHg", "kPa"]
GlucoseUnit = Literal["mmol/L", "mg/dL"]

# Plausible ranges of one person's reading (wider ones are typos or the wrong unit).
SYSTOLIC_RANGE = (60, 300)
DIASTOLIC_RANGE = (30, 200)
GLUCOSE_RANGE = units.PLAUSIBLE["glucose_mmol"]  # mmol/L
HBA1C_RANGE = (3.0, 20.0)  # percent
# A BP pair with both numbers below this and no unit is read as kPa (no mmHg reading is that low).
KPA_BELOW = 40.0


class ReadingWarning(BaseModel):
    code: str  # "assumed_kpa", "converted_kpa", "assumed_mg_dl", "converted_mg_dl", "converted_mmol_mol"
    zh: str
    en: str

    def message(self, lang: Lang) -> str:
        return self.zh if lang == "zh" else self.en


class ReadingError(LocalizedError, ValueError):
    """A reading that cannot be recorded. `code` is stable; zh/en say what to do."""


class BloodPressure(BaseModel):
    systolic: int = Field(description="mmHg")
    diastolic: int = Field(description="mmHg")
    unit_given: BpUnit | None = None  # the unit written by the person; None when none was
    converted: bool = False  # True when the numbers were converted from kPa
    warnings: list[ReadingWarning] = Field(default_factory=list)


class Glucose(BaseModel):
    mmol_l: float
    context: GlucoseContext
    unit_given: GlucoseUnit | None = None
    converted: bool = False  # True when converted from mg/dL
    warnings: list[ReadingWarning] = Field(default_factory=list)


class HbA1c(BaseModel):
    percent: float
    unit_given: Literal["%", "mmol/mol"] | None = None
    converted: bool = False
    warnings: list[ReadingWarning] = Field(default_factory=list)


# ---------------------------------------------------------------------------------------------- errors

_REMEASURE_ZH = "请重新测量后再记录。"
_REMEASURE_EN = "Please measure again and record it."


def _empty() -> ReadingError:
    return ReadingError("empty_reading", "请填写测量结果。", "Please enter the reading.")


def _incomplete_bp(raw: str) -> ReadingError:
    return ReadingError(
        "incomplete_bp",
        f"血压“{raw}”不完整：需要高压（收缩压）和低压（舒张压）两个数，例如 150/95。",
        f'The blood pressure "{raw}" is incomplete: it needs the upper (systolic) and lower (diastolic) '
        "numbers, for example 150/95.",
    )


def _implausible_bp(raw: str, detail_zh: str, detail_en: str) -> ReadingError:
    return ReadingError(
        "implausible_bp",
        f"血压“{raw}”不可能是真实读数（{detail_zh}）。" + _REMEASURE_ZH,
        f'The blood pressure "{raw}" cannot be a real reading ({detail_en}). ' + _REMEASURE_EN,
    )


def _bad_bp(raw: str) -> ReadingError:
    return ReadingError(
        "bad_bp",
        f"没有看懂血压“{raw}”，请按“高压/低压”写，例如 150/95。",
        f'Could not read the blood pressure "{raw}"; write it as upper/lower, for example 150/95.',
    )


def _unknown_unit(raw: str, quantity_zh: str, quantity_en: str, allowed: str) -> ReadingError:
    return ReadingError(
        "unknown_unit",
        f"{quantity_zh}“{raw}”的单位不对，只能用 {allowed}。",
        f'The {quantity_en} "{raw}" has a unit that does not fit; use {allowed}.',
    )


# ---------------------------------------------------------------------------------------------- numbers

_NUM = r"\d+(?:\.\d+)?"
_MMHG = r"mmhg|mm hg|mm/hg|毫米汞柱|毫米水银柱"
_KPA = r"kpa|千帕"
_BP_UNIT = re.compile(rf"(?P<mmhg>{_MMHG})|(?P<kpa>{_KPA})")
_ANY_UNIT_WORD = re.compile(r"[a-z%]+(?:\s*/\s*[a-z]+)?|毫摩尔|毫克|公斤|斤|度|℃")
_SYS_WORD = r"高压|收缩压|上压|systolic|sbp|upper"
_DIA_WORD = r"低压|舒张压|下压|diastolic|dbp|lower"
_FILL = r"\s*(?:是|为|有|:|=|大概|约)?\s*"
_SYS_PART = re.compile(rf"(?:{_SYS_WORD}){_FILL}(?P<n>{_NUM})?")
_DIA_PART = re.compile(rf"(?:{_DIA_WORD}){_FILL}(?P<n>{_NUM})?")
_PAIR = re.compile(rf"(?P<s>{_NUM})?\s*(?:/|\\|over|比)\s*(?P<d>{_NUM})?")
_NUMBER = re.compile(_NUM)


_ZH_NUMBER = re.compile(ZH_NUMERAL_RE)


def _arabic(match: re.Match[str]) -> str:
    token = match.group(0)
    if token in ("一", "两", "几", "俩"):  # "一次", "两天": a word, not a reading
        return token
    value = parse_zh_number(token)
    return token if value is None else f"{value:g}"


def _clean(text: str | None) -> str:
    """Normalised text, spoken Chinese numerals as digits ("一百五/九十" -> "150/90", "七点八" -> "7.8")."""
    if text is None or not str(text).strip():
        raise _empty()
    return _ZH_NUMBER.sub(_arabic, normalize_text(str(text))[:200])


# ---------------------------------------------------------------------------------------------- BP


def parse_blood_pressure(text: str) -> BloodPressure:
    """A blood-pressure reading from free text; raises ReadingError (incomplete_bp, implausible_bp,
    bad_bp, unknown_unit, empty_reading)."""
    raw = (text or "").strip()
    t = _clean(text)
    unit_match = _BP_UNIT.search(t)
    unit: BpUnit | None = None
    if unit_match:
        unit = "kPa" if unit_match.group("kpa") else "mmHg"
        t_wo_unit = t[: unit_match.start()] + " " + t[unit_match.end() :]
    else:
        t_wo_unit = t
        stray = re.search(rf"{_NUM}\s*(mg/dl|mmol/l|mmol|mg|kg|cm|%|度|℃)", t)
        if stray:
            raise _unknown_unit(raw, "血压", "blood pressure", "mmHg 或 kPa / mmHg or kPa")

    systolic, diastolic = _bp_numbers(t_wo_unit, raw)
    return validate_blood_pressure(systolic, diastolic, unit, raw=raw)


def _bp_numbers(t: str, raw: str) -> tuple[float, float]:
    sys_part, dia_part = _SYS_PART.search(t), _DIA_PART.search(t)
    if sys_part or dia_part:
        s = sys_part.group("n") if sys_part else None
        d = dia_part.group("n") if dia_part else None
        if s is None or d is None:
            raise _incomplete_bp(raw)
        return float(s), float(d)
    pair = _PAIR.search(t)
    if pair:
        if pair.group("s") is None or pair.group("d") is None:
            raise _incomplete_bp(raw)
        return float(pair.group("s")), float(pair.group("d"))
    numbers = _NUMBER.findall(t)
    if len(numbers) == 1:
        raise _incomplete_bp(raw)  # one number: which one is it?
    if len(numbers) == 2 and re.fullmatch(rf"[^\d]*{_NUM}\s+{_NUM}[^\d]*", t):
        return float(numbers[0]), float(numbers[1])  # "150 95": spoken without the slash
    raise _bad_bp(raw)


def validate_blood_pressure(
    systolic: float, diastolic: float, unit: BpUnit | None = None, *, raw: str | None = None
) -> BloodPressure:
    """Check (and convert from kPa) a structured or parsed pair; raises ReadingError."""
    raw = raw or f"{systolic:g}/{diastolic:g}"
    warnings: list[ReadingWarning] = []
    converted = False
    if unit == "kPa" or (unit is None and systolic < KPA_BELOW and diastolic < KPA_BELOW):
        s_kpa, d_kpa = systolic, diastolic
        systolic, diastolic = units.kpa_to_mmhg(systolic), units.kpa_to_mmhg(diastolic)
        converted = True
        code = "converted_kpa" if unit == "kPa" else "assumed_kpa"
        why_zh = "" if unit == "kPa" else "数值很小，按千帕（kPa）理解，"
        why_en = "" if unit == "kPa" else "the numbers are small, so they were read as kPa and "
        warnings.append(
            ReadingWarning(
                code=code,
                zh=f"{why_zh}{s_kpa:g}/{d_kpa:g} kPa 已换算为 {systolic:g}/{diastolic:g} mmHg，请核对。",
                en=f"{why_en}{s_kpa:g}/{d_kpa:g} kPa was converted to {systolic:g}/{diastolic:g} mmHg; "
                "please check.",
            )
        )
    s_lo, s_hi = SYSTOLIC_RANGE
    d_lo, d_hi = DIASTOLIC_RANGE
    if not s_lo <= systolic <= s_hi:
        raise _implausible_bp(raw, f"收缩压应在{s_lo}–{s_hi} mmHg", f"systolic must be {s_lo}-{s_hi} mmHg")
    if not d_lo <= diastolic <= d_hi:
        raise _implausible_bp(raw, f"舒张压应在{d_lo}–{d_hi} mmHg", f"diastolic must be {d_lo}-{d_hi} mmHg")
    if systolic <= diastolic:
        raise _implausible_bp(raw, "高压必须大于低压", "the upper number must be above the lower one")
    return BloodPressure(
        systolic=round(systolic),
        diastolic=round(diastolic),
        unit_given=unit,
        converted=converted,
        warnings=warnings,
    )


# ---------------------------------------------------------------------------------------------- glucose

_MMOL_UNIT = r"mmol\s*/\s*l|mmol|mm/l|毫摩尔(?:\s*(?:每|/)\s*(?:升|l))?"
_MG_UNIT = r"mg\s*/\s*dl|mg\s*%|mg/100\s?ml|mg|毫克(?:\s*(?:每|/)\s*(?:分升|dl))?"
_GLU_NUMBER = re.compile(
    rf"(?<![\d.])(?P<n>{_NUM})\s*(?:(?P<mmol>{_MMOL_UNIT})|(?P<mg>{_MG_UNIT})|(?P<time>小时|h(?![a-z])|hours?|"
    rf"点|分钟|min)|(?P<other>[a-z%]+|公斤|斤|度|℃))?"
)
_CONTEXT_WORDS: list[tuple[GlucoseContext, re.Pattern[str]]] = [
    ("fasting", re.compile(r"空腹|餐前|饭前|早上起床|fasting|before (?:a )?meal|fbg|fpg")),
    ("postprandial", re.compile(r"餐后|饭后|吃完饭|after (?:a )?meal|post-?prandial|2h ?pg|2 ?hours? after")),
    ("random", re.compile(r"随机|random|any time")),
]


def detect_glucose_context(text: str) -> GlucoseContext | None:
    t = normalize_text(text or "")
    for context, pattern in _CONTEXT_WORDS:
        if pattern.search(t):
            return context
    return None


def parse_glucose(text: str, context: GlucoseContext | None = None) -> Glucose:
    """A glucose reading from free text. `context` wins over words in the text (空腹/餐后/随机); with
    neither, "random". Raises ReadingError (bad_glucose, implausible_glucose, unknown_unit, ...)."""
    raw = (text or "").strip()
    t = _clean(text)
    context = context or detect_glucose_context(t) or "random"
    candidates = [m for m in _GLU_NUMBER.finditer(t) if not m.group("time")]
    if not candidates:
        raise ReadingError(
            "bad_glucose",
            f"没有在“{raw}”里找到血糖数值，请写成例如 7.8 或 7.8 mmol/L。",
            f'No glucose value found in "{raw}"; write it like 7.8 or 7.8 mmol/L.',
        )
    if len(candidates) > 1:
        raise ReadingError(
            "multiple_values",
            f"“{raw}”里有多个数字，请一次只记录一个血糖值。",
            f'"{raw}" holds several numbers; please record one glucose value at a time.',
        )
    m = candidates[0]
    if m.group("other"):
        raise _unknown_unit(raw, "血糖", "glucose", "mmol/L 或 mg/dL / mmol/L or mg/dL")
    unit: GlucoseUnit | None = "mg/dL" if m.group("mg") else "mmol/L" if m.group("mmol") else None
    return validate_glucose(float(m.group("n")), unit, context, raw=raw)


def validate_glucose(
    value: float, unit: GlucoseUnit | None, context: GlucoseContext, *, raw: str | None = None
) -> Glucose:
    """Check (and convert from mg/dL) a glucose value; raises ReadingError."""
    raw = raw or f"{value:g}"
    warnings: list[ReadingWarning] = []
    converted = False
    mmol = value
    if unit == "mg/dL" or (unit is None and value > units.BARE_GLUCOSE_MG_DL_ABOVE):
        mmol = units.mg_dl_to_mmol_l(value)
        converted = True
        if unit == "mg/dL":
            warnings.append(
                ReadingWarning(
                    code="converted_mg_dl",
                    zh=f"{value:g} mg/dL 已换算为 {mmol:g} mmol/L。",
                    en=f"{value:g} mg/dL was converted to {mmol:g} mmol/L.",
                )
            )
        else:
            warnings.append(
                ReadingWarning(
                    code="assumed_mg_dl",
                    zh=f"{value:g} 作为 mmol/L 太高，按 mg/dL 理解，换算为 {mmol:g} mmol/L，请核对单位。",
                    en=f"{value:g} is too high for mmol/L, so it was read as mg/dL and converted to "
                    f"{mmol:g} mmol/L; please check the unit.",
                )
            )
    low, high = GLUCOSE_RANGE
    if not low <= mmol <= high:
        raise ReadingError(
            "implausible_glucose",
            f"血糖“{raw}”不可能是真实读数（应在{low:g}–{high:g} mmol/L）。" + _REMEASURE_ZH,
            f'The glucose "{raw}" cannot be a real reading (it must be {low:g}-{high:g} mmol/L). '
            + _REMEASURE_EN,
        )
    return Glucose(
        mmol_l=round(mmol, 1), context=context, unit_given=unit, converted=converted, warnings=warnings
    )


# ---------------------------------------------------------------------------------------------- HbA1c

_HBA1C = re.compile(rf"(?<![\d.])(?P<n>{_NUM})\s*(?:(?P<pct>%|percent)|(?P<ifcc>mmol\s*/\s*mol))?")


def parse_hba1c(text: str) -> HbA1c:
    """HbA1c in percent ("糖化7.2%", "HbA1c 7.2", "55 mmol/mol" → 7.2 %); raises ReadingError."""
    raw = (text or "").strip()
    t = _clean(text).replace("hba1c", "hba_c").replace("a1c", "a_c")  # the 1 of A1c is not a value
    numbers = list(_HBA1C.finditer(t))
    if len(numbers) != 1:
        raise ReadingError(
            "bad_hba1c",
            f"请只写一个糖化血红蛋白数值，例如 7.2%（收到“{raw}”）。",
            f'Please give one HbA1c value, for example 7.2 % (got "{raw}").',
        )
    m = numbers[0]
    value = float(m.group("n"))
    if m.group("ifcc"):
        percent = round(value / 10.929 + 2.15, 1)  # IFCC-NGSP master equation
        warning = ReadingWarning(
            code="converted_mmol_mol",
            zh=f"{value:g} mmol/mol 已换算为 {percent:g}%。",
            en=f"{value:g} mmol/mol was converted to {percent:g} %.",
        )
        return _check_hba1c(percent, raw, "mmol/mol", [warning])
    return _check_hba1c(value, raw, "%" if m.group("pct") else None, [])


def _check_hba1c(
    percent: float, raw: str, unit: Literal["%", "mmol/mol"] | None, warnings: list[ReadingWarning]
) -> HbA1c:
    low, high = HBA1C_RANGE
    if not low <= percent <= high:
        raise ReadingError(
            "implausible_hba1c",
            f"糖化血红蛋白“{raw}”不可能是真实结果（应在{low:g}%–{high:g}%）。请核对化验单。",
            f'The HbA1c "{raw}" cannot be a real result (it must be {low:g}-{high:g} %). '
            "Please check the report.",
        )
    return HbA1c(percent=round(percent, 1), unit_given=unit, converted=unit == "mmol/mol", warnings=warnings)


def validate_hba1c(percent: float) -> HbA1c:
    return _check_hba1c(percent, f"{percent:g}%", "%", [])
