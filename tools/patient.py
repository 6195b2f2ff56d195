"""Who the patient is, as far as triage rules care: age band, child/adult, pregnancy, sex."""

from __future__ import annotations

from dataclasses import dataclass

from tools.triage_models import Facts

CHILD_MAX_MONTHS = 15 * 12  # paediatrics sees children up to and including 14 years
ELDERLY_MIN_MONTHS = 65 * 12


def age_band(age_months: float) -> str:
    if age_months < 1:
        return "newborn"
    if age_months < 3:
        return "infant_young"
    if age_months < 6:
        return "infant_mid"
    if age_months < 12:
        return "infant_old"
    if age_months < 60:
        return "toddler"
    if age_months < CHILD_MAX_MONTHS:
        return "child"
    if age_months < ELDERLY_MIN_MONTHS:
        return "adult"
    return "elderly"


@dataclass(frozen=True)
class Patient:
    """Facts plus what the words imply when a fact is missing ("宝宝", "新生儿", "老人")."""

    age_months: float | None
    age_inferred: bool  # True when the age band comes from words, not a number
    band: str
    sex: str | None
    pregnant: bool
    pregnancy_weeks: float | None

    @property
    def is_child(self) -> bool:
        return self.band in {"newborn", "infant_young", "infant_mid", "infant_old", "toddler", "child"}

    @property
    def bands(self) -> set[str]:
        found = {"all", self.band}
        if self.pregnant:
            found.add("pregnant")
        return found

    def years(self) -> float | None:
        return None if self.age_months is None else self.age_months / 12


def build_patient(facts: Facts, present: set[str]) -> Patient:
    pregnant = bool(facts.pregnant) or facts.pregnancy_weeks is not None
    if facts.age_months is not None:
        return Patient(
            facts.age_months, False, age_band(facts.age_months), facts.sex, pregnant, facts.pregnancy_weeks
        )
    if "newborn_words" in present:
        band = "newborn"
    elif "child_words" in present and "infertility" not in present:
        band = "toddler"
    elif "elderly_words" in present:
        band = "elderly"
    else:
        band = "adult"
    return Patient(None, band != "adult", band, facts.sex, pregnant, facts.pregnancy_weeks)
