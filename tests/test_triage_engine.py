"""Behaviour of the deterministic triage engine (tools.triage.assess).

Every input here is written for this file (not taken from evals/data). Tests assert what the
engine decides — level, red-flag rule ids, negation, units, care setting, departments, follow-up
questions, citations and the audit trail — not merely that it runs.
Gaps found while writing these tests are kept as regression tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools.departments import FEMALE_ONLY, MALE_ONLY
from tools.rulebook import load_rulebook
from tools.triage import assess
from tools.triage_models import CareSetting, Facts, Level, TriageInput, TriageResult, VitalSigns

CORPUS_DIR = Path(__file__).resolve().parent.parent / "knowledge" / "corpus"
L = Level


def run(text: str, lang: str | None = None, **facts: object) -> TriageResult:
    return assess(TriageInput(text=text, lang=lang, facts=Facts(**facts)))


def flag_ids(result: TriageResult) -> list[str]:
    return [f.rule_id for f in result.red_flags]


def trace_ids(result: TriageResult) -> list[str]:
    return [f.rule_id for f in result.rule_trace]


def dept_ids(result: TriageResult) -> list[str]:
    return [d.id for d in result.departments]


def missing_ids(result: TriageResult) -> list[str]:
    return [m.id for m in result.missing]


def warning_codes(result: TriageResult) -> list[str]:
    return [w.code for w in result.warnings]


def at_least(result: TriageResult, level: Level) -> bool:
    return result.level.rank >= level.rank


# --------------------------------------------------------------------------------------------
# Red flags in colloquial zh and en
# --------------------------------------------------------------------------------------------

# (text, minimum level, red-flag rule id that must fire)
RED_FLAG_CASES = [
    ("我爸心口疼，一直冒冷汗", L.emergency_ambulance, "RF-CARD-01"),
    ("我喘不上气，胸口发紧", L.emergency_ambulance, "RF-CARD-01"),
    ("我老公突然喘不上气了", L.emergency, "RF-RESP-02"),
    ("孩子刚才抽风了", L.emergency, "RF-SEIZ-02"),
    ("我妈在厨房突然昏过去了", L.emergency, "RF-CARD-03"),
    ("两个月的宝宝烧到39度多", L.emergency, "RF-INF-01"),
    ("叫他半天叫不醒", L.emergency_ambulance, "RF-CONS-01"),
    ("老人说话口齿不清，一侧手脚没劲", L.emergency_ambulance, "RF-STROKE-01"),
    ("he has crushing chest pain", L.emergency, "RF-CARD-02"),
    ("he has crushing chest pain and is sweating buckets", L.emergency_ambulance, "RF-CARD-01"),
    ("my dad's speech is slurred", L.emergency_ambulance, "RF-STROKE-01"),
    ("she suddenly can't lift her right arm", L.emergency_ambulance, "RF-STROKE-01"),
    ("help, I can't breathe and I'm scared", L.emergency, "RF-RESP-02"),
    ("her lips are turning blue", L.emergency_ambulance, "RF-RESP-01"),
    ("my son had a seizure, first time ever", L.emergency, "RF-SEIZ-02"),
    ("two month old with a fever", L.emergency, "RF-INF-01"),
]


@pytest.mark.parametrize(("text", "minimum", "rule_id"), RED_FLAG_CASES)
def test_colloquial_red_flags_reach_emergency_with_their_rule(
    text: str, minimum: Level, rule_id: str
) -> None:
    result = run(text)
    assert at_least(result, minimum), (text, result.level)
    assert at_least(result, L.emergency)
    assert rule_id in flag_ids(result)
    assert rule_id in trace_ids(result)
    assert "120" in result.advice
    assert result.care_setting in {CareSetting.emergency_department, CareSetting.ambulance_ed}


def test_red_flag_evidence_quotes_the_patients_words() -> None:
    result = run("我爸心口疼，一直冒冷汗")
    card = next(f for f in result.red_flags if f.rule_id == "RF-CARD-01")
    assert "心口疼" in card.evidence and "冷汗" in card.evidence
    assert card.level == L.emergency_ambulance


def test_red_flags_are_listed_most_urgent_first() -> None:
    result = run("我喘不上气，胸口发紧")
    ranks = [f.level.rank for f in result.red_flags]
    assert ranks == sorted(ranks, reverse=True)


@pytest.mark.parametrize(
    ("text", "lang"), [("胸口压着疼，满头大汗", "zh"), ("chest pain and sweating a lot", "en")]
)
def test_ambulance_level_says_call_120_in_the_output_language(text: str, lang: str) -> None:
    result = run(text)
    assert result.level == L.emergency_ambulance
    assert result.lang == lang
    assert result.care_setting == CareSetting.ambulance_ed
    assert "120" in result.level_label and "120" in result.advice
    assert "120" in result.disclaimer
    if lang == "zh":
        assert "拨打120" in result.advice
    else:
        assert "Call 120" in result.advice


def test_explicit_lang_overrides_detection() -> None:
    result = run("chest pain with cold sweat", lang="zh")
    assert result.lang == "zh"
    assert result.level_label == "立即拨打120"
    assert re.search(r"[\u4e00-\u9fff]", result.advice)


# --------------------------------------------------------------------------------------------
# Negation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "concept_rule"),
    [
        ("没有胸痛", "RF-CARD-02"),
        ("denies chest pain", "RF-CARD-02"),
        ("he has no chest pain", "RF-CARD-02"),
        ("without chest pain", "RF-CARD-02"),
    ],
)
def test_denied_chest_pain_does_not_fire(text: str, concept_rule: str) -> None:
    result = run(text)
    assert concept_rule not in trace_ids(result)
    assert result.level == L.routine  # nothing recognised: the safe fallback, not an emergency
    assert "FALLBACK-UNRECOGNISED" in trace_ids(result)


@pytest.mark.parametrize(
    "text", ["我头疼，不发烧", "I've got a headache, no fever", "孩子不发烧了，就是有点咳嗽"]
)
def test_denied_fever_does_not_fire(text: str) -> None:
    result = run(text)
    assert "CP-fever" not in trace_ids(result)
    assert "fever" not in missing_ids(result)  # a denied symptom counts as answered
    assert "temperature" not in missing_ids(result)


def test_negation_stays_within_its_clause() -> None:
    result = run("没有胸痛，但是头痛")
    assert "CP-headache" in trace_ids(result)
    assert "RF-CARD-02" not in trace_ids(result)
    assert dept_ids(result)[0] == "neurology"


def test_english_negation_does_not_cross_but() -> None:
    result = run("no fever but a bad cough")
    assert "CP-cough" in trace_ids(result)
    assert "CP-fever" not in trace_ids(result)


def test_english_negated_list_negates_every_item() -> None:
    result = run("denies chest pain, fever or cough")
    assert not {"RF-CARD-02", "CP-fever", "CP-cough"} & set(trace_ids(result))


def test_several_zh_denials_all_hold() -> None:
    result = run("没有发烧，没有咳嗽，没有胸痛")
    assert not {"RF-CARD-02", "CP-fever", "CP-cough"} & set(trace_ids(result))
    assert result.uncertain


@pytest.mark.parametrize("text", ["孩子发不发烧我也不知道", "我头疼，发不发烧不知道"])
def test_a_yes_no_question_form_is_not_a_denial(text: str) -> None:
    result = run(text)
    assert "CP-fever" in trace_ids(result)


def test_nonstop_cough_is_still_a_cough() -> None:
    result = run("这两天不停地咳嗽")
    assert "CP-cough" in trace_ids(result)
    assert dept_ids(result)[0] == "respiratory"
    assert result.level == L.routine


def test_unmentioned_symptom_is_still_asked_about() -> None:
    assert "chest_pain" in missing_ids(run("头晕"))
    assert "fever" in missing_ids(run("咳嗽"))


# --------------------------------------------------------------------------------------------
# Synonyms, typos, homophones, traditional characters
# --------------------------------------------------------------------------------------------

# (variant, canonical): both must give the same level and the same red flags.
VARIANT_PAIRS = [
    ("孩子突然抽蓄了", "孩子突然抽搐了"),  # look-alike typo list
    ("孩子突然抽畜", "孩子突然抽搐"),
    ("我爸突然呼吸困南", "我爸突然呼吸困难"),  # 同音字 in a 4-character phrase
    ("奶奶说话口齿不青", "奶奶说话口齿不清"),  # 同音字 in a 4-character phrase
    ("爷爷刚才晕决了", "爷爷刚才晕厥了"),  # 同音字 in a 2-character phrase (same tones)
    ("he is unconcious", "he is unconscious"),
    ("he is having a seizrue", "he is having a seizure"),
    ("she feels dizzy and confussed", "she feels dizzy and confused"),
    # 繁體 vs 简体
    ("爸爸胸口悶得很，還出冷汗", "爸爸胸口闷得很，还出冷汗"),
    ("孩子剛才抽風了", "孩子刚才抽风了"),
    ("我喘不上氣", "我喘不上气"),
    ("孩子發高燒，叫不醒", "孩子发高烧，叫不醒"),
    ("媽媽說話不清楚", "妈妈说话不清楚"),
]


@pytest.mark.parametrize(("variant", "canonical"), VARIANT_PAIRS)
def test_typos_homophones_and_traditional_give_the_same_result(variant: str, canonical: str) -> None:
    a, b = run(variant), run(canonical)
    assert a.level == b.level
    assert flag_ids(a) == flag_ids(b)
    assert dept_ids(a) == dept_ids(b)
    assert at_least(a, L.emergency)


def test_homophone_match_is_marked_uncertain() -> None:
    fuzzy, exact = run("我爸突然呼吸困南"), run("我爸突然呼吸困难")
    assert fuzzy.uncertain and any("近似" in r for r in fuzzy.uncertainty_reasons)
    assert not exact.uncertain


@pytest.mark.parametrize("text", ["我爸心口疼，一直出冷汗", "30岁男性，胸口很痛出冷汗"])
def test_exactly_spelled_red_flag_is_not_marked_approximate(text: str) -> None:
    # a pinyin hit inside an exact hit of the same concept ("冷汗" in "出冷汗") is not a typo
    result = run(text)
    assert result.level == L.emergency_ambulance
    assert not result.uncertain


def test_english_misspelling_is_marked_uncertain() -> None:
    result = run("he is unconcious")
    assert result.uncertain
    assert any("approximate" in r for r in result.uncertainty_reasons)


def test_full_width_and_zero_width_characters_are_normalised() -> None:
    result = run("ｆｅｖｅｒ　３９℃")
    assert result.facts.vitals.temperature_c == pytest.approx(39.0)
    assert "CP-fever" in trace_ids(result)
    assert "CP-headache" in trace_ids(run("头痛\u200b\u200b"))


# --------------------------------------------------------------------------------------------
# Age bands, pregnancy
# --------------------------------------------------------------------------------------------


def test_baby_under_3_months_with_38_is_emergency() -> None:
    result = run("宝宝出生七周，今天量体温38度")
    assert result.facts.age_months is not None and result.facts.age_months < 3
    assert result.level == L.emergency
    assert {"RF-INF-01", "VS-TEMP-01"} <= set(flag_ids(result))
    assert dept_ids(result)[0] == "ped_emergency"


def test_four_month_old_at_39_2_is_urgent() -> None:
    result = run("my 4 month old has a temperature of 39.2")
    assert result.facts.age_months == pytest.approx(4.0)
    assert result.level == L.urgent
    assert "VS-TEMP-02" in trace_ids(result)
    assert "RF-INF-01" not in trace_ids(result)
    assert result.care_setting == CareSetting.hospital_clinic


@pytest.mark.parametrize(
    "text",
    [
        "孩子2岁，发烧38.5度一天了，精神挺好还能玩",
        "my 2 year old has had a fever of 38.5 since yesterday, still playing happily",
    ],
)
def test_well_two_year_old_with_one_day_fever_is_self_care(text: str) -> None:
    result = run(text)
    assert result.level == L.self_care
    assert result.care_setting == CareSetting.home
    assert result.facts.age_months == pytest.approx(24.0)
    assert result.facts.vitals.temperature_c == pytest.approx(38.5)
    assert all(d.startswith("ped_") for d in dept_ids(result))


def test_same_toddler_fever_for_three_days_is_urgent() -> None:
    result = run("孩子2岁，发烧38.5度三天了，精神还可以")
    assert result.level == L.urgent


@pytest.mark.parametrize(
    ("text", "facts"),
    [
        ("我奶奶78岁，发烧了", {}),
        ("grandpa is 82 and has a fever", {}),
        ("发烧38度", {"age_months": 70 * 12}),
    ],
)
def test_fever_in_an_older_person_is_at_least_urgent(text: str, facts: dict) -> None:
    result = run(text, **facts)
    assert at_least(result, L.urgent)
    assert "RF-ELD-03" in trace_ids(result)
    assert not any(d.startswith("ped_") for d in dept_ids(result))


def test_same_fever_in_a_young_adult_is_not_urgent() -> None:
    result = run("发烧38度", age_months=30 * 12)
    assert result.level == L.routine
    assert "RF-ELD-03" not in trace_ids(result)


@pytest.mark.parametrize(
    "text",
    ["我怀孕两个月，阴道出血", "I am 10 weeks pregnant and bleeding from the vagina", "孕妇，下身见红了"],
)
def test_bleeding_in_pregnancy_is_emergency_with_obstetrics(text: str) -> None:
    result = run(text)
    assert at_least(result, L.emergency)
    assert "RF-PREG-01" in flag_ids(result)
    assert "obstetrics" in dept_ids(result)
    assert result.facts.pregnant is True


@pytest.mark.parametrize(
    ("text", "facts"),
    [
        ("怀孕25周，头疼得厉害", {}),
        ("I'm 24 weeks pregnant and have a headache", {}),
        ("头有点疼", {"pregnant": True, "pregnancy_weeks": 32, "sex": "female"}),
    ],
)
def test_headache_after_20_weeks_of_pregnancy_is_emergency(text: str, facts: dict) -> None:
    result = run(text, **facts)
    assert at_least(result, L.emergency)
    assert "RF-PREG-03" in flag_ids(result)
    assert "obstetrics" in dept_ids(result)


def test_mild_headache_early_in_pregnancy_is_not_the_preeclampsia_rule() -> None:
    result = run("怀孕12周，有点头疼")
    assert "RF-PREG-03" not in trace_ids(result)
    assert result.level == L.routine  # pregnancy lifts a self-care complaint to a clinic visit
    assert "obstetrics" in dept_ids(result)
    assert result.care_setting == CareSetting.hospital_clinic


# --------------------------------------------------------------------------------------------
# Vital signs and units
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["血氧88%", "my oxygen saturation is 88%"])
def test_spo2_88_calls_an_ambulance(text: str) -> None:
    result = run(text)
    assert result.facts.vitals.spo2 == pytest.approx(88.0)
    assert result.level == L.emergency_ambulance
    assert "VS-SPO2-01" in flag_ids(result)
    assert result.care_setting == CareSetting.ambulance_ed
    assert dept_ids(result) == ["emergency"]


def test_fahrenheit_with_unit_is_converted_to_celsius() -> None:
    result = run("fever of 102F since yesterday")
    assert result.facts.vitals.temperature_c == pytest.approx(38.9, abs=0.05)
    assert result.facts.duration_hours == pytest.approx(24.0)


def test_bare_fahrenheit_number_is_converted_with_a_warning() -> None:
    result = run("temp 102 since this morning")
    assert result.facts.vitals.temperature_c == pytest.approx(38.9, abs=0.05)
    assert "assumed_fahrenheit" in warning_codes(result)


@pytest.mark.parametrize("text", ["血糖45mg/dL，头晕出汗", "blood sugar 45 mg/dL and shaky"])
def test_glucose_in_mg_dl_is_converted_and_low_glucose_is_urgent_or_worse(text: str) -> None:
    result = run(text)
    assert result.facts.vitals.glucose_mmol == pytest.approx(2.5, abs=0.05)
    assert at_least(result, L.urgent)
    assert "VS-GLU-01" in trace_ids(result)


@pytest.mark.parametrize("text", ["血压190/125，头痛", "my blood pressure is 190/125 and I have a headache"])
def test_very_high_bp_with_headache_is_emergency(text: str) -> None:
    result = run(text)
    assert (result.facts.vitals.systolic_bp, result.facts.vitals.diastolic_bp) == (190.0, 125.0)
    assert at_least(result, L.emergency)
    assert "VS-COMBO-01" in flag_ids(result)


def test_very_high_bp_alone_is_urgent_not_emergency() -> None:
    result = run("量了血压190/125，没有别的不舒服")
    assert result.level == L.urgent
    assert "VS-COMBO-01" not in trace_ids(result)


@pytest.mark.parametrize("text", ["心率140，心慌", "heart rate 140"])
def test_adult_heart_rate_140_is_emergency(text: str) -> None:
    result = run(text)
    assert result.facts.vitals.heart_rate == pytest.approx(140.0)
    assert result.level == L.emergency
    assert "VS-HR-05" in flag_ids(result)


def test_heart_rate_bands_depend_on_age() -> None:
    toddler = run("心率140", age_months=24)  # > 140 is the toddler threshold
    assert "VS-HR-05" not in trace_ids(toddler)
    assert toddler.level.rank < L.emergency.rank


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("体温45℃", "implausible_temperature"),
        ("体温25℃", "implausible_temperature"),
        ("體溫45度", "implausible_temperature"),
        ("血氧150%", "implausible_spo2"),
        ("心率500", "implausible_heart_rate"),
    ],
)
def test_impossible_values_are_warned_about_and_not_used(text: str, code: str) -> None:
    result = run(text)
    assert code in warning_codes(result)
    assert all(w.code.startswith("implausible") for w in result.warnings)
    assert result.facts.vitals == VitalSigns()
    assert result.uncertain
    assert any("重新测量" in r for r in result.uncertainty_reasons)
    assert "VS-TEMP-06" not in trace_ids(result)  # 25 °C must not be read as hypothermia


@pytest.mark.parametrize("text", ["孩子体温39斤", "temperature 39 kg"])
def test_unknown_unit_is_warned_about(text: str) -> None:
    result = run(text)
    assert "unknown_unit" in warning_codes(result)
    assert result.facts.vitals.temperature_c is None
    assert result.uncertain


def test_impossible_value_warning_speaks_the_output_language() -> None:
    zh, en = run("体温45℃"), run("temperature 45 C")
    assert re.search(r"[\u4e00-\u9fff]", zh.warnings[0].message)
    assert not re.search(r"[\u4e00-\u9fff]", en.warnings[0].message)


# --------------------------------------------------------------------------------------------
# Contradictions and structured facts
# --------------------------------------------------------------------------------------------


def test_denied_fever_with_high_temperature_is_treated_as_fever() -> None:
    result = run("没发烧，体温39度")
    assert "contradiction_fever" in warning_codes(result)
    assert "CP-fever" in trace_ids(result)
    assert result.facts.vitals.temperature_c == pytest.approx(39.0)
    assert result.uncertain


def test_structured_age_drives_infant_fever_rule() -> None:
    result = run("发烧38度", age_months=1)
    assert result.level == L.emergency
    assert "RF-INF-01" in flag_ids(result)
    assert "age" not in missing_ids(result)


def test_structured_value_wins_over_text_and_conflict_is_reported() -> None:
    result = run("孩子5个月大，发烧38度", age_months=1)
    assert result.facts.age_months == pytest.approx(1.0)
    assert "conflicting_fact" in warning_codes(result)
    assert result.level == L.emergency


def test_structured_temperature_wins_over_text_temperature() -> None:
    result = run("体温39度", vitals=VitalSigns(temperature_c=37.0))
    assert result.facts.vitals.temperature_c == pytest.approx(37.0)
    assert "conflicting_fact" in warning_codes(result)


@pytest.mark.parametrize(
    ("vitals", "code"),
    [
        ({"temperature_c": 45.0}, "implausible_temperature"),
        ({"spo2": 130.0}, "implausible_spo2"),
        ({"heart_rate": 900.0}, "implausible_heart_rate"),
    ],
)
def test_impossible_structured_vitals_are_dropped_with_a_warning(vitals: dict, code: str) -> None:
    result = run("头疼", vitals=VitalSigns(**vitals))
    assert code in warning_codes(result)
    assert result.facts.vitals == VitalSigns()
    assert result.uncertain
    assert "CP-headache" in trace_ids(result)


def test_structured_vitals_alone_trigger_vital_rules() -> None:
    result = run("有点不舒服", vitals=VitalSigns(spo2=86))
    assert result.level == L.emergency_ambulance
    assert "VS-SPO2-01" in flag_ids(result)


# --------------------------------------------------------------------------------------------
# Departments and care settings
# --------------------------------------------------------------------------------------------

ADULT_TEXTS = [
    "咳嗽三天，发烧，喉咙痛",
    "肚子疼，拉肚子",
    "最近老是头晕",
    "皮肤起了很多红疹子，很痒",
    "胸口疼出冷汗",
    "小便的时候疼，尿频",
    "腰疼好几个月了",
    "I have a sore throat and a runny nose",
]


@pytest.mark.parametrize("text", ADULT_TEXTS)
def test_adults_never_route_to_childrens_hospital(text: str) -> None:
    result = run(text, age_months=35 * 12)
    ids = dept_ids(result)
    assert 1 <= len(ids) <= 3
    assert not any(d.startswith("ped_") or d in {"neonatology", "child_health"} for d in ids)


@pytest.mark.parametrize("text", ADULT_TEXTS[:4] + ["孩子咳嗽流鼻涕", "宝宝拉肚子两天了"])
def test_children_route_to_childrens_hospital(text: str) -> None:
    result = run(text, age_months=6 * 12)
    ids = dept_ids(result)
    assert 1 <= len(ids) <= 3
    assert all(d.startswith("ped_") or d in {"neonatology", "child_health"} for d in ids), ids


def test_newborn_general_care_goes_to_neonatology() -> None:
    result = run("刚出生十天的宝宝发烧")
    assert "neonatology" in dept_ids(result)
    assert result.level == L.emergency


SEXED_TEXTS = ["小便的时候疼，尿频", "下身出血好几天", "不孕不育想检查", "阳痿早泄", "肚子疼", "怀孕了想建档"]


@pytest.mark.parametrize("text", SEXED_TEXTS)
def test_men_never_get_gynaecology_or_obstetrics(text: str) -> None:
    result = run(text, sex="male", age_months=30 * 12)
    assert not set(dept_ids(result)) & FEMALE_ONLY
    assert dept_ids(result)


@pytest.mark.parametrize("text", SEXED_TEXTS)
def test_women_never_get_andrology(text: str) -> None:
    result = run(text, sex="female", age_months=30 * 12)
    assert not set(dept_ids(result)) & MALE_ONLY
    assert dept_ids(result)


def test_male_sexual_complaint_goes_to_andrology_for_men() -> None:
    assert dept_ids(run("阳痿早泄", sex="male", age_months=40 * 12))[0] == "andrology"


@pytest.mark.parametrize(
    "text", ["最近胳膊上长了一片湿疹，很痒", "脸上长了好多痘痘", "I have itchy eczema on my arms"]
)
def test_skin_complaint_goes_to_dermatology_first(text: str) -> None:
    result = run(text)
    assert dept_ids(result)[0] == "dermatology"
    assert result.care_setting in {CareSetting.community, CareSetting.hospital_clinic}
    assert result.level == L.routine


@pytest.mark.parametrize(
    "text",
    [
        "高血压好几年了，来复查开药",
        "糖尿病多年，想配点药复查一下",
        "I need a repeat prescription for my blood pressure pills",
    ],
)
def test_routine_chronic_follow_up_goes_to_the_community(text: str) -> None:
    result = run(text)
    assert result.level == L.routine
    assert result.care_setting == CareSetting.community
    assert "general_practice" in dept_ids(result)


def test_primary_care_complaint_in_a_young_baby_is_not_sent_to_the_community() -> None:
    result = run("宝宝咳嗽", age_months=2)
    assert result.care_setting != CareSetting.community


@pytest.mark.parametrize("text", ["有点咳嗽，流鼻涕", "a bit of a runny nose and sneezing"])
def test_self_care_stays_home(text: str) -> None:
    result = run(text)
    assert result.level == L.self_care
    assert result.care_setting == CareSetting.home


@pytest.mark.parametrize(
    ("text", "level", "setting"),
    [
        ("吐血了", L.emergency, CareSetting.emergency_department),
        ("I have been vomiting blood", L.emergency, CareSetting.emergency_department),
        ("叫他半天叫不醒", L.emergency_ambulance, CareSetting.ambulance_ed),
    ],
)
def test_emergency_levels_map_to_emergency_settings_and_departments(
    text: str, level: Level, setting: CareSetting
) -> None:
    result = run(text)
    assert result.level == level
    assert result.care_setting == setting
    assert dept_ids(result)[0] == "emergency"


def test_department_names_follow_the_output_language() -> None:
    zh, en = run("皮肤起湿疹"), run("eczema on my hands")
    assert zh.departments[0].name == "皮肤科"
    assert en.departments[0].name == "Dermatology"
    assert zh.departments[0].reason and en.departments[0].reason


def test_at_most_three_departments_even_for_many_complaints() -> None:
    result = run("咳嗽，发烧，喉咙痛，流鼻涕，肚子疼，拉肚子，头疼，腰疼，皮肤痒，牙疼")
    assert 1 <= len(result.departments) <= 3
    assert len(set(dept_ids(result))) == len(dept_ids(result))


# --------------------------------------------------------------------------------------------
# Missing questions
# --------------------------------------------------------------------------------------------


def test_fever_without_temperature_asks_for_it() -> None:
    result = run("发烧", age_months=25 * 12)
    assert "temperature" in missing_ids(result)
    question = next(m for m in result.missing if m.id == "temperature")
    assert question.kind == "number" and question.fact == "vitals.temperature_c"


def test_fever_with_temperature_does_not_ask_for_it() -> None:
    assert "temperature" not in missing_ids(run("发烧38.6度", age_months=25 * 12))


def test_known_age_is_never_asked() -> None:
    for text in ["孩子发烧", "宝宝咳嗽", "发烧"]:
        assert "age" not in missing_ids(run(text, age_months=30))
    assert "age" not in missing_ids(run("孩子3岁，发烧"))


def test_questions_are_capped_and_ordered_by_priority() -> None:
    priorities = {qid: q.priority for qid, q in load_rulebook().questions.items()}
    for text, facts in [
        ("咳嗽三天，发烧，喉咙痛，流鼻涕，肚子疼，拉肚子", {"age_months": 300, "sex": "female"}),
        ("孩子拉肚子，发烧，呕吐，咳嗽，头疼，肚子疼", {}),
        ("头晕，心慌", {}),
    ]:
        result = run(text, **facts)
        assert 1 <= len(result.missing) <= 4
        order = [priorities[q] for q in missing_ids(result)]
        assert order == sorted(order), (text, missing_ids(result))


def test_questions_speak_the_output_language_and_yes_no_carry_answer_texts() -> None:
    en = run("fever and cough")
    assert all(not re.search(r"[\u4e00-\u9fff]", m.question) for m in en.missing)
    for m in en.missing:
        if m.kind == "yes_no":
            assert m.yes_text and m.no_text


def test_male_is_not_asked_about_pregnancy() -> None:
    female = run("肚子疼", sex="female", age_months=25 * 12)
    male = run("肚子疼", sex="male", age_months=25 * 12)
    assert "pregnancy" in missing_ids(female)
    assert "pregnancy" not in missing_ids(male)


def test_answered_concept_is_not_asked_again() -> None:
    result = run("发烧，没有呼吸困难，精神挺好", age_months=25 * 12)
    assert "breathing" not in missing_ids(result)
    assert "alertness" not in missing_ids(result)


# --------------------------------------------------------------------------------------------
# Audit trail and citations
# --------------------------------------------------------------------------------------------


AUDIT_TEXTS = [
    "我爸心口疼，一直冒冷汗",
    "宝宝两个月大，烧到39度多",
    "有点咳嗽，流鼻涕",
    "血氧88%",
    "hmm",
    "怀孕25周，头疼得厉害",
    "高血压好几年了，来复查开药",
]


@pytest.mark.parametrize("text", AUDIT_TEXTS)
def test_result_carries_versions_and_a_trace_of_every_red_flag(text: str) -> None:
    result = run(text)
    assert isinstance(result.engine_version, str) and result.engine_version.strip()
    assert isinstance(result.knowledge_version, str) and result.knowledge_version.strip()
    assert result.knowledge_version != "unknown"
    assert result.rule_trace
    assert set(flag_ids(result)) <= set(trace_ids(result))
    assert all(f.effect.startswith("level>=") for f in result.rule_trace)
    # the level is the most urgent level any rule asked for
    top = max(Level(f.effect.removeprefix("level>=")).rank for f in result.rule_trace)
    assert result.level.rank == top
    assert result.citations
    assert result.disclaimer


def _section_ids(doc_id: str) -> set[str] | None:
    path = CORPUS_DIR / f"{doc_id}.zh.md"
    if not path.is_file():
        return None
    return set(re.findall(r"\{#([^}\s]+)\}", path.read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    "text", AUDIT_TEXTS + ["有点咳嗽，流鼻涕", "a bit of a sore throat", "崴脚了，有点肿"]
)
def test_citations_point_at_existing_corpus_sections(text: str) -> None:
    result = run(text)
    for citation in result.citations:
        sections = _section_ids(citation.doc_id)
        assert sections is not None, f"corpus doc missing: {citation.doc_id}.zh.md"
        assert citation.section in sections, f"{citation.doc_id}#{citation.section} not in corpus"


def test_citations_include_the_level_text_and_the_fired_red_flag_source() -> None:
    result = run("我爸心口疼，一直冒冷汗")
    cited = {(c.doc_id, c.section) for c in result.citations}
    assert ("redflags-adult", "chest-pain") in cited
    assert ("urgency-levels", "emergency-ambulance") in cited
    assert len(cited) == len(result.citations)  # no duplicates


# --------------------------------------------------------------------------------------------
# Uncertainty and determinism
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["我不太舒服", "hmm", "wtf", "12345"])
def test_unrecognised_text_falls_back_to_routine_and_says_so(text: str) -> None:
    result = run(text)
    assert result.level == L.routine
    assert result.uncertain and result.uncertainty_reasons
    assert result.departments
    assert "FALLBACK-UNRECOGNISED" in trace_ids(result)
    assert "120" in result.advice


@pytest.mark.parametrize("text", ["宝宝发烧了", "my baby has a fever"])
def test_baby_with_fever_and_unknown_age_is_uncertain_and_asks_age_first(text: str) -> None:
    result = run(text)
    assert result.uncertain
    assert missing_ids(result)[0] == "age"
    assert at_least(result, L.urgent)
    assert "UNCERTAIN-INFANT-AGE" in trace_ids(result)


def test_known_age_removes_the_infant_age_uncertainty() -> None:
    result = run("宝宝发烧了", age_months=30)
    assert "UNCERTAIN-INFANT-AGE" not in trace_ids(result)
    assert not result.uncertain


@pytest.mark.parametrize(
    ("text", "facts"),
    [
        ("我爸心口疼，一直冒冷汗", {}),
        ("孩子2岁，发烧38.5度一天了，精神挺好还能玩", {}),
        ("体温45℃", {}),
        ("孩子5个月大，发烧38度", {"age_months": 1}),
    ],
)
def test_same_input_gives_identical_json(text: str, facts: dict) -> None:
    first = run(text, **facts).model_dump_json()
    second = run(text, **facts).model_dump_json()
    assert first == second


def test_same_input_gives_identical_json_across_processes_and_hash_seeds() -> None:
    # set/dict ordering must not leak into the result: run in a fresh interpreter with another seed
    texts = [
        "我爸心口疼，一直冒冷汗",
        "孩子拉肚子，发烧，呕吐，咳嗽，头疼，肚子疼",
        "he is unconcious, 血氧88%",
    ]
    script = (
        "import json, sys\n"
        "from tools.triage import assess\n"
        "from tools.triage_models import TriageInput\n"
        "texts = json.loads(sys.stdin.read())\n"
        "print(json.dumps([assess(TriageInput(text=t)).model_dump_json() for t in texts]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        check=True,
        timeout=60,
    )
    assert json.loads(out.stdout) == [run(t).model_dump_json() for t in texts]


# --------------------------------------------------------------------------------------------
# Engine gaps found by these tests and since fixed (regression tests)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["I do not have chest pain", "I don't have chest pain"])
def test_gap_english_do_not_have_negates(text: str) -> None:
    result = run(text)
    assert "RF-CARD-02" not in trace_ids(result)


def test_gap_english_doesnt_have_fever_negates() -> None:
    assert "CP-fever" not in trace_ids(run("he doesn't have a fever"))


def test_gap_no_fever_just_a_cough_keeps_the_cough() -> None:
    assert "CP-cough" in trace_ids(run("no fever, just a cough"))


@pytest.mark.parametrize(
    ("text", "question", "rule_if_present"),
    [
        ("头晕，不知道有没有胸痛", "chest_pain", "RF-CARD-02"),
        ("头晕，胸口痛不痛说不清", "chest_pain", "RF-CARD-02"),
        ("咳嗽，不知道有没有发烧", "fever", "CP-fever"),
    ],
)
def test_gap_unsure_yes_no_question_is_not_a_denial(text: str, question: str, rule_if_present: str) -> None:
    result = run(text)
    # either the symptom counts as present, or it is still unknown and asked about — never "denied"
    assert question in missing_ids(result) or rule_if_present in trace_ids(result)


@pytest.mark.parametrize(
    "text",
    [
        "我爸心脏病发作了",
        "I think my dad is having a heart attack",
        "怀疑心梗",
        "好像中风了",
        "I think she's having a stroke",
    ],
)
def test_gap_lay_name_of_heart_attack_or_stroke_is_an_emergency(text: str) -> None:
    assert at_least(run(text), L.emergency)


def test_gap_child_fever_with_chou_jin_is_a_seizure() -> None:
    result = run("孩子发烧抽筋了")
    assert at_least(result, L.emergency)


def test_gap_newborn_feels_hot_matches_chinese_parity() -> None:
    zh, en = run("宝宝刚满月，摸着身上很烫"), run("my one month old baby feels very hot to me")
    assert en.level == zh.level


def test_gap_face_droop_is_not_a_fracture() -> None:
    result = run("妈妈说话不清楚，嘴巴歪了")
    assert "RF-TRAUMA-04" not in trace_ids(result)
    assert "orthopedics" not in dept_ids(result)


def test_gap_limp_and_floppy_child_is_not_an_orthopaedic_problem() -> None:
    result = run("My 3 year old has a high fever and is limp and floppy")
    assert "RF-CHILD-05" not in trace_ids(result)
    assert "ped_orthopedics" not in dept_ids(result)


def test_gap_burning_up_is_not_heartburn() -> None:
    result = run("he's burning up, 39.5")
    assert "CP-heartburn" not in trace_ids(result)
    assert "gastroenterology" not in dept_ids(result)


def test_gap_infertility_is_not_a_child_patient() -> None:
    result = run("结婚三年一直怀不上孩子")
    assert not any(d.startswith("ped_") for d in dept_ids(result))
