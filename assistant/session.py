"""A triage conversation: facts accumulate across turns and the engine re-runs after every answer.

    session = ConversationSession()
    reply = session.handle_user_message("孩子拉肚子两天了还能玩")   # kind "question": asks the age
    reply = session.handle_user_message("3岁")                     # next question, or the assessment

Per turn: (1) read the message as the answer to the pending question (yes/no -> the question's
yes_text/no_text, numbers -> a fact) or as new description; (2) merge the facts it gives, asking
back when a value contradicts an earlier one; (3) append it to the description and run
`tools.triage.assess`; (4) a red flag gives the emergency advice at once, whatever was pending;
(5) otherwise ask the first engine question never asked before and not yet answered; (6) with no
question left, give the assessment. All wording comes from prompts/session_templates.yaml; all
clinical decisions are the engine's. The state is plain JSON (`to_dict` / `from_dict`) so a server
can persist and resume it.
"""

from __future__ import annotations

import re
import uuid
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, Field

from assistant import session_text as st
from assistant.answers import classify_yes_no, conflict_choice, is_bare_number, parse_small_age
from tools.fact_extraction import extract_facts
from tools.rulebook import Rulebook, load_rulebook
from tools.triage import TriageInputError, assess, detect_lang
from tools.triage_models import (
    Facts,
    Lang,
    Level,
    MissingFact,
    TriageInput,
    TriageResult,
    VitalSigns,
)

MAX_MESSAGE_CHARS = 4000
MAX_DESCRIPTION_CHARS = 4000  # TriageInput.text limit: the whole conversation is assessed at once
EMERGENCY_LEVELS = frozenset({Level.emergency_ambulance, Level.emergency})
_HAS_CONTENT = re.compile(r"[\w\u4e00-\u9fff]")
_SEGMENT_SEPARATOR = "\n"  # a clause break for the concept matcher, so negations stay local

# Facts asked back when a later turn gives another value. Sex and duration are not: pronouns
# ("她") and durations of new symptoms ("今天早上开始吐") legitimately differ between turns, so
# the first value is kept.
ASK_BACK_FIELDS = (
    "age_months",
    "pregnant",
    "pregnancy_weeks",
    "vitals.temperature_c",
    "vitals.heart_rate",
    "vitals.respiratory_rate",
    "vitals.spo2",
    "vitals.systolic_bp",
    "vitals.diastolic_bp",
    "vitals.glucose_mmol",
)
KEEP_FIRST_FIELDS = ("sex", "duration_hours")
# Differences smaller than this are the same value said twice (absolute, else 5 % relative).
_ABSOLUTE_TOLERANCE = {
    "vitals.temperature_c": 0.2,
    "vitals.spo2": 1.0,
    "age_months": 0.5,
    "pregnancy_weeks": 0.5,
}
_RELATIVE_TOLERANCE = 0.05

ReplyKind = Literal["assessment", "emergency", "question", "error"]
FactValue = bool | float | str


class TurnReply(BaseModel):
    kind: ReplyKind
    text: str  # in the session's language (both languages when it is not known yet)
    result: TriageResult | None = None
    question: MissingFact | None = None
    error_code: str | None = None


class FactConflict(BaseModel):
    """One fact given twice with different values, waiting for the user to say which is right."""

    field: str  # dotted Facts path, e.g. "vitals.temperature_c"
    earlier: FactValue
    later: FactValue


# ------------------------------------------------------------------------------ fact helpers


def get_fact(facts: Facts, path: str) -> Any:
    value: Any = facts
    for part in path.split("."):
        value = getattr(value, part, None)
    return value


def set_fact(facts: Facts, path: str, value: Any) -> Facts:
    if path.startswith("vitals."):
        vitals = facts.vitals.model_copy(update={path.removeprefix("vitals."): value})
        return facts.model_copy(update={"vitals": VitalSigns.model_validate(vitals.model_dump())})
    return Facts.model_validate({**facts.model_dump(), path: value})


