"""Behaviour of the child-fever traffic light (tools/fever.py), its rule data and `daozhen fever`."""

from __future__ import annotations

import argparse
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from assistant.fever_cli import add_fever_parser, cmd_fever
from evals.fever_eval import run as run_fever_eval
from tools.fever import FeverGrade, FeverInput, FeverInputError, grade_fever, load_fever_rules

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CORPUS_DIR = Path(__file__).resolve().parent.parent / "knowledge" / "corpus"


def grade(age_months: float = 24, temp: float | None = 38.6, site: str | None = "axillary", text: str = "",
          **extra: Any) -> FeverGrade:  # fmt: skip
    readings = extra.pop("readings", [])
    if temp is not None:
        readings = [*readings, {"value": temp, "site": site}]
    return grade_fever(FeverInput(age_months=age_months, readings=readings, text=text, now=NOW, **extra))


def rule_ids(result: FeverGrade) -> set[str]:
    return {f.rule_id for f in result.features}


def at(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).isoformat()


# ------------------------------------------------------------------------------ rule data


def test_rule_data_loads_and_every_rule_cites_an_existing_corpus_section() -> None:
    rules = load_fever_rules()
    for source in rules.sources():
        doc_id, _, section = source.partition("#")
        path = CORPUS_DIR / f"{doc_id}.zh.md"
        assert path.is_file(), source
        assert f"{{#{section}}}" in path.read_text(encoding="utf-8"), source
    for rule in rules.rules:
        assert rule.guidelines, f"{rule.id} names no guideline section"


def test_each_colour_has_parent_texts_in_both_languages() -> None:
    for key, text in load_fever_rules().colours.items():
        assert text.label.zh and text.label.en and text.meaning.zh and text.meaning.en, key
        assert text.do_now, key


# ------------------------------------------------------------------------------ colours


def test_the_39_5_child_who_plays_is_green_and_told_the_number_is_not_the_danger() -> None:
    result = grade(18, 39.5, "axillary", "playing normally, drinking well")
    assert result.colour == "green" and not result.call_120
    assert result.features == []
    assert result.number_statement and "not the danger" in result.number_statement
    assert "playing normally" in result.reassuring[0]


def test_same_temperature_with_a_drowsy_child_is_red_by_behaviour_not_number() -> None:
    result = grade(18, 39.5, "axillary", "very drowsy and won't stay awake")
    assert result.colour == "red" and not result.call_120
    assert "FV-RED-DROWSY" in rule_ids(result)
    assert result.number_statement and "not from the number" in result.number_statement


@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        ("宝宝呼吸好像停了几秒", "FV-120-BREATHING"),
        ("he is struggling to breathe and gasping", "FV-120-BREATHING"),
        ("精神差，叫不醒", "FV-120-UNRESPONSIVE"),
        ("抽了快十分钟还没停", "FV-120-SEIZURE"),
        ("his lips are turning blue", "FV-120-BLUE"),
        ("全身软绵绵的", "FV-120-FLOPPY"),
        ("身上出了紫色的点点，压了不褪色，精神很差", "FV-120-RASH-ILL"),
    ],
)
def test_life_threatening_features_mean_call_120(text: str, rule_id: str) -> None:
    result = grade(24, 38.8, "axillary", text)
    assert result.colour == "red" and result.call_120
    assert rule_id in rule_ids(result)
    assert "120" in result.label and "120" in result.do_now[0]
    assert result.checks == []  # no checklist while calling for help


@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        ("手脚冰凉，皮肤发花", "FV-RED-COLOUR"),
        ("谁都不理，两眼发直", "FV-RED-NO-SOCIAL"),
        ("一直在睡，叫醒了又马上睡着", "FV-RED-DROWSY"),
        ("high-pitched cry and he won't stop crying", "FV-RED-CRY"),
        ("喘气的时候有哼哼声", "FV-RED-GRUNTING"),
        ("chest indrawing, the skin sucks in under the ribs", "FV-RED-GRUNTING"),
        ("捏起肚子上的皮肤回去很慢", "FV-RED-TURGOR"),
        ("一整天没有尿", "FV-RED-NO-URINE"),
        ("身上有出血点，压了不褪色，精神还可以", "FV-RED-RASH"),
        ("the soft spot is bulging", "FV-RED-FONTANELLE"),
        ("脖子硬，低不下头", "FV-RED-NECK"),
        ("刚才左边手脚抽了两分钟，现在停了", "FV-RED-FOCAL"),
        ("第一次抽搐，1分钟就停了，现在醒了", "FV-RED-SEIZURE"),
    ],
)
def test_red_features_mean_hospital_now_without_120(text: str, rule_id: str) -> None:
    result = grade(12, 38.8, "axillary", text)
    assert result.colour == "red" and not result.call_120, result.rule_trace
    assert rule_id in rule_ids(result)
    assert result.remeasure.in_hours == 1


