"""Chronic-care plans (tools/data/chronic_plans.yaml) and the follow-up rules of tools/chronic.py:
every number traceable to a corpus section, reading classification at the guideline boundaries, due
dates, worsening, urgent readings (with the triage engine's view) and the worklist order."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from tools.chronic import (
    ChronicPatient,
    Reading,
    classify_reading,
    evaluate,
    load_plans,
    overdue_list,
    triage_for_reading,
)

CORPUS = Path(__file__).resolve().parent.parent / "knowledge" / "corpus"
PLANS = load_plans()
TODAY = date(2026, 11, 23)


def _sections(doc_id: str, lang: str) -> set[str]:
    path = CORPUS / f"{doc_id}.{lang}.md"
    assert path.is_file(), path
    return set(re.findall(r"\{#([^}\s]+)\}", path.read_text(encoding="utf-8")))


@pytest.mark.parametrize(("doc_id", "section"), sorted(PLANS.sources()))
def test_every_plan_source_resolves_in_both_languages(doc_id: str, section: str) -> None:
    assert section in _sections(doc_id, "zh")
    assert section in _sections(doc_id, "en")


def test_chronic_corpus_docs_are_parallel_and_cite_the_guidelines() -> None:
    for doc in ("chronic-hypertension", "chronic-diabetes"):
        assert _sections(doc, "zh") == _sections(doc, "en")
    htn = (CORPUS / "chronic-hypertension.zh.md").read_text(encoding="utf-8")
    dm = (CORPUS / "chronic-diabetes.zh.md").read_text(encoding="utf-8")
    assert "国家基层高血压防治管理指南" in htn and "2020" in htn and "120" in htn
    assert "国家基层糖尿病防治管理指南" in dm and "中国2型糖尿病防治指南" in dm and "120" in dm


def test_plan_numbers_follow_the_guidelines() -> None:
    htn, dm = PLANS.conditions["hypertension"], PLANS.conditions["diabetes"]
    assert (htn.follow_up.controlled_days, htn.follow_up.uncontrolled_days) == (90, 14)
    assert (dm.follow_up.controlled_days, dm.follow_up.uncontrolled_days) == (90, 14)
    assert {(t.measure, t.value) for t in htn.urgent} == {("systolic", 180), ("diastolic", 110)}
    assert {(t.measure, t.op, t.value) for t in dm.urgent} == {
        ("glucose_any", ">=", 16.7),
        ("glucose_any", "<=", 3.9),
    }
    ids = [t.id for p in PLANS.conditions.values() for t in [*p.targets, *p.urgent, *p.worsening]]
    assert len(ids) == len(set(ids))


def bp(s: int, d: int, on: date = TODAY) -> Reading:
    return Reading(taken_on=on, kind="bp", systolic=s, diastolic=d)


def glu(v: float, context: str = "fasting", on: date = TODAY) -> Reading:
    return Reading(taken_on=on, kind="glucose", glucose_mmol=v, context=context)  # type: ignore[arg-type]


def a1c(v: float, on: date = TODAY) -> Reading:
    return Reading(taken_on=on, kind="hba1c", hba1c_percent=v)


@pytest.mark.parametrize(
    ("reading", "level", "rule"),
    [
        (bp(139, 89), "on_target", None),
        (bp(140, 80), "poorly_controlled", "HTN-TGT-01"),
        (bp(130, 90), "poorly_controlled", "HTN-TGT-02"),
        (bp(179, 109), "poorly_controlled", "HTN-TGT-01"),
        (bp(180, 100), "urgent", "HTN-URG-01"),
        (bp(160, 110), "urgent", "HTN-URG-02"),
    ],
)
def test_classify_blood_pressure(reading: Reading, level: str, rule: str | None) -> None:
    result = classify_reading("hypertension", reading)
    assert result.level == level
    assert (rule in result.rule_ids) if rule else result.rule_ids == []


@pytest.mark.parametrize(
    ("reading", "level"),
    [
        (glu(4.4), "on_target"),
        (glu(7.0), "on_target"),
        (glu(7.1), "poorly_controlled"),
        (glu(4.3), "poorly_controlled"),  # below the fasting target, not yet hypoglycaemia
        (glu(4.0), "poorly_controlled"),
        (glu(3.9), "urgent"),  # the referral rule includes 3.9 itself
        (glu(16.6), "poorly_controlled"),
        (glu(16.7), "urgent"),
        (glu(9.9, "postprandial"), "on_target"),
        (glu(10.0, "postprandial"), "poorly_controlled"),
        (glu(9.5, "random"), "on_target"),
        (glu(17.0, "random"), "urgent"),
        (a1c(6.9), "on_target"),
        (a1c(7.0), "poorly_controlled"),
    ],
)
def test_classify_glucose(reading: Reading, level: str) -> None:
    assert classify_reading("diabetes", reading).level == level


def patient(conditions: list[str], last_visit: date | None, readings: list[Reading]) -> ChronicPatient:
    return ChronicPatient(
        id="p1", name="测试", conditions=conditions, last_visit=last_visit, readings=readings, clinic_id="c"
    )  # type: ignore[arg-type]


def days_ago(n: int) -> date:
    return TODAY - timedelta(days=n)


def test_controlled_patient_is_due_three_months_after_the_visit() -> None:
    p = patient(["hypertension"], days_ago(90), [bp(128, 78, days_ago(90))])
    s = evaluate(p, TODAY)
    assert (s.due_date, s.overdue, s.overdue_days, s.controlled) == (TODAY, False, 0, True)
    s = evaluate(p, TODAY + timedelta(days=1))
    assert (s.overdue, s.overdue_days) == (True, 1)
    assert s.reasons[0].code == "overdue" and s.reasons[0].rule_id == "HTN-FU-01"


def test_uncontrolled_at_the_visit_is_due_in_two_weeks() -> None:
    s = evaluate(patient(["hypertension"], days_ago(15), [bp(152, 92, days_ago(15))]), TODAY)
    assert (s.controlled, s.overdue_days) == (False, 1)
    assert {r.code for r in s.reasons} == {"overdue", "uncontrolled"}


def test_off_target_home_reading_after_the_visit_brings_the_due_date_forward() -> None:
    readings = [bp(128, 78, days_ago(60)), bp(150, 95, days_ago(20)), bp(155, 96, days_ago(10))]
    s = evaluate(patient(["hypertension"], days_ago(60), readings), TODAY)
    assert s.due_date == days_ago(20) + timedelta(days=14)  # from the first reading of the run
    assert s.overdue_days == 6


def test_no_readings_errs_to_the_short_interval() -> None:
    s = evaluate(patient(["diabetes"], days_ago(10), []), TODAY)
    assert s.due_date == days_ago(10) + timedelta(days=14) and not s.controlled
    assert s.reasons[0].code == "no_readings"


def test_never_visited_is_overdue() -> None:
    s = evaluate(patient(["diabetes"], None, [glu(6.0, on=days_ago(3))]), TODAY)
    assert s.overdue and s.due_date is None and s.reasons[0].code == "no_visit"


def test_urgent_only_after_the_last_visit() -> None:
    on_visit_day = patient(["hypertension"], days_ago(5), [bp(185, 100, days_ago(5))])
    assert not evaluate(on_visit_day, TODAY).urgent  # the visit dealt with it
    after = patient(["hypertension"], days_ago(5), [bp(185, 100, days_ago(4))])
    s = evaluate(after, TODAY)
    assert s.urgent and s.reasons[0].code == "urgent" and s.reasons[0].rule_id == "HTN-URG-01"


def test_urgent_thresholds_apply_whatever_the_registered_condition() -> None:
    s = evaluate(
        patient(["diabetes"], days_ago(5), [glu(6.0, on=days_ago(5)), bp(200, 120, days_ago(1))]), TODAY
    )
    assert s.urgent


@pytest.mark.parametrize(("rise", "worsening"), [(10, True), (9, False), (20, True), (-5, False)])
def test_blood_pressure_worsening_rule(rise: int, worsening: bool) -> None:
    values = [120, 120, 120, 120 + rise, 120 + rise, 120 + rise]
    readings = [bp(v, 75, days_ago(60 - 10 * i)) for i, v in enumerate(values)]
    s = evaluate(patient(["hypertension"], days_ago(10), readings), TODAY)
    assert s.worsening == worsening
    if worsening:
        assert any(r.rule_id == "HTN-WORSE-01" for r in s.reasons)


def test_glucose_worsening_rules() -> None:
    fasting = [glu(v, on=days_ago(60 - 10 * i)) for i, v in enumerate([5.5, 5.6, 5.4, 6.5, 6.6, 6.4])]
    assert evaluate(patient(["diabetes"], days_ago(10), fasting), TODAY).worsening  # +1.0 exactly
    flat = [glu(v, on=days_ago(60 - 10 * i)) for i, v in enumerate([5.5, 5.6, 5.4, 6.4, 6.6, 6.4])]
    assert not evaluate(patient(["diabetes"], days_ago(10), flat), TODAY).worsening
    hba1c = [a1c(6.6, days_ago(100)), a1c(7.1, days_ago(5))]
    s = evaluate(patient(["diabetes"], days_ago(5), hba1c), TODAY)
    assert s.worsening and any(r.rule_id == "DM-WORSE-02" for r in s.reasons)


def test_worklist_order_urgent_then_risk_then_days() -> None:
    def make(pid: str, last_visit: date, readings: list[Reading], conditions: list[str] | None = None):
        return ChronicPatient(
            id=pid,
            name=pid,
            conditions=conditions or ["hypertension"],
            last_visit=last_visit,
            readings=readings,
            clinic_id="c",
        )  # type: ignore[arg-type]

    fine = make("fine", days_ago(30), [bp(120, 70, days_ago(30))])
    overdue_long = make("overdue_long", days_ago(200), [bp(120, 70, days_ago(200))])
    overdue_short = make("overdue_short", days_ago(95), [bp(120, 70, days_ago(95))])
    urgent = make("urgent", days_ago(3), [bp(120, 70, days_ago(3)), bp(190, 100, days_ago(1))])
    both = make("both", days_ago(100), [bp(150, 95, days_ago(100))], ["hypertension", "diabetes"])
    entries = overdue_list([fine, overdue_short, urgent, overdue_long, both], TODAY)
    order = [e.patient.id for e in entries]
    assert order[0] == "urgent" and "fine" not in order
    assert order.index("both") < order.index("overdue_long") < order.index("overdue_short")
    assert all(e.status.reasons for e in entries)


def test_urgent_reading_is_also_a_triage_red_flag() -> None:
    flag = triage_for_reading(bp(190, 120), "头痛", "zh")
    assert flag is not None and flag.level in ("emergency", "emergency_ambulance")
    assert "VS-COMBO-01" in flag.rule_ids
    plain = triage_for_reading(glu(18.0), "", "en")
    assert plain is not None and plain.level in ("urgent", "emergency", "emergency_ambulance")
    assert triage_for_reading(a1c(9.0)) is None
