"""Conversation eval: scripted multi-turn dialogues through the chat session (default:
evals/data/dialogues.jsonl).

Each JSONL row is one dialogue:
    {"id": "d001", "lang": "zh", "turns": ["...", "3岁", "没有"],          # user messages, in order
     "replies_to": [null, "age", "alertness"],     # optional: the question id each turn answers
     "expected_level": "urgent", "expected_departments": ["ped_fever", ...],
     "facts_given_early": ["age"],                 # question ids that must never be asked
     "note": "..."}

Every turn goes through one of two chat paths, both reduced to the same TurnRecord (card level and
departments, question id asked, reply text):
  - "rules" (default): ConversationSession.handle_user_message, no LLM;
  - "agent": the async ChatService.turn(session, text) of assistant/agent/pipeline.py (imported
    only when asked for), or any object with that `turn` method passed as `service`.

Scored per dialogue: the final card's level and top-3 departments; no question id asked twice;
no question in facts_given_early asked at all; no reply contradicting its own card (a reply that
names a less urgent level than the card, or an emergency card whose reply lacks "120").
Informational: script drift (a turn scripted as the answer to question X arrived while another
question was pending, so the scripted answer no longer fits), dialogues ending on a question,
error turns.

Run: `python -m evals.dialogue_eval [--data PATH] [--report PATH] [--chat rules|agent]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from evals.jsonl_rows import parsed_rows, peek_id
from tools.triage_models import LEVEL_ORDER, Level

EVALS_DIR = Path(__file__).resolve().parent
DEFAULT_DATA = EVALS_DIR / "data" / "dialogues.jsonl"
DEFAULT_REPORT = EVALS_DIR / "reports" / "dialogue_eval.json"

ChatMode = Literal["rules", "agent"]
CHAT_MODES: tuple[str, ...] = ("rules", "agent")
LANGS: tuple[str, ...] = ("zh", "en")
EMERGENCY_LEVELS: frozenset[Level] = frozenset({Level.emergency_ambulance, Level.emergency})
TOP_K = 3
CONFIRM_PREFIX = "confirm."  # the session's ask-back questions: "confirm.<fact field>"
AGENT_TURN_TIMEOUT_S = 180.0  # a hung generation becomes an error turn, not a hung eval
MAX_PRINTED_FAILURES = 60


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Dialogue:
    id: str
    lang: str
    turns: tuple[str, ...]
    expected_level: Level
    expected_departments: tuple[str, ...]
    facts_given_early: tuple[str, ...] = ()
    replies_to: tuple[str | None, ...] | None = None
    note: str = ""


@dataclass(frozen=True)
class RowError:
    line: int
    id: str | None
    stage: Literal["load", "run"]
    message: str


@dataclass
class LoadResult:
    dialogues: list[Dialogue] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # source line of each dialogue
    errors: list[RowError] = field(default_factory=list)


def _string_list(row: dict[str, Any], key: str, *, required: bool) -> list[str]:
    if key not in row:
        if required:
            raise ValueError(f"'{key}' is missing")
        return []
    value = row[key]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"'{key}' must be a list of non-empty strings")
    return value


def parse_dialogue(raw: str, line_no: int) -> Dialogue:
    """Parse one JSONL line; raises ValueError with a readable message when the row is unusable."""
    try:
        row = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(row, dict):
        raise ValueError(f"row must be a JSON object, got {type(row).__name__}")

    row_id = row.get("id")
    dialogue_id = str(row_id) if row_id is not None else f"line{line_no}"

    lang = row.get("lang")
    if lang not in LANGS:
        raise ValueError(f"'lang' must be one of {', '.join(LANGS)}, got {lang!r}")

    turns = _string_list(row, "turns", required=True)
    if not turns:
        raise ValueError("'turns' must hold at least one user message")

    level_raw = row.get("expected_level")
    try:
        level = Level(level_raw)
    except ValueError:
        allowed = ", ".join(lv.value for lv in LEVEL_ORDER)
        raise ValueError(f"'expected_level' {level_raw!r} is not one of: {allowed}") from None

    departments = _string_list(row, "expected_departments", required=True)
    early = _string_list(row, "facts_given_early", required=False)

    replies_to: tuple[str | None, ...] | None = None
    if row.get("replies_to") is not None:
        raw_replies = row["replies_to"]
        if not isinstance(raw_replies, list) or not all(r is None or isinstance(r, str) for r in raw_replies):
            raise ValueError("'replies_to' must be a list of question ids or nulls")
        if len(raw_replies) != len(turns):
            raise ValueError(f"'replies_to' has {len(raw_replies)} items but there are {len(turns)} turns")
        replies_to = tuple(raw_replies)

    note = row.get("note", "")
    return Dialogue(
        id=dialogue_id,
        lang=lang,
        turns=tuple(turns),
        expected_level=level,
        expected_departments=tuple(departments),
        facts_given_early=tuple(early),
        replies_to=replies_to,
        note=note if isinstance(note, str) else str(note),
    )


def load_dialogues(path: Path) -> LoadResult:
    """Read a JSONL dialogue file. Blank lines are skipped; bad lines become RowErrors."""
    result = LoadResult()
    for line_no, raw, dialogue in parsed_rows(path, parse_dialogue):
        if isinstance(dialogue, ValueError):
            result.errors.append(RowError(line=line_no, id=peek_id(raw), stage="load", message=str(dialogue)))
            continue
        result.dialogues.append(dialogue)
        result.lines.append(line_no)
    return result


# --------------------------------------------------------------------------- transcripts


@dataclass(frozen=True)
class TurnRecord:
    """What one user turn produced, whichever chat path ran it."""

    user_text: str
    kind: str  # "assessment" | "emergency" | "question" | "error" | "info" (agent: no card)
    level: Level | None  # the card's level; None when the turn produced no card
    departments: tuple[str, ...] = ()
    question_id: str | None = None
    reply_text: str = ""
    error_code: str | None = None


def record_from_reply(user_text: str, reply: Any) -> TurnRecord:
    """A TurnRecord from the rules session's TurnReply."""
    result = reply.result
    return TurnRecord(
        user_text=user_text,
        kind=reply.kind,
        level=Level(result.level) if result is not None else None,
        departments=tuple(d.id for d in result.departments) if result is not None else (),
        question_id=reply.question.id if reply.question is not None else None,
        reply_text=reply.text or "",
        error_code=reply.error_code,
    )