@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        ("脸色苍白", "FV-ORANGE-PALLOR"),
        ("精神差，不爱玩", "FV-ORANGE-ACTIVITY"),
        ("鼻翼扇动", "FV-ORANGE-BREATHING"),
        ("嘴唇很干", "FV-ORANGE-DRY"),
        ("不肯吃奶", "FV-ORANGE-FEEDING"),
        ("fewer wet nappies than usual", "FV-ORANGE-URINE"),
        ("打寒战，冷得发抖", "FV-ORANGE-RIGORS"),
        ("右边膝盖肿了", "FV-ORANGE-LIMB-SWELLING"),
        ("not using his left arm", "FV-ORANGE-LIMB-USE"),
        ("capillary refill is slow", "FV-ORANGE-CRT"),
    ],
)
def test_orange_features(text: str, rule_id: str) -> None:
    result = grade(20, 38.8, "axillary", text)
    assert result.colour == "orange" and not result.call_120
    assert rule_id in rule_ids(result)
    assert result.remeasure.in_hours == 2
    assert result.escalation_triggers  # what would make it red


@pytest.mark.parametrize(
    ("age", "signs", "colour", "rule_id"),
    [
        (8, {"respiratory_rate": 65}, "red", "FV-RED-RR"),
        (8, {"respiratory_rate": 55}, "orange", "FV-ORANGE-RR-INFANT"),
        (36, {"respiratory_rate": 45}, "orange", "FV-ORANGE-RR-CHILD"),
        (36, {"respiratory_rate": 30}, "green", None),
        (20, {"spo2": 95}, "orange", "FV-ORANGE-SPO2"),
        (20, {"spo2": 91}, "red", "FV-RED-SPO2"),
        (20, {"spo2": 88}, "red", "FV-120-SPO2"),
        (7, {"heart_rate": 170}, "orange", "FV-ORANGE-HR-INFANT"),
        (18, {"heart_rate": 155}, "orange", "FV-ORANGE-HR-TODDLER"),
        (48, {"heart_rate": 150}, "orange", "FV-ORANGE-HR-CHILD"),
        (48, {"heart_rate": 130}, "green", None),
        (30, {"crt_seconds": 3}, "orange", "FV-ORANGE-CRT-NUM"),
    ],
)
def test_numeric_signs_by_age(age: float, signs: dict[str, float], colour: str, rule_id: str | None) -> None:
    result = grade(age, 38.7, "ear", "playing", signs=signs)
    assert result.colour == colour
    if rule_id:
        assert rule_id in rule_ids(result)


def test_numbers_in_the_text_count_like_structured_signs() -> None:
    assert "FV-RED-RR" in rule_ids(grade(8, 38.5, "ear", "呼吸65次每分钟"))
    assert "FV-ORANGE-CRT-NUM" in rule_ids(grade(24, 39.0, "axillary", "毛细血管充盈时间4秒"))


def test_structured_signs_and_conditions() -> None:
    assert grade(20, 38.9, signs={"present": ["non_blanching_rash"]}).colour == "red"
    assert grade(50, 38.6, "ear", "playing", conditions=["immunocompromised"]).colour == "red"
    assert grade(40, 38.4, "ear", "playing", conditions=["kidney_disease"]).colour == "orange"
    assert grade(7, 38.4, text="吃奶正常", conditions=["premature"]).colour == "orange"
    assert grade(36, 38.6, text="早产儿，现在精神好", conditions=[]).colour == "green"  # past infancy
    with pytest.raises(FeverInputError) as err:
        grade(20, 38.9, signs={"present": ["not_a_sign"]})
    assert err.value.code == "unknown_sign"


def test_negated_signs_do_not_count_and_are_listed_as_reassuring() -> None:
    result = grade(24, 38.6, "axillary", "没有皮疹，不抽搐，脖子不硬，精神好")
    assert result.colour == "green"
    assert any("皮疹" in r and "抽搐" in r for r in result.reassuring)


def test_a_past_febrile_seizure_is_history_not_a_seizure_now() -> None:
    assert grade(30, 39.0, "axillary", "以前有过热性惊厥，这次没有抽，精神好").colour == "green"
    assert grade(30, 39.0, "axillary", "以前有过热性惊厥，今天又抽了一次").colour == "red"


