"""The conversation eval (evals.dialogue_eval): scoring of hand-made transcripts, the contradiction
detector, bad lines, the agent-event adapter with a fake chat service, the rules path end to end
on a few dialogues, and the shipped dialogue set itself."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from evals.dialogue_eval import (
    DEFAULT_DATA,
    AgentUnavailableError,
    Dialogue,
    TurnRecord,
    find_contradictions,
    load_dialogues,
    main,
    parse_dialogue,
    record_from_events,
    run,
    score_dialogue,
    summarize,
)
from tools.rulebook import load_rulebook
from tools.triage_models import Level

L = Level
REPO = Path(__file__).resolve().parent.parent


def dialogue(
    id: str = "t1",
    lang: str = "zh",
    turns: int = 3,
    level: Level = L.urgent,
    departments: tuple[str, ...] = ("ped_fever",),
    early: tuple[str, ...] = (),
    replies_to: tuple[str | None, ...] | None = None,
) -> Dialogue:
    return Dialogue(
        id=id,
        lang=lang,
        turns=tuple(f"turn {i}" for i in range(turns)),
        expected_level=level,
        expected_departments=departments,
        facts_given_early=early,
        replies_to=replies_to,
    )


def rec(
    level: Level | None,
    question: str | None = None,
    departments: tuple[str, ...] = ("ped_fever",),
    text: str = "",
    kind: str | None = None,
) -> TurnRecord:
    if kind is None:
        kind = (
            "question"
            if question
            else ("emergency" if level and level.rank >= L.emergency.rank else "assessment")
        )
    return TurnRecord(
        user_text="u",
        kind=kind,
        level=level,
        departments=departments,
        question_id=question,
        reply_text=text,
    )


# ------------------------------------------------------------------------------ scoring


def test_final_card_is_the_last_turn_with_a_card() -> None:
    records = [rec(L.routine, "age"), rec(L.urgent, "alertness"), rec(None, kind="error")]
    score = score_dialogue(dialogue(level=L.urgent), records)
    assert score.final_level == L.urgent
    assert score.level_correct and not score.under_triage and not score.over_triage
    assert score.error_turns == 1
    assert score.passed


def test_question_asked_twice_and_known_fact_asked() -> None:
    records = [rec(L.routine, "age"), rec(L.routine, "temperature"), rec(L.routine, "age"), rec(L.routine)]
    score = score_dialogue(dialogue(turns=4, level=L.routine, early=("temperature", "duration")), records)
    assert score.questions_asked == ["age", "temperature", "age"]
    assert score.repeated_questions == ["age"]
    assert score.early_fact_questions == ["temperature"]
    assert score.problems() == ["asked_twice", "asked_known_fact"]
    assert not score.passed


def test_under_triage_department_miss_and_no_card_at_all() -> None:
    under = score_dialogue(dialogue(level=L.emergency), [rec(L.routine, departments=("dermatology",))])
    assert under.under_triage and under.department_hit is False
    assert under.problems() == ["under_triage", "department"]
    no_card = score_dialogue(dialogue(), [rec(None, kind="error")])
    assert no_card.final_level is None and no_card.under_triage and not no_card.level_correct


def test_department_hit_counts_only_the_top_three() -> None:
    fourth = score_dialogue(
        dialogue(departments=("x4",)), [rec(L.urgent, departments=("x1", "x2", "x3", "x4"))]
    )
    assert fourth.department_hit is False
    unscored = score_dialogue(dialogue(departments=()), [rec(L.urgent)])
    assert unscored.department_hit is None and unscored.passed


def test_script_drift_compares_each_scripted_answer_with_the_pending_question() -> None:
    records = [rec(L.routine, "age"), rec(L.routine, "breathing"), rec(L.routine)]
    score = score_dialogue(dialogue(replies_to=(None, "age", "alertness")), records)
    assert score.script_drift == [{"turn": 2, "expected": "alertness", "pending": "breathing"}]
    assert score.ended_with_question is False
    ending = score_dialogue(dialogue(turns=1), [rec(L.urgent, "age")])
    assert ending.ended_with_question is True


def test_summarize_exact_numbers_and_language_split() -> None:
    scores = [
        score_dialogue(dialogue("a", "zh", level=L.urgent), [rec(L.urgent)]),  # pass
        score_dialogue(dialogue("b", "zh", level=L.emergency), [rec(L.urgent)]),  # under
        score_dialogue(
            dialogue("c", "en", level=L.self_care, departments=("dermatology",)),
            [rec(L.routine, "age", departments=("dermatology",)), rec(L.routine, "age")],
        ),  # over + asked twice
        score_dialogue(  # emergency card with a reply lacking 120: a contradiction
            dialogue("d", "en", level=L.emergency), [rec(L.emergency, text="Go to the hospital.")]
        ),
    ]
    m = summarize(scores)
    assert m["n"] == 4
    assert m["pass_rate"] == 0.25
    assert m["level_accuracy"] == 0.5
    assert (m["under_triage_n"], m["over_triage_n"]) == (1, 1)
    assert m["emergency_n"] == 2 and m["emergency_recall"] == 0.5
    assert m["department_n"] == 4 and m["department_top3"] == 0.75
    assert m["asked_twice_dialogues"] == 1
    assert m["contradiction_dialogues"] == 1 and m["contradicting_replies"] == 1
    assert m["questions_asked"] == 2
    assert summarize([])["pass_rate"] is None


# ------------------------------------------------------------------------------ contradictions


@pytest.mark.parametrize(
    ("text", "card", "expected"),
    [
        ("可以先居家观察，多喝水。请拨打120。", L.emergency, ["self_care"]),
        ("This is fine for self-care at home; call 120 if worse.", L.emergency_ambulance, ["self_care"]),
        ("It's not serious, care for yourself at home.", L.urgent, ["self_care"]),
        ("Book a clinic visit in the coming days.", L.urgent, ["routine"]),
        ("建议24小时内就医，如加重拨打120。", L.emergency, ["urgent"]),
        ("Go to the emergency department now, or call 120.", L.emergency_ambulance, ["emergency"]),
        ("如果不发烧，可以在家观察。拨打120", L.emergency, ["self_care"]),  # a condition is no negation
        ("If there is no fever you can rest at home; call 120.", L.emergency, ["self_care"]),
    ],
)
def test_reply_naming_a_less_urgent_level_contradicts_the_card(
    text: str, card: Level, expected: list[str]
) -> None:
    problems = find_contradictions(text, card)
    assert [p.split()[1] for p in problems] == expected


@pytest.mark.parametrize(
    ("text", "card"),
    [
        ("【立即去急诊】请现在就去急诊科，路上加重立即拨打120。", L.emergency),
        ("不要在家观察，请立即拨打120。", L.emergency_ambulance),  # negated in its clause
        ("Do not wait at home and watch; call 120 now.", L.emergency_ambulance),
        ("See a doctor within 24 hours; go to the emergency department now if it gets worse.", L.urgent),
        ("Sources: self-care-common#sprains. See a doctor within 24 hours.", L.urgent),  # a doc id
        ("Care for yourself at home and watch.", L.self_care),  # its own level
        ("Watch for new symptoms in the coming days. Call 120 if worse.", L.emergency),
        ("Anything at all", None),  # no card, nothing to contradict
    ],
)
def test_replies_consistent_with_their_card(text: str, card: Level | None) -> None:
    assert find_contradictions(text, card) == []


def test_emergency_card_must_say_120() -> None:
    assert find_contradictions("请马上去医院急诊。", L.emergency) == [
        "emergency card but the reply does not mention 120"
    ]
    assert find_contradictions("Please call an ambulance.", L.emergency_ambulance) == [
        "emergency_ambulance card but the reply does not mention 120"
    ]
    assert find_contradictions("See your family doctor.", L.urgent) == []


# ------------------------------------------------------------------------------ loading


GOOD = {
    "id": "x1",
    "lang": "en",
    "turns": ["fever", "3"],
    "replies_to": [None, "age"],
    "expected_level": "urgent",
    "expected_departments": ["ped_fever"],
    "facts_given_early": [],
    "note": "n",
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lang": "fr"}, "'lang'"),
        ({"turns": []}, "at least one"),
        ({"turns": ["ok", ""]}, "'turns'"),
        ({"expected_level": "soon"}, "'expected_level'"),
        ({"expected_departments": None}, "'expected_departments'"),
        ({"facts_given_early": "age"}, "'facts_given_early'"),
        ({"replies_to": [None]}, "1 items but there are 2 turns"),
    ],
)
def test_bad_rows_are_rejected_with_a_reason(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_dialogue(json.dumps({**GOOD, **change}), 1)


def test_load_counts_bad_lines_and_keeps_good_ones(tmp_path: Path) -> None:
    missing_departments = {k: v for k, v in GOOD.items() if k != "expected_departments"}
    path = tmp_path / "d.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps(GOOD),
                "{not json",
                "[1, 2]",
                "",
                json.dumps({**missing_departments, "id": "x2"}),
                json.dumps({**GOOD, "id": "x3"}),
            ]
        ),
        encoding="utf-8",
    )
    loaded = load_dialogues(path)
    assert [d.id for d in loaded.dialogues] == ["x1", "x3"]
    assert loaded.lines == [1, 6]
    assert [(e.line, e.id) for e in loaded.errors] == [(2, None), (3, None), (5, "x2")]
    assert "invalid JSON" in loaded.errors[0].message


def test_run_counts_bad_lines_as_errors_and_missing_file_is_clear(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{oops\n", encoding="utf-8")
    report = run(path, tmp_path / "r.json", quiet=True)
    assert (report["n_rows"], report["n_scored"], report["n_errors"]) == (2, 1, 1)
    assert report["errors"][0]["line"] == 2 and report["errors"][0]["stage"] == "load"
    with pytest.raises(FileNotFoundError, match="找不到"):
        run(tmp_path / "absent.jsonl", tmp_path / "r.json", quiet=True)
    with pytest.raises(ValueError, match="unknown chat path"):
        run(path, tmp_path / "r.json", chat="llm", quiet=True)


# ------------------------------------------------------------------------------ agent path


def test_record_from_events_reads_card_question_and_done_text() -> None:
    card = {
        "level": "urgent",
        "departments": [{"id": "ped_fever", "name": "x", "reason": "y"}, {"id": "ped_general"}],
        "question": {"id": "alertness", "question": "Is the patient unusually drowsy?", "kind": "yes_no"},
    }
    events = [  # the shape assistant.agent.pipeline.ChatService sends: the card nested under "card"
        {"type": "card", "data": {"message_id": "m1", "card": card}},
        {"type": "token", "data": {"message_id": "m1", "text": "Sounds "}},
        {"type": "token", "data": {"message_id": "m1", "text": "like..."}},
        {"type": "done", "data": {"message_id": "m1", "text": "Sounds like a fever.", "llm_used": True}},
    ]
    record = record_from_events("she has a fever", events)
    assert record.level == L.urgent and record.departments == ("ped_fever", "ped_general")
    assert record.question_id == "alertness" and record.kind == "question"
    assert record.reply_text == "Sounds like a fever."

    updated = [
        events[0],
        {"type": "card", "data": {"card": {**card, "level": "emergency", "question": None}}},
    ]
    raised = record_from_events("x", [*updated, {"type": "token", "data": {"text": "Call 120"}}])
    assert raised.kind == "emergency" and raised.question_id is None and raised.reply_text == "Call 120"

    flat = {"type": "card", "data": {"level": "routine", "departments": ["dermatology"]}}
    assert record_from_events("x", [flat]).departments == ("dermatology",)
    assert record_from_events("x", [flat], ["age"]).question_id == "age"  # from the session
    question_event = {"type": "question", "data": {"id": "fever", "question": "Any fever?"}}
    assert record_from_events("x", [flat, question_event]).question_id == "fever"
    wording_only = {"type": "card", "data": {"level": "routine", "question": "How old is the patient?"}}
    assert record_from_events("x", [wording_only]).question_id is None  # wording is not an id
    open_list = {"type": "card", "data": {"level": "routine", "missing": [{"id": "age"}, {"id": "fever"}]}}
    assert record_from_events("x", [open_list]).question_id is None  # open questions, none asked
    info = record_from_events("x", [{"type": "card", "data": {"card": None, "citations": []}}])
    assert (info.kind, info.level) == ("info", None)  # a guideline answer: no card, no error
    failed = record_from_events("x", [{"type": "error", "data": {"code": "timeout", "message": "slow"}}])
    assert (failed.kind, failed.level, failed.error_code) == ("error", None, "timeout")


class FakeService:
    """Answers every turn with an emergency card and a reply that (wrongly) says self-care."""

    def __init__(self, level: str = "emergency", reply: str = "Rest at home, self-care is fine.") -> None:
        self.level, self.reply, self.calls = level, reply, 0

    async def turn(self, session: Any, text: str) -> AsyncIterator[dict[str, Any]]:
        self.calls += 1
        yield {"type": "card", "data": {"level": self.level, "departments": ["emergency"]}}
        yield {"type": "done", "data": {"text": self.reply}}


def test_agent_path_uses_the_service_and_catches_contradictions(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(
        json.dumps({**GOOD, "expected_level": "emergency", "expected_departments": ["emergency"]}),
        encoding="utf-8",
    )
    service = FakeService()
    report = run(path, tmp_path / "r.json", chat="agent", service=service, quiet=True)
    assert service.calls == 2
    overall = report["overall"]
    assert overall["level_accuracy"] == 1.0
    assert overall["contradiction_dialogues"] == 1 and overall["contradicting_replies"] == 2
    problems = report["dialogues"][0]["contradictions"][0]["problems"]
    assert any("self_care" in p for p in problems) and any("120" in p for p in problems)
    assert report["dialogues"][0]["script_drift"] == [{"turn": 1, "expected": "age", "pending": None}]


def test_agent_path_without_the_pipeline_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(GOOD), encoding="utf-8")
    monkeypatch.setitem(sys.modules, "assistant.agent.pipeline", None)  # import fails
    with pytest.raises(AgentUnavailableError, match="不可用"):
        run(path, tmp_path / "r.json", chat="agent", quiet=True)
    assert main(["--data", str(path), "--report", str(tmp_path / "r.json"), "--chat", "agent"]) == 2
    assert "unavailable" in capsys.readouterr().err
    assert main(["--data", str(tmp_path / "absent.jsonl")]) == 2


def test_agent_path_with_the_real_chat_service_and_no_llm_matches_the_rules(tmp_path: Path) -> None:
    pipeline = pytest.importorskip("assistant.agent.pipeline")
    from assistant.llm.none import NoLLM
    from assistant.settings import get_settings

    data = _three_dialogues(tmp_path)
    service = pipeline.ChatService(get_settings(), NoLLM(), None)
    agent = run(data, tmp_path / "agent.json", chat="agent", service=service, quiet=True)
    rules = run(data, tmp_path / "rules.json", quiet=True)
    assert agent["n_scored"] == 3 and agent["overall"]["error_turns"] == 0
    for a, r in zip(agent["dialogues"], rules["dialogues"], strict=True):
        assert (a["final_level"], a["questions_asked"]) == (r["final_level"], r["questions_asked"])
        assert a["contradictions"] == []


# ------------------------------------------------------------------------------ rules path

THREE = ("d002", "d011", "d021")


def _three_dialogues(tmp_path: Path) -> Path:
    lines = DEFAULT_DATA.read_text(encoding="utf-8").splitlines()
    chosen = [line for line in lines if line.strip() and json.loads(line)["id"] in THREE]
    data = tmp_path / "three.jsonl"
    data.write_text("\n".join(chosen), encoding="utf-8")
    return data


def test_rules_path_on_three_dialogues(tmp_path: Path) -> None:
    data = _three_dialogues(tmp_path)
    chosen = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    report_path = tmp_path / "report.json"
    report = run(data, report_path, quiet=True)

    assert json.loads(report_path.read_text(encoding="utf-8"))["n_scored"] == 3
    assert report["chat"] == "rules" and report["n_errors"] == 0
    assert set(report["by_language"]) == {"zh", "en"}
    by_id = {d["id"]: d for d in report["dialogues"]}
    for row in chosen:
        d = by_id[row["id"]]
        assert len(d["transcript"]) == len(row["turns"])
        assert all(t["reply_text"] for t in d["transcript"])
        assert not d["early_fact_questions"] and not d["repeated_questions"] and not d["contradictions"]
    # d011: the corrected age is asked back once, and "age" itself is never asked
    assert "confirm.age_months" in by_id["d011"]["questions_asked"]
    assert "age" not in by_id["d011"]["questions_asked"]
    # d021: chest pain escalates to a 120 card, and the reply says 120
    last = by_id["d021"]["transcript"][-1]
    assert last["level"] == "emergency_ambulance" and "120" in last["reply_text"]
    assert report["overall"]["asked_twice_dialogues"] == 0


# ------------------------------------------------------------------------------ the data set


def test_shipped_dialogue_set_is_valid_and_balanced() -> None:
    loaded = load_dialogues(DEFAULT_DATA)
    assert loaded.errors == []
    dialogues = loaded.dialogues
    assert len(dialogues) >= 36
    languages = Counter(d.lang for d in dialogues)
    assert languages["zh"] == languages["en"]
    assert len({d.id for d in dialogues}) == len(dialogues)
    assert all(len(d.turns) >= 2 for d in dialogues), "every dialogue is multi-turn"

    catalogue = yaml.safe_load((REPO / "tools" / "data" / "departments.yaml").read_text(encoding="utf-8"))
    department_ids = {d["id"] for d in catalogue["departments"]}
    question_ids = set(load_rulebook().questions)
    for d in dialogues:
        assert set(d.expected_departments) <= department_ids, d.id
        assert set(d.facts_given_early) <= question_ids, d.id
        scripted = {q for q in d.replies_to or () if q and not q.startswith("confirm.")}
        assert scripted <= question_ids, d.id
    assert sum(bool(d.facts_given_early) for d in dialogues) >= 20
    assert {lv for d in dialogues for lv in [d.expected_level]} == set(Level)