def _event_parts(event: Any) -> tuple[str, dict[str, Any]]:
    """(type, data) of a ChatEvent model or a plain dict."""
    if isinstance(event, dict):
        kind, data = event.get("type"), event.get("data")
    else:
        kind, data = getattr(event, "type", None), getattr(event, "data", None)
    return str(kind), data if isinstance(data, dict) else {}


_QUESTION_ID = re.compile(r"^[a-z][a-z0-9_.]*$")  # "age", "q.breathing", "confirm.age_months"


def _question_id(value: Any) -> str | None:
    """A question id from an id string or a MissingFact-like dict; question wording ("How old is
    the patient?") is not an id."""
    if isinstance(value, str):
        return value if _QUESTION_ID.match(value) else None
    if isinstance(value, dict):
        qid = value.get("id")
        return str(qid) if qid else None
    return None


def _department_ids(value: Any) -> tuple[str, ...]:
    ids: list[str] = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, str):
            ids.append(item)
        elif isinstance(item, dict) and item.get("id"):
            ids.append(str(item["id"]))
    return tuple(ids)


def _level(value: Any) -> Level | None:
    try:
        return Level(value)
    except ValueError:
        return None


def record_from_events(
    user_text: str, events: Iterable[Any], new_asked_ids: Sequence[str] = ()
) -> TurnRecord:
    """A TurnRecord from the chat service's events for one turn.

    The last card wins (a turn may refine its card). The question id comes from a "question" event,
    else from the card's question ("question", "missing_question", or "missing" when it is one
    question rather than the engine's whole list of open questions), else from the ids the session
    recorded as asked during the turn (`new_asked_ids`). The reply text is the "done" text, else
    the streamed tokens.
    """
    level: Level | None = None
    departments: tuple[str, ...] = ()
    question_id: str | None = None
    card_question_id: str | None = None
    done_text: str | None = None
    tokens: list[str] = []
    error_code: str | None = None
    for event in events:
        kind, data = _event_parts(event)
        if kind == "card":
            # ChatService nests the card: {"message_id", "card": {...} | None}; a None card (an
            # answer from the guidelines, no triage) adds nothing.
            card = data.get("card") if "card" in data else data
            if not isinstance(card, dict) or _level(card.get("level")) is None:
                continue
            # a later card (e.g. "updated" after fact extraction) replaces the earlier one whole
            level = _level(card.get("level"))
            departments = _department_ids(card.get("departments"))
            card_question_id = None
            for key in ("question", "missing_question", "missing"):
                value = card.get(key)
                if not isinstance(value, list):  # a list is every open question, not the one asked
                    card_question_id = card_question_id or _question_id(value)
        elif kind == "question":
            question_id = _question_id(data) or _question_id(data.get("question")) or question_id
        elif kind == "token":
            piece = data.get("text", data.get("token", ""))
            tokens.append(piece if isinstance(piece, str) else "")
        elif kind == "done":
            text = data.get("text")
            done_text = text if isinstance(text, str) else done_text
        elif kind == "error":
            error_code = str(data.get("code") or "error")
    question_id = question_id or card_question_id or (new_asked_ids[-1] if new_asked_ids else None)
    if level is None:
        kind_name = "error" if error_code is not None else "info"  # info: a reply without a card
    elif level in EMERGENCY_LEVELS:
        kind_name = "emergency"
    elif question_id is not None:
        kind_name = "question"
    else:
        kind_name = "assessment"
    return TurnRecord(
        user_text=user_text,
        kind=kind_name,
        level=level,
        departments=departments,
        question_id=question_id,
        reply_text=done_text if done_text is not None else "".join(tokens),
        error_code=error_code,
    )