def test_medicine_that_did_not_work_is_not_unresponsiveness() -> None:
    result = grade(30, 38.9, "axillary", "吃了退烧药两小时还没反应，精神还行")
    assert result.colour == "green" and not result.call_120


def test_unexplained_fever_two_days_under_three_years_needs_a_doctor() -> None:
    assert "FV-ORANGE-UNEXPLAINED-2D" in rule_ids(grade(18, 38.9, text="精神好，吃喝正常", fever_days=2))
    assert grade(18, 38.9, text="咳嗽流鼻涕，精神好", fever_days=2).colour == "green"
    assert grade(48, 38.9, "ear", "playing normally", fever_days=2).colour == "green"


def test_fever_for_five_days_is_orange_at_any_age() -> None:
    assert "FV-TREND-5-DAYS" in rule_ids(grade(24, 38.7, "ear", "still playing", fever_days=5))
    assert grade(96, 38.5, "oral", "精神还可以", fever_days=5).colour == "orange"
    assert grade(48, 38.7, "ear", "playing", fever_days=4).colour == "green"


# ------------------------------------------------------------------------------ infants and sites


def test_baby_under_three_months_with_fever_is_red_however_well() -> None:
    result = grade(1.5, 38.2, "axillary", "吃奶还行，精神还可以")
    assert result.colour == "red" and "FV-RED-AGE-U3M" in rule_ids(result)
    assert result.number_statement and "3个月以下" in result.number_statement
    assert any("退烧药" in item for item in result.do_now)  # no antipyretic before a doctor sees the baby
    citation = result.features[0].citations[0]
    assert citation.doc_id == "redflags-infant" and citation.guideline and citation.year == 2019


def test_age_in_days_and_cold_babies() -> None:
    assert (
        grade_fever(FeverInput(age_days=15, readings=[{"value": 38.1, "site": "axillary"}], now=NOW)).colour
        == "red"
    )
    result = grade(1, 35.6, "axillary", "手脚凉")
    assert "FV-RED-AGE-U3M-COLD" in rule_ids(result)


def test_three_to_six_months_at_39_is_orange_and_six_to_twelve_is_not() -> None:
    assert "FV-ORANGE-AGE-3-6M" in rule_ids(grade(4, 39.1, "rectal", "吃奶正常，会笑"))
    assert grade(8, 39.3, "axillary", "吃奶正常，会笑会玩").colour == "green"


@pytest.mark.parametrize(
    ("age", "temp", "site", "colour"),
    [
        (2, 37.6, "axillary", "red"),  # armpit 37.5 = fever (Chinese 2016 definition)
        (2, 37.6, "rectal", "green"),
        (2, 37.8, "rectal", "green"),
        (2, 38.0, "ear", "red"),  # ear ≈ core
        (2, 38.1, "forehead", "red"),  # forehead taken as read (and flagged)
        (5, 38.6, "axillary", "orange"),  # ≈ 39.1 core
        (5, 38.6, "rectal", "green"),
        (4, 38.5, "oral", "orange"),  # oral + 0.5
    ],
)
def test_measurement_site_bias(age: float, temp: float, site: str, colour: str) -> None:
    assert grade(age, temp, site, "feeding well").colour == colour


def test_forehead_and_unknown_sites_are_flagged_as_uncertain() -> None:
    forehead = grade(4, 38.8, "forehead", "吃奶正常")
    assert forehead.uncertain and any("额温" in r for r in forehead.uncertainty_reasons)
    unknown = grade(24, 38.5, None, "精神好")
    assert unknown.temperature.latest_site == "unknown" and unknown.temperature.latest_core_c == 39.0


def test_a_reading_near_a_line_asks_for_a_recheck() -> None:
    result = grade(2, 37.3, "axillary", "吃奶正常")  # core 37.8, could be 38.3
    assert result.colour == "green" and result.uncertain
    assert any("30" in item for item in result.do_now)


# ------------------------------------------------------------------------------ over five


def test_over_five_uses_the_general_triage_engine() -> None:
    playing = grade_fever(
        FeverInput(
            age_years=6, readings=[{"value": 39.0, "site": "oral"}], text="有点咳嗽，精神还可以", now=NOW
        )
    )
    assert playing.table == "general_triage" and playing.colour == "green"
    stiff = grade_fever(
        FeverInput(
            age_years=7, readings=[{"value": 39.2, "site": "oral"}], text="脖子硬，头痛，呕吐", now=NOW
        )
    )
    assert stiff.colour == "red" and any(f.rule_id.startswith("RF-") for f in stiff.features)
    # the under-5 table does not apply: poor feeding alone is not orange at 10 years
    assert "FV-ORANGE-FEEDING" not in rule_ids(grade(120, 38.5, "oral", "不肯吃东西"))


