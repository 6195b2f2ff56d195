"""Label-rule checks for paracetamol and ibuprofen (tools/antipyretics.py, tools/data/antipyretics.yaml)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tools.antipyretics import (
    DoseCheck,
    DrugId,
    GivenDose,
    check_dose,
    ingredients_in,
    load_antipyretic_rules,
    resolve_drug,
)

NOW = datetime(2026, 11, 23, 2, 0)
CORPUS = Path(__file__).resolve().parents[1] / "knowledge" / "corpus"


def ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


def dose(drug: str, hours_ago: float, mg: float | None = None) -> GivenDose:
    return GivenDose(drug=drug, given_at=ago(hours_ago), mg=mg)


def _cjk(text: str) -> bool:
    return bool(re.search(r"[\u4e00-\u9fff]", text))


def assert_refused(result: DoseCheck, code: str) -> None:
    assert not result.allowed, result.reason.en
    assert result.code == code
    # the English text may quote a Chinese product name, so check it reads as English
    assert _cjk(result.reason.zh) and re.search(r"[A-Za-z]{4,}", result.reason.en)
    assert result.instead is not None and result.instead.zh and result.instead.en
    assert "说明书" in result.note.zh or "遵医嘱" in result.note.zh


# ------------------------------------------------------------------------------ rule data


def test_rule_data_matches_label_rules_and_cites_existing_sources() -> None:
    rules = load_antipyretic_rules()
    para, ibu = rules.drug(DrugId.paracetamol).rules, rules.drug(DrugId.ibuprofen).rules
    assert (para.dose_mg_per_kg.min, para.dose_mg_per_kg.max) == (10, 15)
    assert (para.min_interval_hours.value, para.max_doses_24h.value, para.min_age_months.value) == (4, 4, 3)
    assert (ibu.dose_mg_per_kg.min, ibu.dose_mg_per_kg.max) == (5, 10)
    assert (ibu.min_interval_hours.value, ibu.max_doses_24h.value, ibu.min_age_months.value) == (6, 4, 6)
    assert {d.id for d in rules.drugs} == {DrugId.paracetamol, DrugId.ibuprofen}
    for citation in rules.citations.values():
        assert citation.name and citation.section and 1990 <= citation.year <= 2030
    doc, section = rules.corpus.split("#")
    for lang in ("zh", "en"):
        assert f"{{#{section}}}" in (CORPUS / f"{doc}.{lang}.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("对乙酰氨基酚", DrugId.paracetamol),
        ("儿童对乙酰氨基酚口服混悬液", DrugId.paracetamol),
        ("对乙酰氨基酚混悬滴剂", DrugId.paracetamol),
        ("泰诺林", DrugId.paracetamol),
        ("Children's Tylenol", DrugId.paracetamol),
        ("acetaminophen", DrugId.paracetamol),
        ("布洛芬", DrugId.ibuprofen),
        ("布洛芬混悬液", DrugId.ibuprofen),
        ("美林", DrugId.ibuprofen),
        ("Ibuprofen oral suspension", DrugId.ibuprofen),
        ("泰诺", None),  # a cold combination brand, not plain paracetamol
        ("小儿氨酚黄那敏颗粒", None),  # combination
        ("布洛芬缓释胶囊", None),  # sustained release: dosed differently
        ("布洛芬栓", None),  # rectal
        ("阿莫西林", None),
    ],
)
def test_resolve_drug(name: str, expected: DrugId | None) -> None:
    assert resolve_drug(name) == expected


def test_combination_products_reveal_their_ingredient() -> None:
    assert ingredients_in("小儿氨酚黄那敏颗粒") == [DrugId.paracetamol]
    assert ingredients_in("布洛芬缓释胶囊") == [DrugId.ibuprofen]
    assert ingredients_in("阿莫西林") == []


# ------------------------------------------------------------------------------ dose by weight


def test_paracetamol_dose_by_weight_with_ml() -> None:
    result = check_dose("对乙酰氨基酚", 10, 24, [], NOW, concentration_mg_per_ml=32)
    assert result.allowed and result.code == "ok"
    assert result.drug is DrugId.paracetamol
    assert (result.dose_mg_min, result.dose_mg_max) == (100, 150)  # 10-15 mg/kg
    # 100/32 = 3.125 → 3.2 (rounded up), 150/32 = 4.69 → 4.6 (rounded down, never above the limit)
    assert (result.dose_ml_min, result.dose_ml_max) == (3.2, 4.6)
    assert result.doses_last_24h == 0 and result.next_allowed_at is None
    assert result.max_doses_24h == 4
    assert "说明书" in result.reason.zh and "120" in result.reason.zh
    assert {c.id for c in result.citations} >= {"corpus", "who-mfc-2010"}


def test_ibuprofen_dose_by_weight_with_ml_and_hydration_caution() -> None:
    result = check_dose("布洛芬混悬液", 10, 24, [], NOW, concentration_mg_per_ml=20)
    assert result.allowed
    assert (result.dose_mg_min, result.dose_mg_max) == (50, 100)  # 5-10 mg/kg
    assert (result.dose_ml_min, result.dose_ml_max) == (2.5, 5.0)
    assert "hydration" in {w.code for w in result.warnings}


def test_dose_range_never_exceeds_limit_after_rounding() -> None:
    result = check_dose("paracetamol", 7.3, 10, [], NOW)
    assert (result.dose_mg_min, result.dose_mg_max) == (73, 109)  # 109.5 rounds down


def test_tablets_in_half_steps() -> None:
    result = check_dose("对乙酰氨基酚片", 20, 72, [], NOW, mg_per_tablet=100)
    assert (result.dose_mg_min, result.dose_mg_max) == (200, 300)
    assert (result.dose_tablets_min, result.dose_tablets_max) == (2.0, 3.0)


def test_no_tablet_step_fits_warns_to_use_liquid() -> None:
    result = check_dose("对乙酰氨基酚片", 12, 36, [], NOW, mg_per_tablet=500)  # 120-180 mg
    assert result.allowed
    assert result.dose_tablets_min is None
    assert "no_tablet_step_fits" in {w.code for w in result.warnings}


@pytest.mark.parametrize(("drug", "cap", "low"), [("对乙酰氨基酚", 500, 500), ("布洛芬", 400, 350)])
def test_adult_equivalent_single_dose_cap(drug: str, cap: float, low: float) -> None:
    result = check_dose(drug, 70, 30 * 12, [], NOW)
    assert result.allowed
    assert result.dose_mg_max == cap
    assert result.dose_mg_min == low
    assert "adult_cap" in {w.code for w in result.warnings}


# ------------------------------------------------------------------------------ age limits


def test_paracetamol_under_3_months_goes_to_a_doctor() -> None:
    result = check_dose("对乙酰氨基酚", 5, 2, [], NOW)
    assert_refused(result, "below_min_age")
    assert "就医" in result.instead.zh  # type: ignore[union-attr]
    assert result.dose_mg_min is None


def test_paracetamol_from_3_months_is_allowed() -> None:
    assert check_dose("对乙酰氨基酚", 6, 3, [], NOW).allowed


def test_ibuprofen_under_6_months_points_to_paracetamol_label() -> None:
    result = check_dose("布洛芬", 6.5, 4, [], NOW)
    assert_refused(result, "below_min_age")
    assert "对乙酰氨基酚" in result.instead.zh  # type: ignore[union-attr]
    assert "6" in result.reason.zh


def test_ibuprofen_under_3_months_goes_to_a_doctor() -> None:
    result = check_dose("布洛芬", 5, 2, [], NOW)
    assert_refused(result, "below_min_age")
    assert "就医" in result.instead.zh  # type: ignore[union-attr]


def test_ibuprofen_from_6_months_is_allowed() -> None:
    assert check_dose("布洛芬", 7.5, 6, [], NOW).allowed


# ------------------------------------------------------------------------------ interval


@pytest.mark.parametrize(
    ("drug", "hours_ago", "allowed"),
    [
        ("对乙酰氨基酚", 3.9, False),
        ("对乙酰氨基酚", 4.0, True),
        ("布洛芬", 5.5, False),
        ("布洛芬", 6.0, True),
    ],
)
def test_minimum_interval(drug: str, hours_ago: float, allowed: bool) -> None:
    result = check_dose(drug, 12, 30, [dose(drug, hours_ago)], NOW)
    assert result.allowed is allowed
    assert result.doses_last_24h == 1
    interval = 4 if drug == "对乙酰氨基酚" else 6
    assert result.next_allowed_at == ago(hours_ago) + timedelta(hours=interval)
    if not allowed:
        assert_refused(result, "too_soon")
        assert result.next_allowed_at.strftime("%H:%M") in result.instead.zh  # type: ignore[union-attr]
        assert result.dose_mg_min is not None  # what to give once allowed


def test_brand_and_form_names_in_history_count_for_the_interval() -> None:
    result = check_dose("布洛芬", 12, 30, [dose("美林", 2)], NOW)
    assert_refused(result, "too_soon")


def test_combination_product_in_history_counts_as_paracetamol() -> None:
    result = check_dose("对乙酰氨基酚", 12, 30, [dose("小儿氨酚黄那敏颗粒", 2)], NOW)
    assert_refused(result, "too_soon")
    assert "contains_ingredient" in {w.code for w in result.warnings}


# ------------------------------------------------------------------------------ 24-hour limits


def test_four_doses_in_24_hours_is_the_maximum() -> None:
    history = [dose("对乙酰氨基酚", h) for h in (22, 16, 10, 5)]
    result = check_dose("对乙酰氨基酚", 12, 30, history, NOW)
    assert_refused(result, "max_doses_reached")
    assert result.doses_last_24h == 4
    assert result.next_allowed_at == ago(22) + timedelta(hours=24)  # the oldest dose leaves the window
    assert "不要再给" in result.instead.zh  # type: ignore[union-attr]


def test_dose_exactly_24_hours_ago_leaves_the_window() -> None:
    history = [dose("对乙酰氨基酚", h) for h in (24, 18, 12, 6)]
    result = check_dose("对乙酰氨基酚", 12, 30, history, NOW)
    assert result.allowed
    assert result.doses_last_24h == 3


def test_stricter_label_with_three_doses() -> None:
    history = [dose("布洛芬", h) for h in (20, 13, 6.5)]
    assert check_dose("布洛芬", 12, 30, history, NOW).allowed
    result = check_dose("布洛芬", 12, 30, history, NOW, label_max_doses_24h=3)
    assert_refused(result, "max_doses_reached")
    assert result.max_doses_24h == 3


def test_daily_mg_limit_narrows_the_dose() -> None:
    # 10 kg paracetamol: 60 mg/kg/day = 600 mg; 480 mg given → at most 120 mg now
    history = [dose("对乙酰氨基酚", h, mg=160) for h in (20, 14, 8)]
    result = check_dose("对乙酰氨基酚", 10, 24, history, NOW)
    assert result.allowed
    assert (result.dose_mg_min, result.dose_mg_max) == (100, 120)
    assert result.mg_last_24h == 480


@pytest.mark.parametrize("mg_each", [170, 200])
def test_daily_mg_limit_refuses_when_no_full_dose_fits(mg_each: float) -> None:
    history = [dose("对乙酰氨基酚", h, mg=mg_each) for h in (20, 14, 8)]
    result = check_dose("对乙酰氨基酚", 10, 24, history, NOW)
    assert_refused(result, "daily_limit_reached")
    assert result.dose_mg_min is None and result.dose_mg_max is None


def test_mg_total_unknown_when_a_dose_was_logged_without_amount() -> None:
    result = check_dose("对乙酰氨基酚", 10, 24, [dose("对乙酰氨基酚", 8, mg=150), dose("泰诺林", 14)], NOW)
    assert result.allowed and result.doses_last_24h == 2
    assert result.mg_last_24h is None


# ------------------------------------------------------------------------------ alternating, dehydration


def test_alternating_both_drugs_warns_but_counts_separately() -> None:
    result = check_dose("对乙酰氨基酚", 12, 30, [dose("布洛芬", 2)], NOW)
    assert result.allowed
    assert result.doses_last_24h == 0
    alternating = [w for w in result.warnings if w.code == "alternating"]
    assert alternating and "交替" in alternating[0].message.zh and "2.0" in alternating[0].message.zh


def test_ibuprofen_refused_with_dehydration_signs() -> None:
    result = check_dose("布洛芬", 12, 30, [], NOW, dehydration_signs=True)
    assert_refused(result, "dehydration")
    assert "补液" in result.instead.zh  # type: ignore[union-attr]


def test_dehydration_does_not_block_paracetamol() -> None:
    assert check_dose("对乙酰氨基酚", 12, 30, [], NOW, dehydration_signs=True).allowed


def test_unknown_medicine_in_history_is_flagged() -> None:
    result = check_dose("布洛芬", 12, 30, [dose("某某感冒冲剂", 3)], NOW)
    assert result.allowed
    assert "other_medicine_in_history" in {w.code for w in result.warnings}


# ------------------------------------------------------------------------------ requested amounts


def test_requested_dose_above_limit_is_refused_with_the_right_amount() -> None:
    result = check_dose("布洛芬", 10, 24, [], NOW, concentration_mg_per_ml=20, requested_ml=6)  # 120 mg
    assert_refused(result, "dose_above_limit")
    assert "120" in result.reason.zh and "100" in result.reason.zh
    assert "2.5–5 ml" in result.instead.zh  # type: ignore[union-attr]


def test_requested_mg_within_range_is_allowed() -> None:
    result = check_dose("布洛芬", 10, 24, [], NOW, requested_mg=100)
    assert result.allowed and "below_usual_dose" not in {w.code for w in result.warnings}


def test_requested_mg_below_range_warns() -> None:
    result = check_dose("布洛芬", 10, 24, [], NOW, requested_mg=30)
    assert result.allowed
    assert "below_usual_dose" in {w.code for w in result.warnings}


def test_requested_ml_without_concentration_cannot_be_checked() -> None:
    assert_refused(check_dose("布洛芬", 10, 24, [], NOW, requested_ml=5), "concentration_missing")


@pytest.mark.parametrize("requested", [-5, 0, float("nan"), "lots"])
def test_nonsense_requested_amount(requested: object) -> None:
    assert_refused(check_dose("布洛芬", 10, 24, [], NOW, requested_mg=requested), "bad_request")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ other drugs


@pytest.mark.parametrize("name", ["阿莫西林", "头孢", "泰诺", "布洛芬缓释胶囊", "布洛芬栓", "amoxicillin"])
def test_other_drugs_are_refused_ask_a_doctor(name: str) -> None:
    result = check_dose(name, 12, 30, [], NOW)
    assert_refused(result, "other_drug")
    assert "医生" in result.instead.zh and "doctor" in result.instead.en  # type: ignore[union-attr]
    assert result.dose_mg_min is None and result.drug is None


@pytest.mark.parametrize("name", ["阿司匹林", "安乃近", "尼美舒利颗粒", "aspirin"])
def test_drugs_not_for_children_say_so(name: str) -> None:
    result = check_dose(name, 12, 30, [], NOW)
    assert_refused(result, "other_drug")
    assert "不适合儿童" in result.reason.zh


def test_combination_product_request_warns_about_same_ingredient() -> None:
    result = check_dose("小儿氨酚黄那敏颗粒", 12, 30, [], NOW)
    assert_refused(result, "other_drug")
    assert "contains_ingredient" in {w.code for w in result.warnings}
    assert "对乙酰氨基酚" in result.reason.zh


@pytest.mark.parametrize("name", ["", "   ", None])
def test_missing_drug_name(name: object) -> None:
    assert_refused(check_dose(name, 12, 30, [], NOW), "drug_missing")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("weight", "age_months", "code"),
    [
        (None, 24, "weight_missing"),
        (60, 6, "weight_implausible"),  # 60 kg at six months
        (0.5, 24, "weight_implausible"),  # 0.5 kg at two years
        (25, 1, "weight_implausible"),  # below min age too, but the weight is checked first
        (-3, 24, "weight_implausible"),
        (0, 24, "weight_implausible"),
        (float("nan"), 24, "weight_implausible"),
        ("12", 24, "weight_implausible"),
        (12, None, "age_missing"),
        (12, -1, "age_implausible"),
        (12, 200 * 12, "age_implausible"),
        (12, float("inf"), "age_implausible"),
    ],
)
def test_bad_weight_and_age(weight: object, age_months: object, code: str) -> None:
    result = check_dose("布洛芬", weight, age_months, [], NOW)  # type: ignore[arg-type]
    assert_refused(result, code)
    assert result.dose_mg_min is None


def test_implausible_weight_message_gives_the_range() -> None:
    result = check_dose("对乙酰氨基酚", 60, 6, [], NOW)
    assert "60" in result.reason.zh and "公斤" in result.instead.zh  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"concentration_mg_per_ml": 0}, "bad_concentration"),
        ({"concentration_mg_per_ml": 1000}, "bad_concentration"),
        ({"mg_per_tablet": 5000}, "bad_tablet_strength"),
        ({"label_max_doses_24h": 6}, "bad_label_limit"),
        ({"label_max_doses_24h": 0}, "bad_label_limit"),
    ],
)
def test_bad_product_details(kwargs: dict, code: str) -> None:
    assert_refused(check_dose("对乙酰氨基酚", 12, 30, [], NOW, **kwargs), code)


def test_history_dose_in_the_future_is_rejected() -> None:
    future = GivenDose(drug="布洛芬", given_at=NOW + timedelta(hours=1))
    assert_refused(check_dose("布洛芬", 12, 30, [future], NOW), "history_in_future")


@pytest.mark.parametrize(
    "history",
    [
        [{"drug": "布洛芬"}],  # no time
        [{"drug": "布洛芬", "given_at": "yesterday-ish"}],
        [{"drug": "布洛芬", "given_at": NOW, "mg": -100}],
        "布洛芬",
        42,
    ],
)
def test_malformed_history_is_rejected(history: object) -> None:
    assert_refused(check_dose("布洛芬", 12, 30, history, NOW), "bad_history")  # type: ignore[arg-type]


def test_history_as_dicts_is_accepted() -> None:
    result = check_dose("布洛芬", 12, 30, [{"drug": "布洛芬", "given_at": ago(2).isoformat()}], NOW)
    assert_refused(result, "too_soon")


def test_mixed_time_zones_and_missing_request_time() -> None:
    aware = GivenDose(drug="布洛芬", given_at=datetime(2026, 11, 22, 20, tzinfo=UTC))
    assert_refused(check_dose("布洛芬", 12, 30, [aware], NOW), "bad_time")
    assert_refused(check_dose("布洛芬", 12, 30, [], None), "bad_time")  # type: ignore[arg-type]


def test_result_is_json_serialisable() -> None:
    result = check_dose("布洛芬", 12, 30, [dose("对乙酰氨基酚", 1)], NOW, concentration_mg_per_ml=20)
    again = DoseCheck.model_validate_json(result.model_dump_json())
    assert again == result


def test_never_raises_on_odd_input() -> None:
    odd_values: list[object] = [None, "", "x", -1, 0, 1e9, float("nan"), [], {}, True]
    for weight in odd_values + [12]:
        for age in odd_values + [30]:
            for history in (None, [], [None], [{}], odd_values):
                result = check_dose("布洛芬", weight, age, history, NOW)  # type: ignore[arg-type]
                assert isinstance(result, DoseCheck)
                assert result.allowed is (weight == 12 and age == 30 and history in (None, []))