# --------------------------------------------------------------------------- contradictions

# How a reply can name each level in words, besides the engine's own labels. A reply naming a
# level LESS urgent than its card contradicts the card (the card is the engine's decision).
_LEVEL_PHRASES: dict[Level, dict[str, tuple[str, ...]]] = {
    Level.self_care: {
        "zh": ("居家护理观察", "居家护理", "居家观察", "在家观察", "在家护理", "在家休息观察", "自行观察"),
        "en": (
            r"self[- ]care",
            r"care for (?:yourself|it|them|him|her) at home",
            r"home care",
            r"(?:watch|wait and see|rest) at home",
            r"at home and watch",
        ),
    },
    Level.routine: {
        "zh": ("近期门诊就诊", "近期门诊", "近期就诊", "预约门诊", "近几天预约", "择期就诊"),
        "en": (
            r"book a clinic visit",
            r"routine (?:appointment|visit)",
            r"(?:see a doctor|clinic visit|appointment) in the (?:next few|coming) days",
        ),
    },
    Level.urgent: {
        "zh": ("24小时内就医", "24小时内就诊", "24小时内看医生"),
        "en": (r"within 24 hours",),
    },
    Level.emergency: {
        "zh": ("立即去急诊", "现在就去急诊", "自行前往急诊"),
        "en": (r"go to the emergency department now", r"go to the (?:ed|a&e|emergency room) now"),
    },
}
# Words that negate a phrase when they come before it in the same clause ("不要在家观察",
# "do not just watch at home"). Only the clause is searched, so "It's not serious, care for
# yourself at home" still counts as naming self-care.
# Conditions ("如果不发烧可以在家观察", "if there is no fever, rest at home") are not negations.
_NEGATION_ZH = re.compile(r"不要|不能|不宜|不应|不必|不用|不可|不是|别|无需|勿|而非|并非")
_NEGATION_EN = re.compile(
    r"\b(?:not|never|don't|dont|doesn't|cannot|can't|shouldn't|instead of|rather than|no need to)\b", re.I
)
_CLAUSE_BREAK = re.compile(r"[，。,.;；!?！？:：\n]")
_EMERGENCY_NUMBER = "120"


def _phrase_pattern(phrase: str, zh: bool) -> re.Pattern[str]:
    if zh:
        return re.compile(re.escape(phrase))
    # not inside a longer word or hyphenated id such as the doc id "self-care-common"
    return re.compile(rf"(?<![\w-]){phrase}(?![\w-])", re.I)


_PATTERNS: dict[Level, list[tuple[re.Pattern[str], bool]]] = {
    level: [(_phrase_pattern(p, True), True) for p in by_lang["zh"]]
    + [(_phrase_pattern(p, False), False) for p in by_lang["en"]]
    for level, by_lang in _LEVEL_PHRASES.items()
}


def _negated(text: str, start: int, zh: bool) -> bool:
    clause_start = max((m.end() for m in _CLAUSE_BREAK.finditer(text, 0, start)), default=0)
    clause = text[clause_start:start]
    return bool((_NEGATION_ZH if zh else _NEGATION_EN).search(clause))


