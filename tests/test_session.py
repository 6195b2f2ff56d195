"""Behaviour of the triage conversation (assistant.session) and the terminal chat (assistant.chat_cli).

Uses the real triage engine; no LLM anywhere.
"""

from __future__ import annotations

import io
import json

import pytest

from assistant import session_text as st
from assistant.answers import classify_yes_no, conflict_choice, is_bare_number, parse_small_age
from assistant.chat_cli import run_chat
from assistant.session import ConversationSession, TurnReply
from tools.triage_models import Level

L = Level
DONT_KNOW = {"zh": "不知道", "en": "don't know"}


def talk(messages: list[str], lang: str | None = None) -> tuple[ConversationSession, list[TurnReply]]:
    session = ConversationSession(lang=lang)
    return session, [session.handle_user_message(m) for m in messages]


def finish(session: ConversationSession, answer: str, limit: int = 12) -> list[TurnReply]:
    """Answers every further question with `answer` until the session stops asking."""
    replies = []
    for _ in range(limit):
        if session.pending_question is None and not session.pending_conflicts:
            break
        replies.append(session.handle_user_message(answer))
    assert session.pending_question is None, "the session kept asking questions"
    return replies


def question_ids(replies: list[TurnReply]) -> list[str]:
    return [r.question.id for r in replies if r.kind == "question" and r.question]


# --------------------------------------------------------------------------------------------
# Facts accumulate; nothing is asked twice
# --------------------------------------------------------------------------------------------


def test_age_given_in_first_message_is_never_asked() -> None:
    session, replies = talk(["我儿子3岁，发烧两天了，体温39度"])
    replies += finish(session, "不知道")
    asked = question_ids(replies)
    assert asked, "a child with fever should get follow-up questions"
    assert "age" not in asked and "temperature" not in asked
    assert session.facts.age_months == 36
    assert session.facts.vitals.temperature_c == 39


def test_age_answered_once_is_not_asked_again_and_is_kept() -> None:
    session, replies = talk(["my baby has a fever", "5 months"])
    assert replies[0].question is not None and replies[0].question.id == "age"
    assert session.facts.age_months == 5
    replies += finish(session, "don't know")
    assert question_ids(replies).count("age") == 1
    assert session.last_result is not None
    # "5 months" alone would read as a duration of 5 months; the session reads it as the age
    assert session.last_result.facts.duration_hours is None
    assert session.last_result.facts.age_months == 5


def test_questions_come_one_at_a_time_and_never_repeat() -> None:
    session, replies = talk(["孩子3岁，发烧两天了"])
    replies += finish(session, "不知道")
    for reply in replies[:-1]:
        assert reply.kind == "question" and reply.question is not None
        assert reply.text.count("请问") == 1  # one question per reply
    asked = question_ids(replies)
    assert len(asked) >= 3
    assert len(asked) == len(set(asked))
    assert session.asked_ids == asked
    assert replies[-1].kind == "assessment"


def test_question_is_in_the_users_language() -> None:
    _, zh = talk(["孩子发烧了"])
    _, en = talk(["my child has a fever"])
    assert zh[0].question is not None and en[0].question is not None
    assert zh[0].question.id == en[0].question.id == "age"
    assert "年龄" in zh[0].text and "How old" in en[0].text
    _, forced = talk(["my child has a fever"], lang="zh")
    assert "年龄" in forced[0].text


# --------------------------------------------------------------------------------------------
# Answers change the description and re-run triage
# --------------------------------------------------------------------------------------------


def test_no_answer_adds_the_negated_sentence_and_reruns_triage() -> None:
    session, replies = talk(["孩子3岁，发烧两天了"])
    question = replies[0].question
    assert question is not None and question.id == "alertness" and question.no_text
    before = replies[0].result
    reply = session.handle_user_message("没有")
    assert question.no_text in session.description.splitlines()
    assert reply.result is not None and before is not None
    assert reply.result.level == L.self_care and before.level == L.routine  # well-appearing child
    assert reply.question is not None and reply.question.id != "alertness"


def test_yes_answer_adds_the_yes_sentence() -> None:
    session, replies = talk(["my ankle is swollen after a fall"])
    assert replies[0].question is not None and replies[0].question.id == "weight_bearing"
    reply = session.handle_user_message("yes")
    assert "can walk normally" in session.description.splitlines()
    assert reply.result is not None and reply.result.level == L.routine


