"""Follow-up conversations (assistant/followup.py, tools/data/followup_plans.yaml): every answer goes
through the triage engine first, so a red flag buried in small talk escalates at once (120 advice and
a clinic flag); benign answers do not; check-in values are parsed with their units and judged; plan
rules raise the level (wound discharge + fever: see a doctor today) and nothing ever lowers it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from assistant.followup import (
    FollowUpConversation,
    FollowUpError,
    answer,
    handoff_inputs,
    load_plans,
    schedule,
)
from tools.triage_models import Level

CORPUS = Path(__file__).resolve().parent.parent / "knowledge" / "corpus"
SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


def _conversation(plan_id: str, lang: str = "zh") -> FollowUpConversation:
    return FollowUpConversation(plan_id=plan_id, patient_id="p-test", lang=lang)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Plan data
# --------------------------------------------------------------------------------------------


def _sections(doc_id: str, lang: str) -> set[str]:
    path = CORPUS / f"{doc_id}.{lang}.md"
    assert path.is_file(), f"{path.name} missing"
    return set(re.findall(r"\{#([^}\s]+)\}", path.read_text(encoding="utf-8")))


def test_every_question_and_combo_cites_an_existing_corpus_section() -> None:
    plans = load_plans()
    cited = [(p.id, c) for p in plans.plans.values() for c in p.sources()]
    assert len(cited) >= 12
    for plan_id, citation in cited:
        for lang in ("zh", "en"):
            assert citation.section in _sections(citation.doc_id, lang), (plan_id, citation)


def test_the_required_plans_and_stable_question_ids_exist() -> None:
    plans = load_plans().plans
    assert set(plans) >= {
        "post_surgery",
        "post_discharge_general",
        "post_er_visit",
        "hypertension_checkin",
        "diabetes_checkin",
        "child_fever_followup",
    }
    surgery = plans["post_surgery"]
    assert [c.day for c in surgery.checks] == [1, 3, 7]
    assert {"ps.wound_redness", "ps.wound_discharge", "ps.fever", "ps.pain", "ps.bleeding"} <= set(
        surgery.questions
    )
    assert plans["hypertension_checkin"].questions["htn.bp"].answer_type == "bp"
    assert plans["diabetes_checkin"].questions["dm.glucose"].answer_type == "glucose"
    assert plans["diabetes_checkin"].questions["dm.hypo"].on_yes is not None
    for plan in plans.values():
        for q in plan.questions.values():
            assert q.text.zh and q.text.en and q.id.split(".")[0] in q.id


# --------------------------------------------------------------------------------------------
# Scheduling (Asia/Shanghai)
# --------------------------------------------------------------------------------------------


def test_post_surgery_questions_fall_on_days_1_3_7_at_nine_local_time() -> None:
    surgery = datetime(2026, 11, 23, 14, 0, tzinfo=SHANGHAI)  # Monday afternoon
    items = schedule("post_surgery", surgery, "Asia/Shanghai")
    days = sorted({(due.date().isoformat(), q["check_id"]) for due, q in items})
    assert days == [("2026-11-24", "day1"), ("2026-11-26", "day3"), ("2026-11-30", "day7")]
    for due, question in items:
        assert due.tzinfo is not None and due.utcoffset() == timedelta(hours=8)
        assert (due.hour, due.minute) == (9, 0)
        assert question["plan_id"] == "post_surgery" and question["text"]
    day3 = [due for due, q in items if q["check_id"] == "day3"][0]
    assert day3.astimezone(UTC) == datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
    assert [q["question_id"] for _, q in items[:5]] == [
        "ps.wound_redness",
        "ps.wound_discharge",
        "ps.fever",
        "ps.pain",
        "ps.bleeding",
    ]


def test_day_counting_uses_the_local_date_of_a_utc_anchor() -> None:
    # 17:30 UTC on the 23rd is already 01:30 on the 24th in Shanghai: "day 1" is the 25th.
    anchor = datetime(2026, 11, 23, 17, 30, tzinfo=UTC)
    first_due, _ = schedule("post_er_visit", anchor, "Asia/Shanghai")[0]
    assert first_due == datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI)
    naive = datetime(2026, 11, 23, 23, 0)  # read as Shanghai local time
    assert schedule("post_er_visit", naive, SHANGHAI)[0].due_at == datetime(
        2026, 11, 24, 10, 0, tzinfo=SHANGHAI
    )


def test_chronic_check_ins_repeat_every_morning_with_numbered_checks() -> None:
    items = schedule("hypertension_checkin", datetime(2026, 11, 23, 20, 0, tzinfo=SHANGHAI))
    bp = [(due, q["check_id"]) for due, q in items if q["question_id"] == "htn.bp"]
    assert len(bp) == 7
    assert bp[0] == (datetime(2026, 11, 24, 8, 0, tzinfo=SHANGHAI), "morning.1")
    assert bp[-1] == (datetime(2026, 11, 30, 8, 0, tzinfo=SHANGHAI), "morning.7")


def test_unknown_plan_and_time_zone_are_clear_errors() -> None:
    with pytest.raises(FollowUpError) as plan_error:
        schedule("post_lunch", datetime.now(UTC))
    assert plan_error.value.code == "unknown_plan" and "post_surgery" in plan_error.value.en
    with pytest.raises(FollowUpError) as zone_error:
        schedule("post_surgery", datetime.now(UTC), "Mars/Olympus")
    assert zone_error.value.code == "unknown_timezone" and "时区" in zone_error.value.zh


# --------------------------------------------------------------------------------------------
# Red flags escalate at once, wherever they hide
# --------------------------------------------------------------------------------------------

BURIED = [
    ("post_surgery", "ps.wound_redness", "day3", "zh", "挺好的，就是今天早上胸口压着疼，出冷汗，别的都还行"),
    (
        "post_surgery",
        "ps.fever",
        "day1",
        "en",
        "Doing fine, but this morning crushing chest pain and sweating, otherwise ok",
    ),
    (
        "post_er_visit",
        "er.better_worse",
        "next_day",
        "zh",
        "好多了好多了，吃得下饭，就是刚才突然说话不清楚，右手没劲",
    ),
    ("hypertension_checkin", "htn.bp", "morning.1", "zh", "今天没量，早上起来胸口压着疼还出冷汗"),
]


@pytest.mark.parametrize(("plan_id", "question_id", "check_id", "lang", "text"), BURIED)
def test_a_red_flag_buried_in_small_talk_escalates_with_120_and_a_clinic_flag(
    plan_id: str, question_id: str, check_id: str, lang: str, text: str
) -> None:
    conversation = _conversation(plan_id, lang)
    outcome = answer(conversation, question_id, text, lang, check_id=check_id, now=NOW)  # type: ignore[arg-type]
    assert outcome.status == "recorded"
    escalation = outcome.escalation
    assert escalation is not None
    assert escalation.level in (Level.emergency_ambulance, Level.emergency)
    assert escalation.call_120 and escalation.clinic_flag and outcome.clinic_flag
    assert escalation.red_flags and all(f.rule_id.startswith(("RF-", "VS-")) for f in escalation.red_flags)
    assert "120" in escalation.advice and outcome.message == escalation.advice
    assert outcome.next_question is None  # nothing else is asked after an emergency
    assert conversation.level == escalation.level
    recorded = conversation.answers[-1]
    assert recorded.text == text and recorded.red_flags
    assert recorded.engine_version.startswith("0.") and recorded.knowledge_version


def test_the_chest_pain_escalation_names_the_red_flag_and_says_call_120() -> None:
    conversation = _conversation("post_surgery")
    outcome = answer(conversation, "ps.wound_redness", BURIED[0][4], "zh", check_id="day3", now=NOW)
    assert outcome.escalation is not None
    assert outcome.escalation.level == Level.emergency_ambulance
    assert {"RF-CARD-01"} <= {f.rule_id for f in outcome.escalation.red_flags}
    assert "立即拨打120" in outcome.message and "已通知您的医生" in outcome.message


BENIGN = [
    ("post_surgery", "ps.wound_redness", "day3", "zh", "没有"),
    ("post_surgery", "ps.wound_discharge", "day3", "zh", "没有，挺好的"),
    ("post_surgery", "ps.fever", "day1", "en", "No, all good"),
    ("post_er_visit", "er.better_worse", "next_day", "zh", "好多了，能吃饭了"),
    ("hypertension_checkin", "htn.bp", "morning.1", "zh", "128/80"),
    ("diabetes_checkin", "dm.glucose", "morning.1", "zh", "空腹5.6"),
    ("child_fever_followup", "cf.behaviour", "day1", "zh", "没有"),
]


@pytest.mark.parametrize(("plan_id", "question_id", "check_id", "lang", "text"), BENIGN)
def test_benign_answers_do_not_escalate(
    plan_id: str, question_id: str, check_id: str, lang: str, text: str
) -> None:
    conversation = _conversation(plan_id, lang)
    outcome = answer(conversation, question_id, text, lang, check_id=check_id, now=NOW)  # type: ignore[arg-type]
    assert outcome.status == "recorded", outcome.message
    assert outcome.escalation is None and not outcome.clinic_flag
    assert outcome.level == Level.self_care and conversation.level == Level.self_care
    assert "120" not in outcome.message
    assert len(conversation.answers) == 1


# --------------------------------------------------------------------------------------------
# Plan rules raise the level; nothing lowers it
# --------------------------------------------------------------------------------------------


def test_wound_discharge_plus_fever_means_see_a_doctor_today() -> None:
    conversation = _conversation("post_surgery")
    first = answer(conversation, "ps.fever", "有，昨晚37.9度", "zh", check_id="day3", now=NOW)
    assert first.level == Level.routine and first.escalation is None
    second = answer(conversation, "ps.wound_discharge", "有", "zh", check_id="day3", now=NOW)
    assert second.level == Level.urgent and second.clinic_flag
    assert "FU-COMBO-WOUND-FEVER" in {f.rule_id for f in second.rule_trace}
    assert "24小时内就医" in second.message and "今天就要看医生" in second.message
    # the same pair in another check (day 7) starts from scratch, but the conversation keeps urgent
    assert conversation.level == Level.urgent
    assert [a.level for a in conversation.answers_in("day3")] == [Level.routine, Level.urgent]


def test_a_later_benign_answer_never_lowers_the_level() -> None:
    conversation = _conversation("post_surgery")
    answer(conversation, "ps.bleeding", "有，纱布湿了一片", "zh", check_id="day1", now=NOW)
    calm = answer(conversation, "ps.pain", "没有", "zh", check_id="day1", now=NOW)
    assert calm.answer_level == Level.self_care
    assert calm.level == Level.urgent and conversation.level == Level.urgent


def test_a_worse_answer_after_an_er_visit_is_urgent() -> None:
    outcome = answer(
        _conversation("post_er_visit", "en"), "er.better_worse", "worse than yesterday", "en", now=NOW
    )
    assert outcome.level == Level.urgent and outcome.clinic_flag
    assert "FU-er.better_worse-concern" in {f.rule_id for f in outcome.rule_trace}


def test_an_unclear_yes_no_answer_is_asked_again_and_not_recorded() -> None:
    conversation = _conversation("post_surgery")
    outcome = answer(conversation, "ps.pain", "这个不好说", "zh", check_id="day3", now=NOW)
    assert outcome.status == "retry" and outcome.error_code == "unclear_answer"
    assert "伤口疼痛" in outcome.message and conversation.answers == []


@pytest.mark.parametrize(
    ("text", "code"), [("", "empty_answer"), ("   ", "empty_answer"), ("好" * 1001, "answer_too_long")]
)
def test_empty_or_huge_answers_are_asked_again(text: str, code: str) -> None:
    outcome = answer(_conversation("post_surgery"), "ps.fever", text, "zh", now=NOW)
    assert outcome.status == "retry" and outcome.error_code == code


def test_unknown_question_or_check_is_a_clear_error() -> None:
    with pytest.raises(FollowUpError) as exc:
        answer(_conversation("post_surgery"), "htn.bp", "120/80", "en")
    assert exc.value.code == "unknown_question" and "htn.bp" in exc.value.en
    with pytest.raises(FollowUpError) as exc2:
        answer(_conversation("post_surgery"), "ps.fever", "no", "en", check_id="day99")
    assert exc2.value.code == "unknown_check"
    with pytest.raises(FollowUpError) as exc3:
        answer(_conversation("post_surgery"), "ps.bleeding", "no", "en", check_id="day7")
    assert exc3.value.code == "question_not_in_check"


# --------------------------------------------------------------------------------------------
# Check-in values
# --------------------------------------------------------------------------------------------


def test_incomplete_blood_pressure_gets_a_clear_error_and_the_question_again() -> None:
    conversation = _conversation("hypertension_checkin")
    outcome = answer(conversation, "htn.bp", "180/", "zh", check_id="morning.1", now=NOW)
    assert outcome.status == "retry" and outcome.error_code
    assert "180/" in outcome.message and "血压" in outcome.message
    assert "请重新输入" in outcome.message and "135/85" in outcome.message  # the question again
    assert outcome.next_question and outcome.next_question["question_id"] == "htn.bp"
    assert conversation.answers == [] and outcome.escalation is None


def test_kpa_blood_pressure_is_converted_to_mmhg() -> None:
    conversation = _conversation("hypertension_checkin")
    outcome = answer(conversation, "htn.bp", "12/8 kPa", "zh", check_id="morning.1", now=NOW)
    assert outcome.status == "recorded" and outcome.reading is not None
    assert (outcome.reading.systolic, outcome.reading.diastolic) == (90, 60)
    assert outcome.reading.note and "kPa" in outcome.reading.note
    assert "90/60 mmHg" in outcome.message
    assert conversation.readings()[0].measured_at == NOW


def test_mg_dl_glucose_is_converted_to_mmol_l() -> None:
    conversation = _conversation("diabetes_checkin", "en")
    outcome = answer(conversation, "dm.glucose", "126 mg/dL", "en", check_id="morning.1", now=NOW)
    assert outcome.reading is not None and outcome.reading.mmol_l == pytest.approx(7.0, abs=0.05)
    assert outcome.reading.context == "fasting"
    assert "7.0 mmol/L" in outcome.message and "mg/dL" in outcome.message


def test_very_high_blood_pressure_escalates_to_a_doctor_today() -> None:
    outcome = answer(
        _conversation("hypertension_checkin"), "htn.bp", "高压185，低压112", "zh", check_id="morning.2"
    )
    assert outcome.escalation is not None and outcome.escalation.level == Level.urgent
    assert not outcome.escalation.call_120 and "120" in outcome.escalation.advice
    assert {"VS-BP-03", "HTN-URG-02"} <= set(outcome.escalation.reasons)
    assert outcome.reading is not None and outcome.reading.level == Level.urgent


def test_low_glucose_in_mg_dl_escalates_to_the_emergency_department() -> None:
    outcome = answer(
        _conversation("diabetes_checkin", "en"), "dm.glucose", "50 mg/dl", "en", check_id="morning.1"
    )
    assert outcome.escalation is not None and outcome.escalation.call_120
    assert outcome.escalation.level == Level.emergency
    assert "VS-GLU-01" in outcome.escalation.reasons and "120" in outcome.message


def test_answers_round_trip_as_json_and_feed_the_handoff() -> None:
    conversation = _conversation("hypertension_checkin")
    answer(conversation, "htn.bp", "150/95", "zh", check_id="morning.1", now=NOW)
    answer(conversation, "htn.symptoms", "没有", "zh", check_id="morning.1", now=NOW)
    again = FollowUpConversation.from_dict(conversation.to_dict())
    assert again == conversation
    inputs = handoff_inputs(again)
    assert [t["role"] for t in inputs["turns"]] == ["assistant", "user", "assistant", "user"]
    assert inputs["decisions"][0]["level"] == "routine"
    assert "HTN-TGT-01" in inputs["decisions"][0]["rule_ids"]
    assert inputs["readings"][0].systolic == 150


def test_reminder_specs_fire_one_notification_per_check_with_its_questions() -> None:
    pytest.importorskip("tools.reminders")
    from assistant.followup import reminder_specs

    surgery = datetime(2026, 11, 23, 14, 0, tzinfo=SHANGHAI)
    specs = reminder_specs("p-1", "post_surgery", surgery, "Asia/Shanghai", conversation_id="conv-1")
    assert [s.data["check_id"] for s in specs] == ["day1", "day3", "day7"]
    day3 = specs[1]
    assert day3.kind.value == "followup_question" and day3.patient_id == "p-1"
    assert day3.first_at == datetime(2026, 11, 26, 9, 0, tzinfo=SHANGHAI)
    assert day3.data["conversation_id"] == "conv-1" and day3.data["plan_id"] == "post_surgery"
    assert [q["question_id"] for q in day3.data["questions"]][:2] == [
        "ps.wound_redness",
        "ps.wound_discharge",
    ]
    assert day3.body_zh == day3.data["questions"][0]["text_zh"]


@pytest.mark.parametrize(
    ("question_id", "text", "lang"),
    [
        ("ps.fever", "没有发烧", "zh"),
        ("ps.wound_redness", "伤口不红", "zh"),
        ("ps.wound_redness", "没红没肿", "zh"),
        ("ps.pain", "一点都不疼", "zh"),
        ("ps.fever", "no fever", "en"),
    ],
)
def test_a_no_said_by_negating_the_questions_words_is_a_no(question_id: str, text: str, lang: str) -> None:
    conversation = _conversation("post_surgery", lang)
    outcome = answer(conversation, question_id, text, lang, check_id="day1", now=NOW)  # type: ignore[arg-type]
    assert outcome.status == "recorded" and conversation.answers[-1].label == "no"
    assert outcome.level == Level.self_care


@pytest.mark.parametrize(
    ("question_id", "text", "lang"),
    [
        ("ps.wound_redness", "伤口不红，就是有点肿", "zh"),  # a no with a yes inside is not a no
        ("ps.pain", "不太好", "zh"),
        ("ps.wound_redness", "not red, but swollen", "en"),
    ],
)
def test_half_negated_answers_are_asked_again(question_id: str, text: str, lang: str) -> None:
    conversation = _conversation("post_surgery", lang)
    outcome = answer(conversation, question_id, text, lang, check_id="day1", now=NOW)  # type: ignore[arg-type]
    assert outcome.status == "retry" and outcome.error_code == "unclear_answer"


def test_repeat_numbers_are_only_valid_for_repeating_plans() -> None:
    plans = load_plans()
    assert plans.plan("hypertension_checkin").check("morning.7").id == "morning"
    for plan_id, check_id in (("hypertension_checkin", "morning.8"), ("post_surgery", "day3.2")):
        with pytest.raises(FollowUpError):
            plans.plan(plan_id).check(check_id)