def find_contradictions(reply_text: str, card_level: Level | None) -> list[str]:
    """Ways `reply_text` contradicts a card of `card_level`; empty when it does not.

    - the reply names a level less urgent than the card (not negated in the same clause);
    - the card is an emergency level and the reply does not say 120.
    """
    if card_level is None:
        return []
    problems: list[str] = []
    for level, patterns in _PATTERNS.items():
        if level.rank >= card_level.rank:
            continue
        for pattern, zh in patterns:
            hit = next(
                (m for m in pattern.finditer(reply_text) if not _negated(reply_text, m.start(), zh)), None
            )
            if hit is not None:
                problems.append(f"names {level.value} ({hit.group(0)!r}) but the card is {card_level.value}")
                break
    if card_level in EMERGENCY_LEVELS and _EMERGENCY_NUMBER not in reply_text:
        problems.append(f"{card_level.value} card but the reply does not mention 120")
    return problems


# --------------------------------------------------------------------------- scoring


@dataclass
class DialogueScore:
    id: str
    lang: str
    expected_level: Level
    expected_departments: tuple[str, ...]
    final_level: Level | None
    final_departments: tuple[str, ...]
    level_correct: bool
    under_triage: bool
    over_triage: bool
    department_hit: bool | None  # None when the dialogue lists no expected department
    questions_asked: list[str]
    repeated_questions: list[str]
    early_fact_questions: list[str]
    contradictions: list[dict[str, Any]]  # {"turn": i, "problems": [...]}
    script_drift: list[dict[str, Any]]  # {"turn": i, "expected": id, "pending": id|None}
    ended_with_question: bool
    error_turns: int

    @property
    def passed(self) -> bool:
        return (
            self.level_correct
            and self.department_hit is not False
            and not self.repeated_questions
            and not self.early_fact_questions
            and not self.contradictions
        )

    def problems(self) -> list[str]:
        kinds: list[str] = []
        if self.under_triage or (self.final_level is None):
            kinds.append("under_triage")
        elif self.over_triage:
            kinds.append("over_triage")
        if self.department_hit is False:
            kinds.append("department")
        if self.repeated_questions:
            kinds.append("asked_twice")
        if self.early_fact_questions:
            kinds.append("asked_known_fact")
        if self.contradictions:
            kinds.append("contradiction")
        return kinds


def score_dialogue(dialogue: Dialogue, records: Sequence[TurnRecord]) -> DialogueScore:
    """Score one transcript (pure: no engine, no session)."""
    carded = [r for r in records if r.level is not None]
    final = carded[-1] if carded else None
    final_level = final.level if final is not None else None
    final_departments = final.departments if final is not None else ()

    asked = [r.question_id for r in records if r.question_id]
    counts = Counter(asked)
    repeated = sorted(q for q, n in counts.items() if n > 1)
    early = sorted({q for q in asked if q in set(dialogue.facts_given_early)})

    contradictions = []
    for index, record in enumerate(records):
        problems = find_contradictions(record.reply_text, record.level)
        if problems:
            contradictions.append({"turn": index, "problems": problems})

    drift = []
    if dialogue.replies_to is not None:
        for index, expected in enumerate(dialogue.replies_to[: len(records)]):
            if expected is None:
                continue
            pending = records[index - 1].question_id if index > 0 else None
            if pending != expected:
                drift.append({"turn": index, "expected": expected, "pending": pending})

    expected_rank = dialogue.expected_level.rank
    department_hit = (
        any(d in set(dialogue.expected_departments) for d in final_departments[:TOP_K])
        if dialogue.expected_departments
        else None
    )
    return DialogueScore(
        id=dialogue.id,
        lang=dialogue.lang,
        expected_level=dialogue.expected_level,
        expected_departments=dialogue.expected_departments,
        final_level=final_level,
        final_departments=final_departments,
        level_correct=final_level == dialogue.expected_level,
        under_triage=final_level is None or final_level.rank < expected_rank,
        over_triage=final_level is not None and final_level.rank > expected_rank,
        department_hit=department_hit,
        questions_asked=asked,
        repeated_questions=repeated,
        early_fact_questions=early,
        contradictions=contradictions,
        script_drift=drift,
        ended_with_question=bool(records) and records[-1].kind == "question",
        error_turns=sum(r.kind == "error" for r in records),
    )


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def summarize(scores: Sequence[DialogueScore]) -> dict[str, Any]:
    """Aggregate metrics over dialogue scores. Rates are None when their denominator is empty."""
    n = len(scores)
    with_departments = [s for s in scores if s.department_hit is not None]
    expected_emergency = [s for s in scores if s.expected_level in EMERGENCY_LEVELS]
    return {
        "n": n,
        "pass_rate": _rate(sum(s.passed for s in scores), n),
        "level_accuracy": _rate(sum(s.level_correct for s in scores), n),
        "under_triage_n": sum(s.under_triage for s in scores),
        "over_triage_n": sum(s.over_triage for s in scores),
        "emergency_n": len(expected_emergency),
        "emergency_recall": _rate(
            sum(s.final_level in EMERGENCY_LEVELS for s in expected_emergency), len(expected_emergency)
        ),
        "department_n": len(with_departments),
        "department_top3": _rate(
            sum(bool(s.department_hit) for s in with_departments), len(with_departments)
        ),
        "asked_twice_dialogues": sum(bool(s.repeated_questions) for s in scores),
        "asked_known_fact_dialogues": sum(bool(s.early_fact_questions) for s in scores),
        "contradiction_dialogues": sum(bool(s.contradictions) for s in scores),
        "contradicting_replies": sum(len(s.contradictions) for s in scores),
        "script_drift_dialogues": sum(bool(s.script_drift) for s in scores),
        "ended_with_question_n": sum(s.ended_with_question for s in scores),
        "error_turns": sum(s.error_turns for s in scores),
        "questions_asked": sum(len(s.questions_asked) for s in scores),
    }