def test_no_followed_by_a_description_keeps_both() -> None:
    session, _ = talk(["my baby has a fever", "8 months"])
    assert session.pending_question is not None and session.pending_question.no_text
    no_text = session.pending_question.no_text
    session.handle_user_message("No, but he has a rash")
    lines = session.description.splitlines()
    assert no_text in lines and "but he has a rash" in lines


def test_a_description_instead_of_yes_no_is_read_as_text() -> None:
    session, replies = talk(["头疼"])
    assert replies[0].question is not None and replies[0].question.kind == "yes_no"
    session.handle_user_message("有点恶心")
    assert session.description.splitlines()[-1] == "有点恶心"


def answer_until(session: ConversationSession, question_id: str, answer: str, limit: int = 8) -> None:
    for _ in range(limit):
        pending = session.pending_question
        assert pending is not None, f"{question_id} was never asked"
        if pending.id == question_id:
            return
        session.handle_user_message(answer)
    raise AssertionError(f"{question_id} was not reached")


def test_bare_number_answers_the_temperature_question() -> None:
    session, _ = talk(["我儿子3岁，发烧两天了"])
    answer_until(session, "temperature", "不知道")
    reply = session.handle_user_message("101")  # °F, converted with a warning
    assert session.facts.vitals.temperature_c == pytest.approx(38.3)
    assert "体温101" in session.description.splitlines()  # read in the question's context
    assert reply.result is not None
    assert any(w.code == "assumed_fahrenheit" for w in reply.result.warnings)
    assert "华氏" in reply.text or "°F" in reply.text or "℉" in reply.text  # the warning is shown


def test_implausible_number_is_not_stored_and_asks_to_remeasure() -> None:
    session, _ = talk(["我儿子3岁，发烧两天了"])
    answer_until(session, "temperature", "不知道")
    reply = session.handle_user_message("50")
    assert session.facts.vitals.temperature_c is None
    assert reply.result is not None
    assert any(w.code == "implausible_temperature" for w in reply.result.warnings)
    assert "重新测量" in reply.text


def test_pregnancy_answer_fills_the_structured_fact() -> None:
    session, replies = talk(["我今年30岁，肚子疼"])
    assert replies[0].question is not None and replies[0].question.id == "pregnancy"
    session.handle_user_message("不是")
    assert session.facts.pregnant is False
    assert "没有怀孕" in session.description


# --------------------------------------------------------------------------------------------
# Emergencies interrupt everything
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("first", ["宝宝咳嗽", "头疼"])
def test_red_flag_mid_conversation_gives_emergency_advice_at_once(first: str) -> None:
    session, replies = talk([first])
    assert replies[0].kind == "question" and session.pending_question is not None
    reply = session.handle_user_message("突然说话不清，嘴歪了")
    assert reply.kind == "emergency"
    assert reply.result is not None and reply.result.level == L.emergency_ambulance
    assert "120" in reply.text
    assert reply.question is None and session.pending_question is None


def test_red_flag_while_a_conflict_is_pending_gives_emergency_advice() -> None:
    session, _ = talk(["我今年30岁，肚子疼", "其实我35岁"])
    assert session.pending_conflicts
    reply = session.handle_user_message("突然说话不清，嘴歪了")
    assert reply.kind == "emergency" and "120" in reply.text
    assert not session.pending_conflicts and session.pending_question is None


def test_emergency_department_level_also_names_120() -> None:
    _, replies = talk(["宝宝2个月，发烧了"])
    assert replies[0].kind == "emergency"
    assert replies[0].result is not None and replies[0].result.level == L.emergency
    assert "120" in replies[0].text and "急诊" in replies[0].text


def test_emergency_in_english() -> None:
    _, replies = talk(["my dad suddenly can't speak properly and his face is drooping"])
    assert replies[0].kind == "emergency"
    assert "Call 120" in replies[0].text


# --------------------------------------------------------------------------------------------
# Whole conversations reach an assessment
# --------------------------------------------------------------------------------------------


def test_zh_child_diarrhoea_script_reaches_paediatric_gi_assessment() -> None:
    session, replies = talk(["孩子拉肚子两天了还能玩", "3岁"])
    assert replies[0].question is not None and replies[0].question.id == "age"
    replies += finish(session, "没有")
    final = replies[-1]
    assert final.kind == "assessment"
    assert final.result is not None
    assert final.result.level in (L.self_care, L.routine)
    assert final.result.departments[0].id == "ped_gastro"
    assert "评估结果" in final.text and "儿童消化" in final.text and "120" in final.text