def _scalar_paths() -> list[str]:
    plain = [name for name in Facts.model_fields if name not in ("vitals", "chronic_conditions")]
    return plain + [f"vitals.{name}" for name in VitalSigns.model_fields]


def _same_value(path: str, a: FactValue, b: FactValue) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
        return a == b
    tolerance = _ABSOLUTE_TOLERANCE.get(path, _RELATIVE_TOLERANCE * max(abs(a), 1.0))
    return abs(a - b) <= tolerance


def merge_facts(known: Facts, new: Facts) -> tuple[Facts, list[FactConflict]]:
    """Unknown fields are filled; a different value for an ask-back field becomes a conflict
    (the known value stays until the user confirms); other fields keep their first value."""
    merged = known
    conflicts: list[FactConflict] = []
    for path in _scalar_paths():
        value = get_fact(new, path)
        current = get_fact(merged, path)
        if value is None:
            continue
        if current is None:
            merged = set_fact(merged, path, value)
        elif path in ASK_BACK_FIELDS and not _same_value(path, current, value):
            conflicts.append(FactConflict(field=path, earlier=current, later=value))
    if new.chronic_conditions:
        union = sorted(set(merged.chronic_conditions) | set(new.chronic_conditions))
        merged = merged.model_copy(update={"chronic_conditions": union})
    return merged, conflicts


def _is_bool_fact(path: str) -> bool:
    field = Facts.model_fields.get(path)
    return field is not None and field.annotation in (bool | None, bool)


@lru_cache(maxsize=1)
def _rulebook() -> Rulebook:
    return load_rulebook()


def localized_question(question: MissingFact, lang: Lang) -> MissingFact:
    """The same engine question in another language (used when the user switches language)."""
    q = _rulebook().questions.get(question.id)
    if q is None:
        return question
    return question.model_copy(
        update={
            "question": q.zh if lang == "zh" else q.en,
            "yes_text": q.yes_text.get(lang) if q.yes_text else None,
            "no_text": q.no_text.get(lang) if q.no_text else None,
        }
    )


# ------------------------------------------------------------------------------ the session


