"""Bad, odd and hostile input to the triage engine: a clear error or a valid result, never a crash.

A "valid result" here means a TriageResult that passes its own schema, with a level, at least one
department and advice that names 120 — whatever the input looked like.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tools.triage import TriageInputError, assess
from tools.triage_models import Facts, Level, TriageInput, TriageResult, VitalSigns


def run(text: str, **facts: object) -> TriageResult:
    return assess(TriageInput(text=text, facts=Facts(**facts)))


def assert_valid(result: TriageResult) -> None:
    TriageResult.model_validate(result.model_dump())  # round-trips through the contract
    assert result.level in Level
    assert 1 <= len(result.departments) <= 3
    assert len(result.missing) <= 4
    assert "120" in result.advice
    assert result.engine_version and result.knowledge_version


# --------------------------------------------------------------------------------------------
# Empty and content-free text
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["", "   ", "\n\t  \n", "\u3000\u3000", "😷🤒😭", "🤕", "???!!!", "……。。", "\x00\x01"]
)
def test_content_free_text_is_a_clear_empty_input_error(text: str) -> None:
    with pytest.raises(TriageInputError) as excinfo:
        run(text)
    err = excinfo.value
    assert err.code == "empty_input"
    assert isinstance(err, ValueError)
    assert "症状" in err.message("zh") and err.message("zh") == err.zh
    assert "symptoms" in err.message("en") and err.message("en") == err.en
    assert str(err) == err.en


def test_emoji_with_structured_facts_is_assessed_not_rejected() -> None:
    # the form carries information even when the text does not
    result = run("😷🤒", age_months=24)
    assert_valid(result)
    assert result.level == Level.routine
    assert result.uncertain
    assert all(d.id.startswith("ped_") for d in result.departments)


def test_structured_vitals_with_empty_text_still_trigger_vital_rules() -> None:
    result = assess(TriageInput(text="", facts=Facts(vitals=VitalSigns(spo2=85))))
    assert_valid(result)
    assert result.level == Level.emergency_ambulance


# --------------------------------------------------------------------------------------------
# Too long / wrong shape: rejected by the contract before the engine
# --------------------------------------------------------------------------------------------


def test_ten_thousand_characters_are_rejected_by_the_contract() -> None:
    with pytest.raises(ValidationError) as excinfo:
        TriageInput(text="头疼" * 5000)
    assert excinfo.value.errors()[0]["type"] == "string_too_long"


def test_text_at_the_length_limit_is_assessed() -> None:
    result = run("头痛" * 2000)  # exactly 4000 characters
    assert_valid(result)
    assert result.level == Level.routine


@pytest.mark.parametrize(
    "kwargs",
    [
        {"text": "头疼", "lang": "fr"},
        {"text": "头疼", "unknown_field": 1},
        {"text": None},
        {"text": "头疼", "facts": {"age_months": -3}},
        {"text": "头疼", "facts": {"age_months": 2000}},
        {"text": "头疼", "facts": {"sex": "other"}},
        {"text": "头疼", "facts": {"pregnancy_weeks": 60}},
        {"text": "头疼", "facts": {"vitals": {"temperature": 39}}},
    ],
)
def test_malformed_structured_input_is_a_validation_error(kwargs: dict) -> None:
    with pytest.raises(ValidationError):
        TriageInput(**kwargs)


# --------------------------------------------------------------------------------------------
# Odd but meaningful text: a valid result
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("my baby 发烧 38.5 度 and 咳嗽", Level.urgent),  # mixed zh/en, baby of unknown age
        ("孩子發燒，體溫39度，一直咳嗽", Level.routine),  # traditional characters
        ("心口疼 and sweating a lot", Level.emergency_ambulance),
        ("CHEST PAIN AND COLD SWEAT", Level.emergency_ambulance),  # shouting
        ("胸口疼！！！出冷汗！！！", Level.emergency_ambulance),
    ],
)
def test_mixed_language_traditional_and_shouted_text_is_understood(text: str, level: Level) -> None:
    result = run(text)
    assert_valid(result)
    assert result.level == level


@pytest.mark.parametrize(
    "text", ["没有发烧，没有咳嗽，没有胸痛", "denies chest pain, fever or cough", "不头疼也不拉肚子"]
)
def test_only_negated_symptoms_give_the_safe_fallback(text: str) -> None:
    result = run(text)
    assert_valid(result)
    assert result.level == Level.routine
    assert result.uncertain
    assert not result.red_flags


@pytest.mark.parametrize("text", ["没发烧，体温39度", "no fever, temperature 39.4"])
def test_contradictory_fever_is_flagged_and_errs_to_fever(text: str) -> None:
    result = run(text)
    assert_valid(result)
    assert "contradiction_fever" in [w.code for w in result.warnings]
    assert result.uncertain
    assert any(f.rule_id == "CP-fever" for f in result.rule_trace)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("体温45℃", "implausible_temperature"),
        ("体温25度", "implausible_temperature"),
        ("體溫45度", "implausible_temperature"),
        ("体温39.5华氏度", "implausible_temperature"),  # 39.5 °F is not a living person
        ("血氧150%", "implausible_spo2"),
        ("心率500", "implausible_heart_rate"),
        ("血压80/120", "implausible_blood_pressure"),  # systolic below diastolic
        ("血糖3 mg", "implausible_glucose"),
    ],
)
def test_impossible_vital_signs_warn_and_do_not_crash(text: str, code: str) -> None:
    result = run(text)
    assert_valid(result)
    assert code in [w.code for w in result.warnings]
    assert result.facts.vitals == VitalSigns()
    assert result.uncertain
    assert all(w.message for w in result.warnings)


@pytest.mark.parametrize("text", ["孩子体温39斤", "temperature 39 kg", "血糖7公斤"])
def test_unknown_units_warn_and_do_not_crash(text: str) -> None:
    result = run(text)
    assert_valid(result)
    assert "unknown_unit" in [w.code for w in result.warnings]
    assert result.uncertain


@pytest.mark.parametrize(
    "text",
    [
        "12345",
        "wtf",
        "asdfghjkl",
        "<script>alert(1)</script>",
        "'; DROP TABLE patients; --",
        "{{7*7}} ${jndi:x}",
        "体温体温体温体温",
        "39 39 39 39 39",
        "血压/",
        "发烧" + "\u0301" * 50,
        "a" * 3999,
        "\ud7ff\ue000\uffff头疼",
        "头疼\r\n\r\n发烧\x0b\x0c",
        "أشعر بألم في الصدر",  # Arabic: not supported, must still not crash
    ],
)
def test_garbage_and_unsupported_text_never_crashes(text: str) -> None:
    result = run(text)
    assert_valid(result)


def test_lone_surrogates_are_rejected_by_the_contract() -> None:
    # broken UTF-16 (e.g. a cut emoji from a web form) is a clear validation error, not a crash
    with pytest.raises(ValidationError) as excinfo:
        TriageInput(text="头疼\ud800")
    assert excinfo.value.errors()[0]["type"] == "string_unicode"