def compute_metrics(scores: Sequence[DialogueScore]) -> dict[str, Any]:
    return {
        "overall": summarize(scores),
        "by_language": {
            lang: summarize([s for s in scores if s.lang == lang])
            for lang in sorted({s.lang for s in scores})
        },
    }


# --------------------------------------------------------------------------- chat paths


class ChatTurnService(Protocol):
    """What the agent path needs: assistant.agent.pipeline.ChatService or any fake of it."""

    def turn(self, session: Any, text: str) -> AsyncIterator[Any]: ...


class AgentUnavailableError(RuntimeError):
    """The agent chat path was asked for but cannot be built."""


def _new_session() -> Any:
    from assistant.session import ConversationSession  # the eval's loading/metrics need no engine

    return ConversationSession()


def run_rules_dialogue(dialogue: Dialogue) -> list[TurnRecord]:
    session = _new_session()
    return [record_from_reply(text, session.handle_user_message(text)) for text in dialogue.turns]


async def run_agent_dialogue(
    dialogue: Dialogue, service: ChatTurnService, *, turn_timeout_s: float = AGENT_TURN_TIMEOUT_S
) -> list[TurnRecord]:
    session = _new_session()
    records: list[TurnRecord] = []
    for text in dialogue.turns:
        asked_before = len(getattr(session, "asked_ids", []))

        async def collect(user_text: str = text) -> list[Any]:
            return [event async for event in service.turn(session, user_text)]

        try:
            events = await asyncio.wait_for(collect(), timeout=turn_timeout_s)
        except TimeoutError:
            records.append(TurnRecord(user_text=text, kind="error", level=None, error_code="eval_timeout"))
            continue
        new_ids = list(getattr(session, "asked_ids", []))[asked_before:]
        records.append(record_from_events(text, events, new_ids))
    return records


Outcome = list[TurnRecord] | Exception


def _run_rules_safely(dialogue: Dialogue) -> Outcome:
    try:
        return run_rules_dialogue(dialogue)
    except Exception as exc:
        return exc


async def _run_agent_all(dialogues: Sequence[Dialogue], service: ChatTurnService) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for dialogue in dialogues:  # one at a time: the local model serves one generation at once
        try:
            outcomes.append(await run_agent_dialogue(dialogue, service))
        except Exception as exc:
            outcomes.append(exc)
    return outcomes


def make_agent_service() -> ChatTurnService:
    """The real ChatService with the configured LLM and knowledge base (imported lazily)."""
    try:
        from assistant.agent.pipeline import ChatService
        from assistant.llm.factory import make_llm
    except ImportError as exc:
        raise AgentUnavailableError(
            f"agent chat path unavailable / 智能体对话不可用 (assistant.agent.pipeline): {exc}"
        ) from exc
    from assistant.settings import get_settings

    settings = get_settings()
    try:
        from knowledge.api import open_knowledge_base

        kb = open_knowledge_base(settings)
    except Exception:  # the agent falls back to no retrieval; the eval still runs
        kb = None
    return ChatService(settings, make_llm(settings), kb)