class ConversationSession(BaseModel):
    session_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    lang: Lang | None = None  # from the first message unless set explicitly
    turns: list[str] = Field(default_factory=list)  # accepted user messages, in order
    description: str = ""  # everything the engine reads: user text plus yes/no answer sentences
    facts: Facts = Field(default_factory=Facts)
    asked_ids: list[str] = Field(default_factory=list)
    pending_question: MissingFact | None = None
    pending_conflicts: list[FactConflict] = Field(default_factory=list)
    last_result: TriageResult | None = None
    shown_warnings: list[str] = Field(default_factory=list)  # fact warnings already shown once
    confirmed_fields: list[str] = Field(default_factory=list)  # facts the user settled when asked back
    # The service desk's state (assistant/visit_flow.py): patient id, offered slots, booking, visit.
    desk: dict[str, Any] = Field(default_factory=dict)

    # ---- persistence

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConversationSession:
        return cls.model_validate(data)

    # ---- public API

    def set_lang(self, lang: Lang) -> None:
        self.lang = lang
        if self.pending_question is not None:
            self.pending_question = localized_question(self.pending_question, lang)

    def handle_user_message(self, text: str) -> TurnReply:
        """One user turn -> one reply. Bad input gives kind "error" and leaves the state as it was."""
        problem = self._check_message(text)
        if problem is not None:
            return problem
        work = self.model_copy(deep=True)  # the turn runs on a copy: any error leaves self untouched
        try:
            reply = work._take_turn(text.strip())
        except TriageInputError as exc:
            lang = self.lang or detect_lang(text)
            return self._error(exc.code, "error_engine", message=exc.message(lang))
        if reply.kind != "error":
            for name in type(self).model_fields:
                setattr(self, name, getattr(work, name))
        return reply

    def handle_reassess(self) -> TurnReply:
        """Decide again after facts changed outside a user turn (e.g. facts the LLM extracted and
        the engine validated). A question asked in this same turn may be asked again."""
        pending = self.pending_question
        if pending is not None and self.asked_ids and self.asked_ids[-1] == pending.id:
            self.asked_ids.pop()
        self.pending_question = None
        return self._respond([])

    # ---- input checks

    def _error(self, code: str, template: str, **params: object) -> TurnReply:
        return TurnReply(kind="error", text=st.render_any(template, self.lang, **params), error_code=code)

    def _check_message(self, text: object) -> TurnReply | None:
        if not isinstance(text, str) or not text.strip():
            return self._error("empty_input", "error_empty_input")
        if len(text) > MAX_MESSAGE_CHARS:
            return self._error("input_too_long", "error_too_long", limit=MAX_MESSAGE_CHARS, length=len(text))
        if not _HAS_CONTENT.search(text):
            return self._error("no_content", "error_no_content")
        return None

    # ---- one turn

    def _take_turn(self, text: str) -> TurnReply:
        if self.lang is None:
            self.lang = detect_lang(text)
        notes: list[str] = []
        if self.pending_conflicts:
            segments, new_facts = self._answer_conflict(text, notes)
        elif self.pending_question is not None:
            question, self.pending_question = self.pending_question, None
            segments, new_facts = self._answer_question(question, text)
        else:
            segments, new_facts = [text], extract_facts(text, lang=self.lang).facts

        self.facts, conflicts = merge_facts(self.facts, new_facts)
        self.pending_conflicts += [
            c for c in conflicts if c.field not in {p.field for p in self.pending_conflicts}
        ]
        description = (
            _SEGMENT_SEPARATOR.join([self.description, *segments]).strip() if segments else self.description
        )
        if len(description) > MAX_DESCRIPTION_CHARS:
            return self._error(
                "conversation_too_long", "error_conversation_too_long", limit=MAX_DESCRIPTION_CHARS
            )
        self.description = description
        self.turns.append(text)
        return self._respond(notes)

    def _respond(self, notes: list[str]) -> TurnReply:
        result = self._assess()
        if result.level in EMERGENCY_LEVELS:
            self.pending_question = None
            self.pending_conflicts = []
            return TurnReply(kind="emergency", text=self._emergency_text(result), result=result)
        if self.pending_conflicts:
            question = self._conflict_question(self.pending_conflicts[0])
            return TurnReply(
                kind="question", text=_join(notes, question.question), result=result, question=question
            )
        question = self._next_question(result)
        if question is not None:
            self.pending_question = question
            self.asked_ids.append(question.id)
            text = st.render(
                "question",
                self._lang,
                summary=self._summary(result),
                question=question.question,
                hint=st.render(f"hint_{question.kind}", self._lang),
            )
            return TurnReply(
                kind="question",
                text=_join(notes, self._new_warnings(result), text),
                result=result,
                question=question,
            )
        return TurnReply(kind="assessment", text=_join(notes, self._assessment_text(result)), result=result)

    @property
    def _lang(self) -> Lang:
        return self.lang or "zh"

    def _assess(self) -> TriageResult:
        """Assess with the known facts; with a value still in doubt, also with the new value, and
        keep the more urgent result (uncertainty errs to the more urgent level)."""
        result = assess(TriageInput(text=self.description, lang=self.lang, facts=self.facts))
        for conflict in list(self.pending_conflicts):
            variant_facts = set_fact(self.facts, conflict.field, conflict.later)
            variant = assess(TriageInput(text=self.description, lang=self.lang, facts=variant_facts))
            if variant.level.rank > result.level.rank:
                result = variant
                if variant.level in EMERGENCY_LEVELS:
                    self.facts = variant_facts  # the emergency rests on this value: keep it
        self._absorb(result.facts)
        self.last_result = result
        return result

    def _absorb(self, engine_facts: Facts) -> None:
        """Facts the engine read from the whole description fill fields still unknown."""
        for path in _scalar_paths():
            if get_fact(self.facts, path) is None and get_fact(engine_facts, path) is not None:
                self.facts = set_fact(self.facts, path, get_fact(engine_facts, path))

    def _next_question(self, result: TriageResult) -> MissingFact | None:
        for question in result.missing:
            if question.id in self.asked_ids:
                continue
            if question.fact and get_fact(self.facts, question.fact) is not None:
                continue
            return question
        return None

    # ---- reading answers

    def _answer_question(self, question: MissingFact, text: str) -> tuple[list[str], Facts]:
        if question.kind == "yes_no":
            return self._answer_yes_no(question, text)
        if question.kind == "number" and question.fact:
            return self._answer_number(question.fact, text)
        return [text], extract_facts(text, lang=self._lang).facts

    def _answer_yes_no(self, question: MissingFact, text: str) -> tuple[list[str], Facts]:
        answer = classify_yes_no(text)
        if answer.label is None:  # a description rather than yes/no: the engine reads it as text
            return [text], extract_facts(text, lang=self._lang).facts
        segments: list[str] = []
        facts = Facts()
        if answer.label == "yes" and question.yes_text:
            segments.append(question.yes_text)
        elif answer.label == "no" and question.no_text:
            segments.append(question.no_text)
        if question.fact and _is_bool_fact(question.fact) and answer.label != "unknown":
            facts = set_fact(facts, question.fact, answer.label == "yes")
        if answer.remainder:
            segments.append(answer.remainder)
            facts, _ = merge_facts(facts, extract_facts(answer.remainder, lang=self._lang).facts)
        return segments, facts

    def _answer_number(self, field: str, text: str) -> tuple[list[str], Facts]:
        answer = classify_yes_no(text)
        if answer.label is not None and not answer.remainder:
            return [], Facts()  # "不知道" / "没量": nothing learned, the engine keeps its caution
        if field == "age_months":
            small = parse_small_age(text)
            if small is not None:  # "5个月" alone would read as a duration
                segments = [st.age_sentence(small.months, self._lang)]
                facts = set_fact(Facts(), field, small.months)
                if small.remainder:
                    segments.append(small.remainder)
                    facts, _ = merge_facts(facts, extract_facts(small.remainder, lang=self._lang).facts)
                return segments, facts
        extracted = extract_facts(text, lang=self._lang)
        if get_fact(extracted.facts, field) is not None or not is_bare_number(text):
            return [text], extracted.facts
        # A bare number: read it in the question's context, so "39" is a temperature and the
        # extractor's plausibility checks and unit guesses (°F, mg/dL) apply.
        in_context = st.number_context(field, self._lang) + text
        contextual = extract_facts(in_context, lang=self._lang)
        if get_fact(contextual.facts, field) is not None or contextual.warnings:
            return [in_context], contextual.facts
        return [text], extracted.facts

    def _answer_conflict(self, text: str, notes: list[str]) -> tuple[list[str], Facts]:
        conflict = self.pending_conflicts.pop(0)
        name = st.field_name(conflict.field, self._lang)
        value = self._chosen_value(conflict, text)
        if conflict.field not in self.confirmed_fields:
            self.confirmed_fields.append(conflict.field)
        if value is not None:
            self.facts = set_fact(self.facts, conflict.field, value)
            notes.append(
                st.render(
                    "conflict_resolved", self._lang, field=name, value=self._show(conflict.field, value)
                )
            )
            return [], Facts()
        # No clear choice: take the value that gives the more urgent level, and read the text
        # as an ordinary message (it may describe something new).
        value = self._more_urgent_value(conflict)
        self.facts = set_fact(self.facts, conflict.field, value)
        notes.append(
            st.render("conflict_unclear", self._lang, field=name, value=self._show(conflict.field, value))
        )
        return [text], extract_facts(text, lang=self._lang).facts

    def _chosen_value(self, conflict: FactConflict, text: str) -> FactValue | None:
        stated = self._value_in_answer(conflict.field, text)
        if stated is not None:
            for candidate in (conflict.earlier, conflict.later):
                if _same_value(conflict.field, candidate, stated):
                    return candidate
            return stated  # a third value, given in direct reply to the question
        choice = conflict_choice(text)
        if choice is None:
            return None
        return conflict.earlier if choice == "earlier" else conflict.later

    def _value_in_answer(self, field: str, text: str) -> FactValue | None:
        if field == "age_months":
            small = parse_small_age(text)
            if small is not None:
                return small.months
        value = get_fact(extract_facts(text, lang=self._lang).facts, field)
        if value is None and is_bare_number(text):
            in_context = st.number_context(field, self._lang) + text
            value = get_fact(extract_facts(in_context, lang=self._lang).facts, field)
        return value

    def _more_urgent_value(self, conflict: FactConflict) -> FactValue:
        def level_with(value: FactValue) -> int:
            facts = set_fact(self.facts, conflict.field, value)
            return assess(TriageInput(text=self.description or "-", lang=self.lang, facts=facts)).level.rank

        return (
            conflict.later if level_with(conflict.later) > level_with(conflict.earlier) else conflict.earlier
        )

    # ---- wording

    def _show(self, field: str, value: FactValue) -> str:
        return st.format_value(field, value, self._lang)

    def _conflict_question(self, conflict: FactConflict) -> MissingFact:
        text = st.render(
            "conflict_question",
            self._lang,
            field=st.field_name(conflict.field, self._lang),
            old=self._show(conflict.field, conflict.earlier),
            new=self._show(conflict.field, conflict.later),
        )
        return MissingFact(id=f"confirm.{conflict.field}", question=text, kind="choice", fact=conflict.field)

    def _departments(self, result: TriageResult) -> str:
        return st.render("list_separator", self._lang).join(d.name for d in result.departments)

    def _summary(self, result: TriageResult) -> str:
        return st.render(
            "summary", self._lang, level_label=result.level_label, departments=self._departments(result)
        )

    def _emergency_text(self, result: TriageResult) -> str:
        names = st.render("list_separator", self._lang).join(dict.fromkeys(f.name for f in result.red_flags))
        red_flags = st.render("red_flags", self._lang, names=names) if names else ""
        return st.render(
            result.level.value,
            self._lang,
            level_label=result.level_label,
            red_flags=red_flags,
            advice=result.advice,
        )

    def _visible_warnings(self, result: TriageResult) -> list[str]:
        # Text-versus-stored-fact conflicts are settled by asking back, so the engine's notes about
        # them would only confuse; "multiple_values" is the extractor's note about several ages.
        hidden = {"conflicting_fact"}
        if "age_months" in self.confirmed_fields:
            hidden.add("multiple_values")
        return [w.message for w in result.warnings if w.code not in hidden]

    def _new_warnings(self, result: TriageResult) -> str:
        fresh = [m for m in self._visible_warnings(result) if m not in self.shown_warnings]
        self.shown_warnings += fresh
        return self._warning_block(fresh).strip()

    def _warning_block(self, messages: list[str]) -> str:
        if not messages:
            return ""
        lines = "\n".join(st.render("warning_line", self._lang, message=m) for m in messages)
        return st.render("warnings", self._lang, lines=lines)

    def _assessment_text(self, result: TriageResult) -> str:
        departments = "\n".join(
            st.render("department_line", self._lang, rank=rank, name=d.name, reason=d.reason)
            for rank, d in enumerate(result.departments, start=1)
        )
        care = _rulebook().advice.care_settings.get(result.care_setting.value)
        warnings = self._visible_warnings(result)
        self.shown_warnings += [m for m in warnings if m not in self.shown_warnings]
        return st.render(
            "assessment",
            self._lang,
            level_label=result.level_label,
            care_setting=care.get(self._lang) if care else result.care_setting.value,
            departments=departments,
            advice=result.advice,
            warnings=self._warning_block(warnings),
            disclaimer=result.disclaimer,
        )


def _join(*parts: str | list[str]) -> str:
    flat: list[str] = []
    for part in parts:
        flat += part if isinstance(part, list) else [part]
    return "\n".join(p for p in flat if p)