# ------------------------------------------------------------------------------ trends


def test_rising_despite_antipyretic_is_orange() -> None:
    readings = [
        {"value": 38.6, "site": "axillary", "time": at(3), "antipyretic": True},
        {"value": 39.3, "site": "axillary", "time": at(1)},
    ]
    result = grade(24, None, text="精神还行", readings=readings)
    assert result.colour == "orange" and "FV-TREND-RISING" in rule_ids(result)
    assert result.trends[0].code == "rising_despite_antipyretic"


def test_falling_after_antipyretic_is_not_a_trend() -> None:
    readings = [
        {"value": 39.0, "site": "axillary", "time": at(3), "antipyretic_given": True},
        {"value": 37.8, "site": "axillary", "time": at(1)},
    ]
    result = grade(24, None, text="playing normally", readings=readings)
    assert result.colour == "green" and result.trends == []


def test_new_fever_after_fever_free_days_is_orange() -> None:
    readings = [
        {"value": v, "site": "ear", "time": at(h)}
        for v, h in ((38.8, 100), (37.0, 70), (36.9, 40), (38.5, 1))
    ]
    result = grade(30, None, text="playing normally", readings=readings)
    assert "FV-TREND-RETURN" in rule_ids(result)


def test_fever_duration_comes_from_the_diary_too() -> None:
    readings = [{"value": v, "site": "ear", "time": at(h)} for v, h in ((38.8, 121), (38.6, 70), (38.9, 1))]
    result = grade(48, None, text="playing normally", readings=readings)
    assert result.fever_days == 5.0 and "FV-TREND-5-DAYS" in rule_ids(result)


def test_missing_readings_at_orange_ask_for_a_new_measurement() -> None:
    result = grade(30, None, text="精神差，不爱玩", readings=[{"value": 38.8, "site": "ear", "time": at(7)}])
    assert result.colour == "orange"
    assert any(t.code == "readings_missing" for t in result.trends)
    assert "量一次体温" in result.do_now[0]


def test_yesterdays_peak_does_not_count_today_except_for_young_babies() -> None:
    old = [{"value": 39.5, "site": "ear", "time": at(30)}, {"value": 37.4, "site": "ear", "time": at(2)}]
    assert grade(24, None, text="playing normally", readings=old).colour == "green"
    assert grade(2, None, text="吃奶正常", readings=old).colour == "red"


# ------------------------------------------------------------------------------ bad input


def test_385_is_read_as_38_5_with_a_warning() -> None:
    result = grade(30, 385, "rectal", "playing")
    assert result.temperature.latest_c == 38.5
    assert [w.code for w in result.warnings] == ["assumed_decimal_point"]


def test_102_without_unit_is_read_as_fahrenheit() -> None:
    result = grade(30, 102, None, "playing")
    assert result.temperature.latest_c == pytest.approx(38.9)
    assert "assumed_fahrenheit" in {w.code for w in result.warnings}
    explicit = grade_fever(FeverInput(age_months=30, readings=[{"value": 102, "unit": "F"}], now=NOW))
    assert explicit.warnings == [] and explicit.temperature.latest_c == pytest.approx(38.9)


@pytest.mark.parametrize("value", [45, 30])
def test_impossible_temperatures_are_not_used_and_ask_for_a_remeasure(value: float) -> None:
    result = grade(2, value, "axillary", "吃奶正常")
    assert result.temperature.readings_used == 0 and result.temperature.readings_rejected == 1
    assert "implausible_temperature" in {w.code for w in result.warnings}
    assert result.uncertain and "重新测量" in result.do_now[0]


def test_future_timestamps_are_rejected_in_both_languages() -> None:
    with pytest.raises(FeverInputError) as err:
        grade(24, None, readings=[{"value": 38.5, "time": (NOW + timedelta(hours=2)).isoformat()}])
    assert err.value.code == "future_reading_time"
    assert "未来" in err.value.zh and "future" in err.value.en


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"age_months": -3}, "implausible_age"),
        ({"age_years": 200}, "implausible_age"),
        ({"age_months": 30, "age_years": 8}, "conflicting_age"),
        ({}, "missing_age"),
        ({"age_months": 30, "fever_days": 90}, "implausible_days"),
    ],
)
def test_unusable_ages_and_durations_are_rejected(fields: dict[str, Any], code: str) -> None:
    with pytest.raises(FeverInputError) as err:
        grade_fever(FeverInput(readings=[{"value": 38.5}], now=NOW, **fields))
    assert err.value.code == code and err.value.zh and err.value.en