# --------------------------------------------------------------------------- running


def _known_ids() -> tuple[set[str] | None, set[str] | None]:
    """Department and question ids of the rule data, for advisory warnings about the data file."""
    try:
        import yaml

        from assistant.settings import get_settings
        from tools.rulebook import load_rulebook

        catalogue = yaml.safe_load(get_settings().department_catalogue.read_text(encoding="utf-8"))
        departments = {str(d["id"]) for d in catalogue["departments"]}
        questions = set(load_rulebook().questions)
        return departments, questions
    except Exception:  # advisory only; never stops the eval
        return None, None


def _transcript(records: Sequence[TurnRecord]) -> list[dict[str, Any]]:
    return [
        {**asdict(r), "level": r.level.value if r.level else None, "departments": list(r.departments)}
        for r in records
    ]


def _score_dict(score: DialogueScore, records: Sequence[TurnRecord], note: str) -> dict[str, Any]:
    return {
        "id": score.id,
        "lang": score.lang,
        "passed": score.passed,
        "problems": score.problems(),
        "expected_level": score.expected_level.value,
        "final_level": score.final_level.value if score.final_level else None,
        "expected_departments": list(score.expected_departments),
        "final_departments": list(score.final_departments),
        "questions_asked": score.questions_asked,
        "repeated_questions": score.repeated_questions,
        "early_fact_questions": score.early_fact_questions,
        "contradictions": score.contradictions,
        "script_drift": score.script_drift,
        "ended_with_question": score.ended_with_question,
        "note": note,
        "transcript": _transcript(records),
    }


def run(
    data: Path | None = None,
    report: Path | None = None,
    chat: str = "rules",
    *,
    service: ChatTurnService | None = None,
    quiet: bool = False,
) -> dict:
    """Run every dialogue in `data` through the `chat` path, print a table, write a JSON report.

    `service` (any object with an async-iterator `turn(session, text)`) replaces the real
    ChatService on the agent path. Bad lines and dialogues that crash are counted in
    report["errors"]; they never abort the run. Raises FileNotFoundError when the data file is
    missing, ValueError for an unknown chat mode, AgentUnavailableError when the agent path
    cannot be built.
    """
    if chat not in CHAT_MODES:
        raise ValueError(f"unknown chat path {chat!r} / 未知的对话方式; use one of: {', '.join(CHAT_MODES)}")
    data_path = Path(data) if data is not None else DEFAULT_DATA
    report_path = Path(report) if report is not None else DEFAULT_REPORT
    if not data_path.is_file():
        raise FileNotFoundError(f"dialogue eval data not found / 找不到对话评测数据: {data_path}")

    loaded = load_dialogues(data_path)
    if chat == "agent":
        agent = service if service is not None else make_agent_service()
        # one event loop for the whole run: a service may hold loop-bound locks and queues
        outcomes = asyncio.run(_run_agent_all(loaded.dialogues, agent))
    else:
        outcomes = [_run_rules_safely(d) for d in loaded.dialogues]

    errors = list(loaded.errors)
    scores: list[DialogueScore] = []
    details: list[dict[str, Any]] = []
    for dialogue, line_no, outcome in zip(loaded.dialogues, loaded.lines, outcomes, strict=True):
        if isinstance(outcome, Exception):  # one crashing dialogue must not hide the others' metrics
            errors.append(RowError(line_no, dialogue.id, "run", f"{type(outcome).__name__}: {outcome}"))
            continue
        score = score_dialogue(dialogue, outcome)
        scores.append(score)
        details.append(_score_dict(score, outcome, dialogue.note))

    errors.sort(key=lambda e: e.line)
    departments, questions = _known_ids()
    unknown_departments = (
        sorted({d for x in loaded.dialogues for d in x.expected_departments} - departments)
        if departments
        else []
    )
    named_questions = {
        q
        for x in loaded.dialogues
        for q in (*x.facts_given_early, *(x.replies_to or ()))
        if q and not q.startswith(CONFIRM_PREFIX)
    }
    unknown_questions = sorted(named_questions - questions) if questions else []
    report_data: dict[str, Any] = {
        "data": str(data_path),
        "chat": chat,
        "n_rows": len(loaded.dialogues) + len(loaded.errors),
        "n_scored": len(scores),
        "n_errors": len(errors),
        "errors": [asdict(e) for e in errors],
        "unknown_expected_departments": unknown_departments,
        "unknown_question_ids": unknown_questions,
        **compute_metrics(scores),
        "dialogues": details,
    }
    if not quiet:
        print(format_report(report_data))
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report_data, ensure_ascii=False, indent=2), encoding="utf-8")
    if not quiet:
        print(f"\nreport written to {report_path}")
    return report_data


