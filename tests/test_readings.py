"""tools/readings.py: blood pressure, glucose and HbA1c as people write them, with units — and every bad
input the issue lists ("180/", "12/8" kPa vs mmHg, glucose in mg/dL) giving a clear zh/en error or a
conversion *with* a warning, never a crash or a silent guess."""

from __future__ import annotations

import pytest

from tools.readings import (
    ReadingError,
    parse_blood_pressure,
    parse_glucose,
    parse_hba1c,
    validate_blood_pressure,
    validate_glucose,
)


@pytest.mark.parametrize(
    ("text", "systolic", "diastolic", "unit"),
    [
        ("150/95", 150, 95, None),
        ("150/95mmHg", 150, 95, "mmHg"),
        ("150／95 mmHg", 150, 95, "mmHg"),  # full-width slash
        ("高压150低压95", 150, 95, None),
        ("收缩压150 舒张压95", 150, 95, None),
        ("低压95，高压150", 150, 95, None),  # order of the words does not matter
        ("血压190/120 头痛", 190, 120, None),
        ("BP 150 over 95", 150, 95, None),
        ("150 95", 150, 95, None),
        ("16/10.7kPa", 120, 80, "kPa"),
        ("高压一百五十，低压九十五", 150, 95, None),  # speech-to-text writes numerals in Chinese
        ("一百八/一百一", 180, 110, None),
    ],
)
def test_blood_pressure_forms(text: str, systolic: int, diastolic: int, unit: str | None) -> None:
    bp = parse_blood_pressure(text)
    assert (bp.systolic, bp.diastolic, bp.unit_given) == (systolic, diastolic, unit)
    assert bp.converted == (unit == "kPa")


def test_explicit_kpa_is_converted_with_a_warning() -> None:
    bp = parse_blood_pressure("12/8 kPa")
    assert (bp.systolic, bp.diastolic, bp.unit_given, bp.converted) == (90, 60, "kPa", True)
    assert [w.code for w in bp.warnings] == ["converted_kpa"]
    assert "90/60" in bp.warnings[0].zh and "90/60" in bp.warnings[0].en


def test_bare_small_pair_is_read_as_kpa_and_says_so() -> None:
    bp = parse_blood_pressure("12/8")
    assert (bp.systolic, bp.diastolic, bp.unit_given, bp.converted) == (90, 60, None, True)
    assert [w.code for w in bp.warnings] == ["assumed_kpa"]
    assert "kPa" in bp.warnings[0].zh and "kPa" in bp.warnings[0].en


def test_mmhg_pair_gets_no_warning() -> None:
    assert parse_blood_pressure("150/95").warnings == []


@pytest.mark.parametrize("text", ["180/", "/90", "180", "高压180", "低压90", "血压150", "150/ mmHg"])
def test_incomplete_blood_pressure(text: str) -> None:
    with pytest.raises(ReadingError) as info:
        parse_blood_pressure(text)
    assert info.value.code == "incomplete_bp"
    assert "高压" in info.value.zh and "systolic" in info.value.en
    assert info.value.message("zh") != info.value.message("en")


@pytest.mark.parametrize(
    "text",
    [
        "90/150",  # upper below lower
        "120/120",
        "400/90",  # no one's systolic
        "150/20",
        "12/8 mmHg",  # explicit mmHg: 12 is not a reading, and it must not be "corrected" to kPa
        "150/95 kPa",  # 1125 mmHg
        "35/50",
    ],
)
def test_implausible_blood_pressure(text: str) -> None:
    with pytest.raises(ReadingError) as info:
        parse_blood_pressure(text)
    assert info.value.code == "implausible_bp"
    assert "重新测量" in info.value.zh and "measure again" in info.value.en


@pytest.mark.parametrize(
    ("text", "code"),
    [("", "empty_reading"), ("   ", "empty_reading"), ("不知道", "bad_bp"), ("150/95 mg/dL", "unknown_unit")],
)
def test_other_bad_blood_pressure(text: str, code: str) -> None:
    with pytest.raises(ReadingError) as info:
        parse_blood_pressure(text)
    assert info.value.code == code and info.value.zh and info.value.en