def test_en_ankle_script_reaches_orthopaedics_assessment() -> None:
    session, replies = talk(["my ankle is swollen after a fall", "yes"])
    replies += finish(session, "no")
    final = replies[-1]
    assert final.kind == "assessment"
    assert final.result is not None and final.result.level == L.routine
    assert final.result.departments[0].id == "orthopedics"
    assert final.text.startswith("Assessment:")
    for part in (final.result.level_label, "Orthopaedics", final.result.disclaimer):
        assert part in final.text


# --------------------------------------------------------------------------------------------
# Conflicting facts are asked back
# --------------------------------------------------------------------------------------------


def test_conflicting_age_is_asked_back_before_it_is_changed() -> None:
    session, _ = talk(["我今年30岁，肚子疼"])
    reply = session.handle_user_message("其实我35岁")
    assert reply.kind == "question" and reply.question is not None
    assert reply.question.id == "confirm.age_months"
    assert "30岁" in reply.text and "35岁" in reply.text
    assert session.facts.age_months == 360  # not overwritten yet
    reply = session.handle_user_message("现在的")
    assert session.facts.age_months == 420
    assert reply.kind in ("question", "assessment") and "35岁" in reply.text
    assert not session.pending_conflicts
    assert "提到了多个年龄" not in reply.text  # settled, so the extractor's note is not shown


@pytest.mark.parametrize(("answer", "months"), [("之前的", 360), ("是30岁", 360), ("32岁", 384), ("嗯", 360)])
def test_conflict_answers(answer: str, months: float) -> None:
    session, _ = talk(["我今年30岁，肚子疼", "其实我35岁"])
    session.handle_user_message(answer)
    assert session.facts.age_months == months
    assert not session.pending_conflicts


def test_unclear_conflict_answer_keeps_the_more_urgent_value() -> None:
    session, _ = talk(["my 2 month old baby has a cough"])
    reply = session.handle_user_message("sorry, she is 2 weeks old")
    assert reply.question is not None and reply.question.id == "confirm.age_months"
    session.handle_user_message("hmm")
    assert session.facts.age_months == pytest.approx(0.46, abs=0.01)  # newborn rules are stricter


# --------------------------------------------------------------------------------------------
# Bad input and persistence
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "empty_input"),
        ("   \n ", "empty_input"),
        ("😀🙏😷", "no_content"),
        ("?!…", "no_content"),
        ("头" * 4001, "input_too_long"),
    ],
)
def test_bad_input_gives_an_error_and_keeps_the_state(text: str, code: str) -> None:
    session, _ = talk(["孩子发烧两天了"])
    before = session.to_dict()
    reply = session.handle_user_message(text)
    assert reply.kind == "error" and reply.error_code == code and reply.result is None
    assert session.to_dict() == before
    # still usable: the pending age question is answered normally
    assert session.handle_user_message("3岁").kind == "question"
    assert session.facts.age_months == 36


def test_error_before_the_language_is_known_is_bilingual() -> None:
    session = ConversationSession()
    reply = session.handle_user_message("   ")
    assert "请" in reply.text and "please" in reply.text
    assert session.lang is None and session.turns == []


def test_conversation_longer_than_the_engine_limit_is_refused_without_damage() -> None:
    session, _ = talk(["头疼"])
    long_turn = "还是头疼" * 900  # 3600 characters: fine alone, too long with the rest
    session.handle_user_message(long_turn[:3000])
    before = session.to_dict()
    reply = session.handle_user_message(long_turn[:3500])
    assert reply.kind == "error" and reply.error_code == "conversation_too_long"
    assert session.to_dict() == before


def test_json_round_trip_preserves_the_conversation() -> None:
    session, _ = talk(["我儿子3岁，发烧两天了", "没有"])
    data = json.loads(json.dumps(session.to_dict(), ensure_ascii=False))
    restored = ConversationSession.from_dict(data)
    assert restored.facts == session.facts
    assert restored.asked_ids == session.asked_ids == ["alertness", "breathing"]
    assert restored.pending_question == session.pending_question
    assert restored.description == session.description and restored.lang == "zh"
    a, b = session.handle_user_message("不知道"), restored.handle_user_message("不知道")
    assert (a.kind, a.text) == (b.kind, b.text)


def test_json_round_trip_with_a_pending_conflict() -> None:
    session, _ = talk(["头疼，体温38度", "现在39度5了"])
    assert session.pending_conflicts
    restored = ConversationSession.from_dict(json.loads(json.dumps(session.to_dict())))
    assert restored.pending_conflicts == session.pending_conflicts
    restored.handle_user_message("现在的")
    assert restored.facts.vitals.temperature_c == 39.5