# --------------------------------------------------------------------------- printing


def _fmt_rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:6.1%}"


_TABLE_ROWS: list[tuple[str, str, bool]] = [  # label, key, is_rate
    ("pass rate", "pass_rate", True),
    ("final level accuracy", "level_accuracy", True),
    ("under-triaged", "under_triage_n", False),
    ("over-triaged", "over_triage_n", False),
    ("emergency recall", "emergency_recall", True),
    ("department top-3", "department_top3", True),
    ("asked twice (must 0)", "asked_twice_dialogues", False),
    ("asked known fact (0)", "asked_known_fact_dialogues", False),
    ("contradicting (0)", "contradiction_dialogues", False),
    ("script drift", "script_drift_dialogues", False),
    ("ended on a question", "ended_with_question_n", False),
    ("error turns", "error_turns", False),
    ("dialogues", "n", False),
]


def format_report(report: dict[str, Any]) -> str:
    overall = report["overall"]
    languages = list(report["by_language"])
    lines = [
        f"Dialogue eval ({report['chat']}): {report['data']}",
        f"rows {report['n_rows']}  scored {report['n_scored']}  errors {report['n_errors']}",
        "",
        f"{'metric':<24}{'all':>9}" + "".join(f"{lang:>9}" for lang in languages),
    ]
    for label, key, is_rate in _TABLE_ROWS:
        cells = [overall[key]] + [report["by_language"][lang][key] for lang in languages]
        shown = [_fmt_rate(v) if is_rate else str(v) for v in cells]
        lines.append(f"{label:<24}" + "".join(f"{s:>9}" for s in shown))

    failing = [d for d in report["dialogues"] if not d["passed"]]
    if failing:
        lines += ["", f"failing dialogues ({len(failing)}):"]
        for d in failing[:MAX_PRINTED_FAILURES]:
            lines.append(
                f"  {d['id']:<6}{d['lang']:<4}{'+'.join(d['problems']):<28} expected {d['expected_level']}"
                f" {d['expected_departments']} got {d['final_level']} {d['final_departments']}"
            )
            for key in ("repeated_questions", "early_fact_questions"):
                if d[key]:
                    lines.append(f"{'':>10}{key}: {d[key]}")
            for c in d["contradictions"]:
                lines.append(f"{'':>10}turn {c['turn']}: {'; '.join(c['problems'])}")
        if len(failing) > MAX_PRINTED_FAILURES:
            lines.append(f"  ... {len(failing) - MAX_PRINTED_FAILURES} more in the JSON report")
    drifting = [d for d in report["dialogues"] if d["script_drift"]]
    if drifting:
        lines += [
            "",
            "script drift (a scripted answer met another question; the dialogue may need updating):",
        ]
        for d in drifting:
            parts = [
                f"turn {x['turn']} scripted for {x['expected']}, pending {x['pending']}"
                for x in d["script_drift"]
            ]
            lines.append(f"  {d['id']:<6}" + "; ".join(parts))
    if report["errors"]:
        lines += ["", f"errors ({len(report['errors'])}):"]
        lines += [
            f"  line {e['line']} [{e['stage']}] {e['id'] or ''}: {e['message']}" for e in report["errors"]
        ]
    for key, label in (
        ("unknown_expected_departments", "expected department ids not in catalogue"),
        ("unknown_question_ids", "question ids not in questions.yaml"),
    ):
        if report.get(key):
            lines += ["", f"warning: {label}: {report[key]}"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the scripted conversation eval.")
    parser.add_argument("--data", type=Path, default=None, help=f"JSONL file (default {DEFAULT_DATA})")
    parser.add_argument("--report", type=Path, default=None, help=f"JSON report (default {DEFAULT_REPORT})")
    parser.add_argument("--chat", choices=CHAT_MODES, default="rules", help="chat path (default rules)")
    args = parser.parse_args(argv)
    try:
        run(args.data, args.report, args.chat)
    except (FileNotFoundError, AgentUnavailableError) as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