def test_structured_blood_pressure_uses_the_same_checks() -> None:
    assert validate_blood_pressure(150, 95).systolic == 150
    assert validate_blood_pressure(20, 12, "kPa").systolic == 150
    with pytest.raises(ReadingError, match="implausible_bp"):
        validate_blood_pressure(95, 150)


# ------------------------------------------------------------------------------------------------ glucose


@pytest.mark.parametrize(
    ("text", "context", "mmol", "unit", "converted", "warning"),
    [
        ("7.8", None, 7.8, None, False, None),
        ("血糖7.8", None, 7.8, None, False, None),
        ("空腹血糖 6.1 mmol/L", None, 6.1, "mmol/L", False, None),
        ("餐后2小时血糖11.2", None, 11.2, None, False, None),  # "2小时" is a time, not the value
        ("140 mg/dL", None, 7.8, "mg/dL", True, "converted_mg_dl"),
        ("血糖126毫克", None, 7.0, "mg/dL", True, "converted_mg_dl"),
        ("140", None, 7.8, None, True, "assumed_mg_dl"),  # bare > 35: mg/dL, with a warning
        ("35", None, 35.0, None, False, None),  # 35 itself is still mmol/L
        ("血糖七点八", None, 7.8, None, False, None),
    ],
)
def test_glucose_forms(
    text: str, context: str | None, mmol: float, unit: str | None, converted: bool, warning: str | None
) -> None:
    g = parse_glucose(text)
    assert (g.mmol_l, g.unit_given, g.converted) == (mmol, unit, converted)
    assert [w.code for w in g.warnings] == ([warning] if warning else [])


def test_glucose_context_from_argument_or_text() -> None:
    assert parse_glucose("空腹6.1").context == "fasting"
    assert parse_glucose("饭后9.0").context == "postprandial"
    assert parse_glucose("7.8").context == "random"  # unknown: random (target < 10)
    assert parse_glucose("餐后 9.0", context="fasting").context == "fasting"  # the caller knows best


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("0.1", "implausible_glucose"),
        ("2000", "implausible_glucose"),  # 111 mmol/L even as mg/dL
        ("80 mmol/L", "implausible_glucose"),  # explicit mmol/L is never reinterpreted
        ("", "empty_reading"),
        ("血糖很高", "bad_glucose"),
        ("血糖7.8公斤", "unknown_unit"),
        ("血糖 7.8 8.2", "multiple_values"),
    ],
)
def test_bad_glucose(text: str, code: str) -> None:
    with pytest.raises(ReadingError) as info:
        parse_glucose(text)
    assert info.value.code == code
    assert info.value.zh != info.value.en and info.value.zh and info.value.en


def test_structured_glucose_converts_mg_dl() -> None:
    g = validate_glucose(140, "mg/dL", "fasting")
    assert (g.mmol_l, g.converted, g.context) == (7.8, True, "fasting")


# ------------------------------------------------------------------------------------------------ HbA1c


@pytest.mark.parametrize(
    ("text", "percent", "converted"),
    [
        ("糖化7.2%", 7.2, False),
        ("HbA1c 7.2", 7.2, False),
        ("A1c 6.5 %", 6.5, False),
        ("55 mmol/mol", 7.2, True),
    ],
)
def test_hba1c_forms(text: str, percent: float, converted: bool) -> None:
    h = parse_hba1c(text)
    assert (h.percent, h.converted) == (percent, converted)


@pytest.mark.parametrize(("text", "code"), [("72%", "implausible_hba1c"), ("糖化", "bad_hba1c")])
def test_bad_hba1c(text: str, code: str) -> None:
    with pytest.raises(ReadingError) as info:
        parse_hba1c(text)
    assert info.value.code == code
