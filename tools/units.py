"""Unit conversions and plausibility limits for patient-reported measurements.

The limits say what a *measurement of a living person* can be; values outside them are almost
certainly typos or the wrong unit, so the extractor asks to re-measure rather than guessing.
Values inside them, however alarming (42 °C, SpO2 85 %), are kept: urgency is the engine's call.
"""

from __future__ import annotations

# Glucose molar mass 180.16 g/mol → 1 mmol/L = 18.0 mg/dL.
MG_DL_PER_MMOL_L = 18.0
# 1 kPa = 7.50062 mmHg.
MMHG_PER_KPA = 7.50062

HOURS_PER_UNIT: dict[str, float] = {
    "minute": 1 / 60,
    "hour": 1.0,
    "day": 24.0,
    "night": 24.0,
    "week": 168.0,
    "month": 720.0,  # 30 days
    "year": 8760.0,  # 365 days
}
MONTHS_PER_UNIT: dict[str, float] = {
    "day": 12 / 365.25,
    "week": 7 * 12 / 365.25,
    "month": 1.0,
    "year": 12.0,
}
WEEKS_PER_MONTH = 52 / 12  # 4.33 — for "怀孕五个月" (calendar months, not lunar 4-week months)

# (low, high) inclusive plausible range of each measurement.
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "temperature_c": (34.0, 43.5),
    "heart_rate": (20.0, 300.0),
    "respiratory_rate": (3.0, 120.0),
    "spo2": (50.0, 100.0),
    "systolic_bp": (40.0, 300.0),
    "diastolic_bp": (10.0, 250.0),
    "glucose_mmol": (0.5, 60.0),
    "age_months": (0.0, 130 * 12.0),
    "pregnancy_weeks": (0.0, 45.0),
}

# A bare number in a temperature context inside this band is read as °F.
BARE_FAHRENHEIT_BAND = (95.0, 110.0)
# An explicit but ambiguous unit ("degrees", "度", "°") inside this band is read as °F.
AMBIGUOUS_FAHRENHEIT_BAND = (93.0, 111.0)
# A bare glucose above this (no unit) is read as mg/dL.
BARE_GLUCOSE_MG_DL_ABOVE = 35.0
# A BP pair whose systolic is at most this (with BP context, no unit) is read as kPa.
BARE_BP_KPA_MAX_SYSTOLIC = 35.0


def fahrenheit_to_celsius(value_f: float) -> float:
    return round((value_f - 32.0) * 5.0 / 9.0, 1)


def mg_dl_to_mmol_l(value_mg_dl: float) -> float:
    return round(value_mg_dl / MG_DL_PER_MMOL_L, 1)


def kpa_to_mmhg(value_kpa: float) -> float:
    return float(round(value_kpa * MMHG_PER_KPA))


def to_hours(amount: float, unit: str) -> float:
    """Duration in hours; unit is a key of HOURS_PER_UNIT."""
    return round(amount * HOURS_PER_UNIT[unit], 2)


def to_months(amount: float, unit: str) -> float:
    """Age in months; unit is a key of MONTHS_PER_UNIT."""
    return round(amount * MONTHS_PER_UNIT[unit], 2)


def is_plausible(field: str, value: float) -> bool:
    low, high = PLAUSIBLE[field]
    return low <= value <= high