def test_implausible_weight_for_age_is_a_warning_not_a_crash() -> None:
    result = grade(12, 38.5, weight_kg=45)
    assert "implausible_weight" in {w.code for w in result.warnings}
    assert grade(12, 38.5, weight_kg=9.5).warnings == []


def test_unknown_site_and_non_numbers_are_rejected() -> None:
    with pytest.raises(ValidationError):
        FeverInput(age_months=12, readings=[{"value": 38.5, "site": "nose"}])
    with pytest.raises(ValidationError):
        FeverInput(age_months=12, readings=[{"value": float("nan")}])


def test_output_carries_version_trace_and_disclaimer() -> None:
    result = grade(18, 39.5, "axillary", "playing normally")
    assert result.engine_version.startswith("fever-") and "+rules." in result.engine_version
    assert result.rule_trace and result.disclaimer
    assert result.lang == "en" and grade(18, 39.5, text="").lang == "zh"


# ------------------------------------------------------------------------------ eval set


def test_dev_set_has_full_colour_agreement(tmp_path: Path) -> None:
    report = run_fever_eval(report=tmp_path / "fever.json")
    assert report["n"] >= 90 and report["errors"] == []
    assert report["colour_agreement"] == 1.0 and report["call_120_agreement"] == 1.0
    covered = set(report["features_covered"])
    assert {r.id for r in load_fever_rules().rules} <= covered


# ------------------------------------------------------------------------------ CLI


def run_cli(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="daozhen")
    add_fever_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    code = cmd_fever(args, io.StringIO(stdin), out, err)
    return code, out.getvalue(), err.getvalue()


def test_cli_json_contract() -> None:
    code, out, err = run_cli(
        ["fever", "--json", "--age-months", "18", "--temp", "39.5", "--site", "axillary", "playing normally"]
    )
    assert code == 0 and err == ""
    data = json.loads(out)
    assert data["colour"] == "green" and data["call_120"] is False and data["age_months"] == 18


def test_cli_days_and_zh_text() -> None:
    code, out, _ = run_cli(
        ["fever", "--json", "--age-months", "24", "--temp", "38.5", "--days", "5", "精神还行"]
    )
    assert code == 0 and json.loads(out)["colour"] == "orange"
    code, out, _ = run_cli(["fever", "--json", "--age-months", "24", "--temp", "38.5", "精神差，叫不醒"])
    assert json.loads(out)["call_120"] is True


def test_cli_human_summary() -> None:
    code, out, _ = run_cli(["fever", "--age-months", "2", "--temp", "38.2", "--site", "腋下"])
    assert code == 0 and out.startswith("红色") and "FV-RED-AGE-U3M" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["fever", "--json", "--age-months", "24", "--temp", "abc"],
        ["fever", "--json", "--age-months", "24"],
        ["fever", "--json", "--temp", "38.5"],
        ["fever", "--json", "--age-months", "24", "--temp", "38.5", "--site", "nose"],
        ["fever", "--json", "--age-months", "-1", "--temp", "38.5"],
        ["fever", "--json", "--age-months", "24", "--temp", "38.5", "--days", "x"],
    ],
)
def test_cli_bad_input_exits_2_with_a_bilingual_message(argv: list[str]) -> None:
    code, out, err = run_cli(argv)
    assert code == 2 and out == ""
    assert re.search(r"[\u4e00-\u9fff]", err) and re.search(r"[A-Za-z]{4,}", err)


def test_cli_jsonl_batch_keeps_order_and_reports_errors_per_line() -> None:
    lines = [
        {"age_months": 2, "temp_c": 38.1, "site": "axillary", "days": 0, "text": "feeding well"},
        "not json",
        {"age_months": 30, "temp_c": 385, "site": "rectal", "text": "playing"},
        {"age_months": 30, "temp_c": 38, "colour": "red"},
        {"age_months": 30, "readings": [{"value": 38, "time": "2999-01-01T00:00:00+00:00"}]},
        {"temp_c": 38.5},
    ]
    stdin = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n\n"
    code, out, _ = run_cli(["fever", "--jsonl"], stdin)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 6
    assert rows[0]["colour"] == "red"
    assert rows[1]["error"]["code"] == "bad_json" and rows[1]["line"] == 2
    assert (
        rows[2]["temperature"]["latest_c"] == 38.5
        and rows[2]["warnings"][0]["code"] == "assumed_decimal_point"
    )
    assert rows[3]["error"]["code"] == "unknown_field"
    assert rows[4]["error"]["code"] == "future_reading_time"
    assert rows[5]["error"]["code"] == "missing_age"