# --------------------------------------------------------------------------------------------
# Answer reading and templates
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "label", "remainder"),
    [
        ("没有", "no", ""),
        ("没有。", "no", ""),
        ("有的", "yes", ""),
        ("是的吧", "yes", ""),
        ("嗯，没有", "no", ""),
        ("不知道", "unknown", ""),
        ("Nope", "no", ""),
        ("yes!", "yes", ""),
        ("I don't know", "unknown", ""),
        ("没有，就是有点累", "no", "就是有点累"),
        ("No, but he has a rash", "no", "but he has a rash"),
        ("yes he vomited twice", "yes", "he vomited twice"),
        ("没有发烧", None, ""),
        ("no fever", None, ""),
        ("有点恶心", None, ""),
        ("nothing", None, ""),
    ],
)
def test_classify_yes_no(text: str, label: str | None, remainder: str) -> None:
    answer = classify_yes_no(text)
    assert (answer.label, answer.remainder) == (label, remainder)


@pytest.mark.parametrize(
    ("text", "months"),
    [
        ("5个月", 5.0),
        ("八个月了", 8.0),
        ("两个半月", 2.5),
        ("6 weeks", 1.38),
        ("10天", 0.33),
        ("3岁", None),
        ("5", None),
        ("烧了5个月", None),
    ],
)
def test_parse_small_age(text: str, months: float | None) -> None:
    parsed = parse_small_age(text)
    assert (parsed.months if parsed else None) == (pytest.approx(months, abs=0.01) if months else None)


def test_bare_number_and_conflict_choice() -> None:
    assert is_bare_number("39") and is_bare_number("39.5度") and is_bare_number("101 f")
    assert not is_bare_number("孩子在发抖") and not is_bare_number("烧到39度了还抽筋")
    assert conflict_choice("之前的") == "earlier" and conflict_choice("the new one") == "later"
    assert conflict_choice("现在的") == "later" and conflict_choice("嗯") is None


def test_every_template_exists_in_both_languages() -> None:
    t = st.templates()
    for group in (t.templates, t.fields, t.values, t.age_sentence, t.number_context):
        for key, entry in group.items():
            assert entry.zh.strip() or key.startswith("hint_"), key
            assert entry.en.strip() or key.startswith("hint_"), key
    for key in ("emergency_ambulance", "emergency"):
        for lang in ("zh", "en"):
            assert "120" in st.render(key, lang, level_label="x", red_flags="", advice="")  # type: ignore[arg-type]
    assert all(isinstance(w, str) for w in t.words.no) and "no" in t.words.no and "yes" in t.words.yes


# --------------------------------------------------------------------------------------------
# Terminal chat
# --------------------------------------------------------------------------------------------


def chat(lines: list[str], lang: str | None = None) -> tuple[int, str]:
    out = io.StringIO()
    code = run_chat(lang, stdin=io.StringIO("".join(line + "\n" for line in lines)), stdout=out)
    return code, out.getvalue()


def test_run_chat_with_piped_input() -> None:
    code, out = chat(["my ankle is swollen after a fall", "", "yes", "no", "no", "no"])
    assert code == 0
    assert out.startswith(st.render("cli_welcome", "zh").splitlines()[0])  # language not known yet
    assert "> my ankle is swollen after a fall\n" in out
    assert "Question: Can the injured limb bear weight or move?" in out
    assert out.count("Question:") == 4
    assert "Assessment: Book a clinic visit in the coming days" in out
    assert "1. Orthopaedics" in out


def test_run_chat_commands() -> None:
    code, out = chat(
        ["孩子发烧两天了", "/lang en", "/reset", "/lang xx", "/foo", "/quit", "never read"], lang="zh"
    )
    assert code == 0
    assert "请问：患者多大年龄" in out
    assert "Switched to English.\nHow old is the patient?" in out  # the pending question, re-asked in English
    assert st.render("cli_reset", "en") in out
    assert st.render("cli_lang_usage", "en") in out
    assert "Unknown command /foo" in out
    assert out.rstrip().endswith(st.render("cli_bye", "en"))
    assert "never read" not in out


def test_run_chat_emergency_and_eof() -> None:
    code, out = chat(["头疼", "突然说话不清，嘴歪了"])
    assert code == 0
    assert "【立即拨打120】" in out and "请现在就拨打120" in out
    code, out = chat([])
    assert code == 0 and "/quit" in out
