"""Follow-up conversations after a visit, a discharge or an operation, and chronic check-ins.

    plan = load_plans().plan("post_surgery")
    for due_at, question in schedule("post_surgery", surgery_time, "Asia/Shanghai"):
        ...                                          # the reminders scheduler fires each question
    conversation = FollowUpConversation(plan_id="post_surgery", patient_id="p1")
    outcome = answer(conversation, "ps.wound_redness", "挺好的，就是胸口压着疼", "zh", check_id="day3")
    outcome.escalation      # {level, red_flags, advice (says 120), call_120, clinic_flag: True}

Every answer goes through the triage engine first (tools.triage.assess, with the patient's known
facts): a red flag or an emergency level escalates at once, whatever question was asked and
however much small talk surrounds it. Then the plan's own rules (tools/data/followup_plans.yaml)
may raise the level (a "yes" to a worrying question, wound discharge + fever in the same check),
and check-in values (blood pressure, glucose) are parsed, converted and judged by the engine's
vital-sign rules. Levels only ever go up. The conversation records every answer with the rule ids
and engine/knowledge versions behind it, so tools.handoff can build the clinician's summary.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from assistant.answers import classify_yes_no
from tools.fact_extraction import extract_facts
from tools.handoff import MeasuredReading
from tools.rulebook import load_rulebook
from tools.triage import TriageInputError, assess
from tools.triage_models import (
    Citation,
    Facts,
    Lang,
    Level,
    RedFlagMatch,
    RuleFiring,
    TriageInput,
    TriageResult,
    VitalSigns,
    max_level,
)

PLANS_FILE = Path(__file__).resolve().parent.parent / "tools" / "data" / "followup_plans.yaml"
MAX_ANSWER_CHARS = 1000
ENGINE_TEXT_LIMIT = 4000
EMERGENCY_LEVELS = frozenset({Level.emergency, Level.emergency_ambulance})
IGNORED_ENGINE_RULES = frozenset({"FALLBACK-UNRECOGNISED"})  # "nothing recognised" is not a finding
_HAS_CONTENT = re.compile(r"[\w\u4e00-\u9fff]")

AnswerType = Literal["yes_no", "free_text", "bp", "glucose"]
AnswerLabel = Literal["yes", "no", "unknown", "described", "value"]


class FollowUpError(ValueError):
    """A request that names something that does not exist (plan, question, check, time zone)."""

    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(en)
        self.code, self.zh, self.en = code, zh, en

    def message(self, lang: str | None) -> str:
        return self.zh if lang == "zh" else self.en


# ------------------------------------------------------------------------------ plan data


class LocalText(BaseModel):
    model_config = ConfigDict(extra="forbid")

    zh: str
    en: str

    def get(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


class LevelRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Level
    reason: LocalText


class FollowUpQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    text: LocalText
    answer_type: AnswerType
    source: Citation
    yes_text: LocalText | None = None  # what the engine reads for a bare "yes"
    on_yes: LevelRule | None = None
    on_no: LevelRule | None = None
    concern_words: dict[str, list[str]] = Field(default_factory=dict)
    on_concern: LevelRule | None = None
    glucose_context: Literal["fasting", "postprandial", "random"] | None = None  # what the question asks

    def public(self, lang: Lang, check_id: str | None = None) -> dict[str, Any]:
        """The question as a client shows it (and as a reminder payload carries it)."""
        return {
            "question_id": self.id,
            "check_id": check_id,
            "text": self.text.get(lang),
            "text_zh": self.text.zh,
            "text_en": self.text.en,
            "answer_type": self.answer_type,
        }


class FollowUpCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    day: int = Field(ge=0, le=365)
    time: time
    questions: list[str] = Field(min_length=1)


class Repeat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    every_days: int = Field(ge=1, le=90)
    times: int = Field(ge=1, le=60)


class Combo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    all_yes: list[str] = Field(default_factory=list)
    any_yes: list[str] = Field(default_factory=list)
    level: Level
    reason: LocalText
    source: Citation


class FollowUpPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    title: LocalText
    context_complaints: list[str] = Field(default_factory=list)
    repeat: Repeat | None = None
    checks: list[FollowUpCheck]
    questions: dict[str, FollowUpQuestion]
    combos: list[Combo] = Field(default_factory=list)

    @field_validator("questions", mode="before")
    @classmethod
    def _questions_by_id(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {q["id"]: q for q in value}
        return value

    @model_validator(mode="after")
    def _references_resolve(self) -> FollowUpPlan:
        for check in self.checks:
            for qid in check.questions:
                if qid not in self.questions:
                    raise ValueError(f"plan {self.id}: check {check.id} asks unknown question {qid}")
        for combo in self.combos:
            for qid in [*combo.all_yes, *combo.any_yes]:
                if qid not in self.questions:
                    raise ValueError(f"plan {self.id}: combo {combo.id} names unknown question {qid}")
        if len({c.id for c in self.checks}) != len(self.checks):
            raise ValueError(f"plan {self.id}: duplicate check ids")
        return self

    def question(self, question_id: str) -> FollowUpQuestion:
        q = self.questions.get(question_id)
        if q is None:
            raise FollowUpError(
                "unknown_question",
                f"随访计划“{self.title.zh}”里没有问题 {question_id}。",
                f"The follow-up plan '{self.title.en}' has no question {question_id}.",
            )
        return q

    def check(self, check_id: str) -> FollowUpCheck:
        base, dot, round_no = check_id.partition(".")  # repeated checks are "<id>.<n>"
        valid_round = not dot or (
            self.repeat is not None and round_no.isdigit() and 1 <= int(round_no) <= self.repeat.times
        )
        for check in self.checks:
            if check.id == base and valid_round:
                return check
        raise FollowUpError(
            "unknown_check",
            f"随访计划“{self.title.zh}”里没有这次随访：{check_id}。",
            f"The follow-up plan '{self.title.en}' has no check {check_id}.",
        )

    def sources(self) -> list[Citation]:
        found = [q.source for q in self.questions.values()] + [c.source for c in self.combos]
        return list({(c.doc_id, c.section): c for c in found}.values())


class Messages(BaseModel):
    recorded: LocalText
    level_line: LocalText
    reasons: LocalText
    call_120: LocalText
    go_now_120: LocalText
    today_120: LocalText
    unclear_yes_no: LocalText
    unknown_answer: LocalText
    reading_recorded: LocalText
    ask_again: LocalText


class PlanBook(BaseModel):
    version: int
    plans: dict[str, FollowUpPlan]
    messages: Messages

    @field_validator("plans", mode="before")
    @classmethod
    def _ids_from_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"id": k, **v} for k, v in value.items()}
        return value

    def plan(self, plan_id: str) -> FollowUpPlan:
        plan = self.plans.get(plan_id)
        if plan is None:
            known = ", ".join(sorted(self.plans))
            raise FollowUpError(
                "unknown_plan",
                f"没有这个随访计划：{plan_id}（可用：{known}）。",
                f"Unknown follow-up plan {plan_id!r} (known: {known}).",
            )
        return plan


@lru_cache(maxsize=2)
def load_plans(path: Path = PLANS_FILE) -> PlanBook:
    return PlanBook.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


# ------------------------------------------------------------------------------ scheduling


class ScheduledQuestion(NamedTuple):
    due_at: datetime  # aware, in the plan's time zone
    question: dict[str, Any]  # FollowUpQuestion.public(...) plus plan_id


def _zone(tz: str | ZoneInfo) -> ZoneInfo:
    if isinstance(tz, ZoneInfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise FollowUpError(
            "unknown_timezone", f"不认识的时区：{tz}。", f"Unknown time zone {tz!r} (e.g. Asia/Shanghai)."
        ) from exc


def schedule(
    plan_id: str, anchor: datetime, tz: str | ZoneInfo = "Asia/Shanghai", lang: Lang = "zh"
) -> list[ScheduledQuestion]:
    """(due_at, question) for every question of the plan, in time order. Day N is N calendar days
    after the anchor's local date (surgery on Monday -> "day 3" is Thursday), at the check's local
    time. A naive anchor is read as local time in `tz`."""
    zone = _zone(tz)
    plan = load_plans().plan(plan_id)
    local_anchor = anchor.replace(tzinfo=zone) if anchor.tzinfo is None else anchor.astimezone(zone)
    start: date = local_anchor.date()
    rounds = plan.repeat.times if plan.repeat else 1
    step = plan.repeat.every_days if plan.repeat else 0
    out: list[ScheduledQuestion] = []
    for round_no in range(rounds):
        for check in plan.checks:
            day = start + timedelta(days=check.day + round_no * step)
            due = datetime.combine(day, check.time, tzinfo=zone)
            check_id = f"{check.id}.{round_no + 1}" if plan.repeat else check.id
            for qid in check.questions:
                payload = plan.question(qid).public(lang, check_id)
                out.append(ScheduledQuestion(due, {**payload, "plan_id": plan.id}))
    return sorted(out, key=lambda item: item.due_at)


# ------------------------------------------------------------------------------ conversation state


class RecordedAnswer(BaseModel):
    question_id: str
    check_id: str
    question: str  # as asked, in the conversation's language
    text: str
    label: AnswerLabel
    level: Level  # this answer's own level (engine findings + question rules + reading)
    rule_ids: list[str]
    reasons: list[str]
    red_flags: list[RedFlagMatch] = Field(default_factory=list)
    reading: MeasuredReading | None = None
    engine_level: Level
    engine_version: str
    knowledge_version: str
    citations: list[Citation] = Field(default_factory=list)
    answered_at: datetime


class FollowUpConversation(BaseModel):
    conversation_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    plan_id: str
    patient_id: str | None = None
    lang: Lang = "zh"
    facts: Facts = Field(default_factory=Facts)  # what the clinic knows: age, sex, pregnancy ...
    answers: list[RecordedAnswer] = Field(default_factory=list)
    level: Level = Level.self_care  # the most urgent level so far; never goes down
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FollowUpConversation:
        return cls.model_validate(data)

    def answers_in(self, check_id: str) -> list[RecordedAnswer]:
        return [a for a in self.answers if a.check_id == check_id]

    def readings(self) -> list[MeasuredReading]:
        return [a.reading for a in self.answers if a.reading is not None]


# ------------------------------------------------------------------------------ outcome


class Escalation(BaseModel):
    level: Level
    red_flags: list[RedFlagMatch]
    reasons: list[str]  # rule ids behind it (engine and follow-up rules)
    advice: str  # always says 120
    call_120: bool  # an emergency level: call 120 / go to the emergency department now
    clinic_flag: bool = True


class FollowUpOutcome(BaseModel):
    status: Literal["recorded", "retry"]
    conversation_id: str
    plan_id: str
    check_id: str
    question_id: str
    level: Level  # the most urgent level in this check so far (never lower than before)
    answer_level: Level  # this answer alone
    clinic_flag: bool  # the clinic should look at this (an escalation or "see a doctor today")
    escalation: Escalation | None = None
    message: str
    error_code: str | None = None
    reading: MeasuredReading | None = None
    rule_trace: list[RuleFiring] = Field(default_factory=list)
    engine: TriageResult | None = None
    next_question: dict[str, Any] | None = None


# ------------------------------------------------------------------------------ readings


class _Finding(NamedTuple):
    level: Level
    rule_id: str
    detail: str


class ReadingProblem(Exception):
    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(en)
        self.code, self.zh, self.en = code, zh, en


def _readings_module() -> Any | None:
    try:
        from tools import readings
    except ImportError:
        return None
    return readings


def parse_reading(
    kind: Literal["bp", "glucose"], text: str, lang: Lang, *, glucose_context: str | None = None
) -> MeasuredReading:
    """A blood pressure (mmHg) or glucose (mmol/L) from an answer, converting kPa and mg/dL.
    Uses tools.readings (refuses incomplete or impossible values with zh/en messages); without it,
    the fact extractor, which knows the same units."""
    module = _readings_module()
    if module is not None:
        return _parse_with_readings(module, kind, text, lang, glucose_context)
    return _parse_with_extractor(kind, text, lang)


def _parse_with_readings(
    module: Any, kind: str, text: str, lang: Lang, glucose_context: str | None
) -> MeasuredReading:
    try:
        if kind == "bp":
            value = module.parse_blood_pressure(text)
        else:
            context = module.detect_glucose_context(text) or glucose_context
            value = module.parse_glucose(text, context)
    except module.ReadingError as exc:
        raise ReadingProblem(exc.code, exc.zh, exc.en) from exc
    notes = [w.message(lang) for w in getattr(value, "warnings", [])]
    note = " ".join(notes) or None
    if kind == "bp":
        return MeasuredReading(
            kind="bp", systolic=float(value.systolic), diastolic=float(value.diastolic), text=text, note=note
        )
    return MeasuredReading(
        kind="glucose", mmol_l=round(float(value.mmol_l), 1), context=value.context, text=text, note=note
    )


_BP_WORDS = ("血压", "blood pressure", "bp")
_GLUCOSE_WORDS = ("血糖", "glucose", "sugar")


def _parse_with_extractor(kind: str, text: str, lang: Lang) -> MeasuredReading:
    words = _BP_WORDS if kind == "bp" else _GLUCOSE_WORDS
    keyword = words[0] if lang == "zh" else words[1]
    in_context = text if any(w in text.lower() for w in words) else f"{keyword} {text}"
    extracted = extract_facts(in_context, lang=lang)
    vitals = extracted.facts.vitals
    note = "converted" if re.search(r"kpa|mg", text, re.IGNORECASE) else None
    if kind == "bp":
        if vitals.systolic_bp is None or vitals.diastolic_bp is None:
            raise ReadingProblem(
                "bad_blood_pressure",
                "没有读出完整的血压。请写成“高压/低压”，例如 135/85。",
                "I could not read a full blood pressure. Please write it as top/bottom, e.g. 135/85.",
            )
        return MeasuredReading(
            kind="bp", systolic=vitals.systolic_bp, diastolic=vitals.diastolic_bp, text=text, note=note
        )
    if vitals.glucose_mmol is None:
        raise ReadingProblem(
            "bad_glucose",
            "没有读出血糖值。请写数字和单位，例如 6.5 或 117 mg/dL。",
            "I could not read a blood glucose value. Please write the number and unit, e.g. 6.5 or 117 mg/dL",
        )
    return MeasuredReading(kind="glucose", mmol_l=vitals.glucose_mmol, text=text, note=note)


def _reading_vitals(reading: MeasuredReading) -> dict[str, float]:
    if reading.kind == "bp":
        return {"systolic_bp": reading.systolic or 0.0, "diastolic_bp": reading.diastolic or 0.0}
    return {"glucose_mmol": reading.mmol_l or 0.0}


# tools.chronic's verdicts as triage levels: an urgent-referral threshold is "see a doctor today",
# a missed target is "book a clinic visit soon".
_CHRONIC_LEVELS = {"urgent": Level.urgent, "poorly_controlled": Level.routine}


def _chronic_findings(reading: MeasuredReading, when: datetime, lang: Lang) -> list[_Finding]:
    """The chronic-care plan's classification of a check-in value (tools.chronic, when installed);
    the engine's vital-sign rules judge the same value independently."""
    try:
        from tools import chronic
    except ImportError:
        return []
    if reading.kind == "bp":
        condition = "hypertension"
        value = chronic.Reading(
            taken_on=when.date(),
            kind="bp",
            systolic=round(reading.systolic or 0),
            diastolic=round(reading.diastolic or 0),
        )
    else:
        condition = "diabetes"
        value = chronic.Reading(
            taken_on=when.date(),
            kind="glucose",
            glucose_mmol=reading.mmol_l,
            context=reading.context or "random",
        )
    verdict = chronic.classify_reading(condition, value)
    level = _CHRONIC_LEVELS.get(verdict.level)
    if level is None:
        return []
    reasons = [r.zh if lang == "zh" else r.en for r in verdict.reasons]
    return [
        _Finding(level, rule_id, reasons[i] if i < len(reasons) else reading.display(lang))
        for i, rule_id in enumerate(verdict.rule_ids)
    ]


# ------------------------------------------------------------------------------ answering


def _advice_level(level: Level, lang: Lang) -> tuple[str, str]:
    text = load_rulebook().advice.levels[level]
    return text.label.get(lang), text.advice.get(lang)


def _ask_again(plan: FollowUpPlan, question: FollowUpQuestion, lang: Lang, problem: str) -> str:
    return load_plans().messages.ask_again.get(lang).format(problem=problem, question=question.text.get(lang))


def _engine_findings(result: TriageResult, context_complaints: list[str]) -> list[_Finding]:
    """Engine rule firings that count in a follow-up: everything except the "nothing recognised"
    fallback and the complaint levels of what the follow-up is about (a post-operative wound is
    expected; a new cut is not). Red flags and vital-sign rules always count."""
    skipped = IGNORED_ENGINE_RULES | {f"CP-{name}" for name in context_complaints}
    findings: list[_Finding] = []
    for firing in result.rule_trace:
        if firing.rule_id in skipped or not firing.effect.startswith("level>="):
            continue
        findings.append(_Finding(Level(firing.effect.removeprefix("level>=")), firing.rule_id, firing.detail))
    return findings


_ZH_NEGATED = re.compile(r"(?:没有|没|不|无|未)([\u4e00-\u9fff]{1,3})")
_EN_NEGATED = re.compile(r"\b(?:no|not|never|none|without|nor)\s+(?:any\s+|a\s+)?([a-z]{3,})")
_ZH_FILLER = re.compile(
    r"伤口|孩子|宝宝|都|也|还|一点|有点|就是|现在|今天|的|了|呢|啊|吧|呀|嗯|很|太|[\s，。、！？,.!?~]"
)
_EN_WORD = re.compile(r"[a-z]{4,}")


def _negated_echo(question: FollowUpQuestion, text: str, lang: Lang) -> bool:
    """A "no" said by negating the question's own words ("没有发烧", "伤口不红", "no fever"), with
    nothing else in the answer that the question asks about ("不红，就是有点肿" is not a no)."""
    asked = (question.text.zh + (question.yes_text.zh if question.yes_text else "")) if lang == "zh" else ""
    if lang == "zh":
        matches = list(_ZH_NEGATED.finditer(text))
        echoed = [m for m in matches if any(ch in asked for ch in m.group(1)[:2])]
        if not echoed:
            return False
        rest = _ZH_FILLER.sub("", _ZH_NEGATED.sub("", text))
        return not any(ch in asked for ch in rest)
    asked_en = (question.text.en + " " + (question.yes_text.en if question.yes_text else "")).lower()
    lowered = text.lower()
    echoed_words = [m.group(1) for m in _EN_NEGATED.finditer(lowered) if m.group(1) in asked_en]
    if not echoed_words:
        return False
    rest = _EN_NEGATED.sub(" ", lowered)
    return not any(w in asked_en for w in _EN_WORD.findall(rest))


def _concerned(question: FollowUpQuestion, text: str, lang: Lang) -> bool:
    lowered = text.lower()
    words = question.concern_words.get(lang, []) + question.concern_words.get(
        "zh" if lang == "en" else "en", []
    )
    return any(w.lower() in lowered for w in words)


def _combo_findings(plan: FollowUpPlan, answers: list[RecordedAnswer], lang: Lang) -> list[_Finding]:
    latest: dict[str, str] = {}
    for a in answers:
        latest[a.question_id] = a.label
    yes = {qid for qid, label in latest.items() if label == "yes"}
    out = []
    for combo in plan.combos:
        if not set(combo.all_yes) <= yes:
            continue
        if combo.any_yes and not yes & set(combo.any_yes):
            continue
        out.append(_Finding(combo.level, combo.id, combo.reason.get(lang)))
    return out


def answer(
    conversation: FollowUpConversation,
    question_id: str,
    text: str,
    lang: Lang | None = None,
    *,
    check_id: str | None = None,
    now: datetime | None = None,
) -> FollowUpOutcome:
    """Reads one answer and records it on `conversation` (unless it must be asked again).
    Raises FollowUpError for an unknown plan, question or check; bad answers give status "retry"."""
    plans = load_plans()
    plan = plans.plan(conversation.plan_id)
    question = plan.question(question_id)
    lang = lang or conversation.lang
    check = plan.check(check_id) if check_id else next(c for c in plan.checks if question_id in c.questions)
    if question_id not in check.questions:
        raise FollowUpError(
            "question_not_in_check",
            f"这次随访（{check.id}）不问 {question_id}。",
            f"The check {check.id} does not ask {question_id}.",
        )
    check_id = check_id or check.id
    now = now or datetime.now(UTC)

    def retry(code: str, problem: str) -> FollowUpOutcome:
        return FollowUpOutcome(
            status="retry",
            conversation_id=conversation.conversation_id,
            plan_id=plan.id,
            check_id=check_id,
            question_id=question_id,
            level=_check_level(conversation, check_id),
            answer_level=Level.self_care,
            clinic_flag=False,
            message=_ask_again(plan, question, lang, problem),
            error_code=code,
            next_question=question.public(lang, check_id),
        )

    if not isinstance(text, str) or not _HAS_CONTENT.search(text):
        return retry("empty_answer", "还没有收到回答。" if lang == "zh" else "No answer was received.")
    if len(text) > MAX_ANSWER_CHARS:
        return retry(
            "answer_too_long",
            f"回答太长（上限 {MAX_ANSWER_CHARS} 字）。"
            if lang == "zh"
            else f"The answer is too long (limit {MAX_ANSWER_CHARS}).",
        )
    text = text.strip()

    # 1. What the engine reads: always the whole answer, plus the sentence a bare "yes" stands for.
    label: AnswerLabel = "described"
    engine_text = text
    if question.answer_type == "yes_no":
        yes_no = classify_yes_no(text)
        if yes_no.label is not None:
            label = yes_no.label
        elif _negated_echo(question, text, lang):
            label = "no"
        if label == "yes" and question.yes_text:
            engine_text = f"{text}\n{question.yes_text.get(lang)}"
    facts = conversation.facts
    reading: MeasuredReading | None = None
    reading_problem: ReadingProblem | None = None
    if question.answer_type in ("bp", "glucose"):
        try:
            reading = parse_reading(
                question.answer_type, text, lang, glucose_context=question.glucose_context
            )
            reading = reading.model_copy(update={"measured_at": now})
            vitals = VitalSigns.model_validate({**facts.vitals.model_dump(), **_reading_vitals(reading)})
            facts = facts.model_copy(update={"vitals": vitals})
            label = "value"
        except ReadingProblem as problem:
            reading_problem = problem
    try:
        result = assess(TriageInput(text=engine_text[:ENGINE_TEXT_LIMIT], lang=lang, facts=facts))
    except TriageInputError as exc:
        return retry(exc.code, exc.message(lang))

    findings = _engine_findings(result, plan.context_complaints)
    red_flags = list(result.red_flags)
    # 2. A reading that could not be read is asked again — unless the engine already found
    # something serious in the same words, which must not wait for a retyped number.
    serious = bool(red_flags) or any(f.level in EMERGENCY_LEVELS for f in findings)
    if reading_problem is not None and not serious:
        return retry(reading_problem.code, reading_problem.zh if lang == "zh" else reading_problem.en)
    if question.answer_type == "yes_no" and label == "described" and not findings:
        return retry("unclear_answer", plans.messages.unclear_yes_no.get(lang))

    # 3. The plan's own rules for this question and the reading's classification.
    if label == "yes" and question.on_yes:
        findings.append(
            _Finding(question.on_yes.level, f"FU-{question.id}-yes", question.on_yes.reason.get(lang))
        )
    if label == "no" and question.on_no:
        findings.append(
            _Finding(question.on_no.level, f"FU-{question.id}-no", question.on_no.reason.get(lang))
        )
    if question.answer_type == "free_text" and question.on_concern and _concerned(question, text, lang):
        findings.append(
            _Finding(
                question.on_concern.level, f"FU-{question.id}-concern", question.on_concern.reason.get(lang)
            )
        )
    reading_findings: list[_Finding] = []
    if reading is not None:
        chronic = _chronic_findings(reading, now, lang)
        findings += chronic
        reading_findings = [f for f in findings if f.rule_id.startswith("VS-")] + chronic
        reading_level = max_level(Level.self_care, *(f.level for f in reading_findings))
        reading = reading.model_copy(
            update={"level": reading_level, "rule_ids": [f.rule_id for f in reading_findings]}
        )

    answer_level = max_level(Level.self_care, *(f.level for f in findings))
    recorded = RecordedAnswer(
        question_id=question.id,
        check_id=check_id,
        question=question.text.get(lang),
        text=text,
        label=label,
        level=answer_level,
        rule_ids=list(dict.fromkeys(f.rule_id for f in findings)),
        reasons=[f.detail for f in findings if f.rule_id.startswith(("FU-", "HTN-", "DM-"))],
        red_flags=red_flags,
        reading=reading,
        engine_level=result.level,
        engine_version=result.engine_version,
        knowledge_version=result.knowledge_version,
        citations=[*result.citations, question.source],
        answered_at=now,
    )
    conversation.answers.append(recorded)

    # 4. Combinations across this check's answers (wound discharge + fever ...).
    in_check = conversation.answers_in(check_id)
    fired_before = {rule_id for a in in_check[:-1] for rule_id in a.rule_ids}
    combos = _combo_findings(plan, in_check, lang)
    new_combos = [c for c in combos if c.rule_id not in fired_before]
    if new_combos:
        findings += new_combos
        answer_level = max_level(answer_level, *(c.level for c in new_combos))
        recorded.level = answer_level
        recorded.rule_ids += [c.rule_id for c in new_combos]
        recorded.reasons += [c.detail for c in new_combos]
        combo_sources = {c.id: c.source for c in plan.combos}
        recorded.citations += [combo_sources[c.rule_id] for c in new_combos]
    conversation.level = max_level(conversation.level, answer_level)
    level = _check_level(conversation, check_id)

    # 5. Escalate: any red flag, an emergency level, or an urgent reading.
    escalate = (
        bool(red_flags)
        or answer_level in EMERGENCY_LEVELS
        or any(f.level.rank >= Level.urgent.rank for f in reading_findings)
    )
    escalation = None
    if escalate:
        escalation = Escalation(
            level=answer_level,
            red_flags=red_flags,
            reasons=recorded.rule_ids,
            advice=_escalation_advice(answer_level, recorded, lang),
            call_120=answer_level in EMERGENCY_LEVELS,
        )
    message = escalation.advice if escalation else _plain_message(answer_level, recorded, lang)
    answered = {a.question_id for a in conversation.answers_in(check_id)}
    position = check.questions.index(question_id)
    ordered = check.questions[position + 1 :] + check.questions[:position]  # onwards, then skipped ones
    remaining = [q for q in ordered if q not in answered]
    return FollowUpOutcome(
        status="recorded",
        conversation_id=conversation.conversation_id,
        plan_id=plan.id,
        check_id=check_id,
        question_id=question.id,
        level=level,
        answer_level=answer_level,
        clinic_flag=escalation is not None or answer_level.rank >= Level.urgent.rank,
        escalation=escalation,
        message=message,
        reading=reading,
        rule_trace=[
            RuleFiring(rule_id=f.rule_id, effect=f"level>={f.level.value}", detail=f.detail) for f in findings
        ],
        engine=result,
        # After an escalation nothing else is asked: the advice is the whole reply.
        next_question=None
        if escalation or not remaining
        else plan.question(remaining[0]).public(lang, check_id),
    )


def _check_level(conversation: FollowUpConversation, check_id: str) -> Level:
    return max_level(Level.self_care, *(a.level for a in conversation.answers_in(check_id)))


def _why(recorded: RecordedAnswer, lang: Lang) -> str:
    names = [f.name for f in recorded.red_flags] + recorded.reasons
    if recorded.reading is not None and recorded.reading.level.rank >= Level.urgent.rank:
        names.append(recorded.reading.display(lang))
    names = list(dict.fromkeys(n for n in names if n))
    if not names:
        return ""
    return (
        load_plans().messages.reasons.get(lang).format(reasons=("、" if lang == "zh" else "; ").join(names))
    )


def _escalation_advice(level: Level, recorded: RecordedAnswer, lang: Lang) -> str:
    messages = load_plans().messages
    label, advice = _advice_level(level, lang)
    if level == Level.emergency_ambulance:
        tail = messages.call_120
    elif level == Level.emergency:
        tail = messages.go_now_120
    else:
        tail = messages.today_120
    head = messages.level_line.get(lang).format(label=label, advice=advice)
    return "\n".join(p for p in (head, _why(recorded, lang), tail.get(lang)) if p)


def _plain_message(level: Level, recorded: RecordedAnswer, lang: Lang) -> str:
    messages = load_plans().messages
    parts: list[str] = []
    if recorded.reading is not None:
        parts.append(messages.reading_recorded.get(lang).format(value=recorded.reading.display(lang)))
        if recorded.reading.note:
            parts.append(recorded.reading.note)
    elif recorded.label == "unknown":
        parts.append(messages.unknown_answer.get(lang))
    else:
        parts.append(messages.recorded.get(lang))
    if level != Level.self_care:
        label, advice = _advice_level(level, lang)
        parts.append(messages.level_line.get(lang).format(label=label, advice=advice))
        parts.append(_why(recorded, lang))
    return "\n".join(p for p in parts if p)


def handoff_inputs(conversation: FollowUpConversation) -> dict[str, Any]:
    """What tools.handoff.build_sbar needs for a follow-up conversation: question/answer turns,
    one decision per answer (its level, rule ids, engine versions, the engine's result), readings."""
    turns: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []
    for a in conversation.answers:
        at = a.answered_at.isoformat()
        turns.append({"role": "assistant", "text": a.question, "at": at})
        turns.append({"role": "user", "text": a.text, "at": at})
        decisions.append(
            {
                "level": a.level.value,
                "rule_ids": a.rule_ids,
                "engine_version": a.engine_version,
                "knowledge_version": a.knowledge_version,
                "input_text": a.text,
                "created": at,
                "red_flags": [f.model_dump() for f in a.red_flags],
                "citations": [c.model_dump() for c in a.citations],
            }
        )
    return {
        "turns": turns,
        "decisions": decisions,
        "facts": conversation.facts,
        "readings": conversation.readings(),
    }


def reminder_specs(
    patient_id: str,
    plan_id: str,
    anchor: datetime,
    tz: str = "Asia/Shanghai",
    *,
    conversation_id: str | None = None,
) -> list[Any]:
    """tools.reminders.ReminderSpec per check of the plan (kind followup_question): one
    notification per check, carrying all its questions, so a patient is not pinged five times at
    9:00. Every check shares one conversation id; the patient's client answers each question with
    POST /api/followup/answer {conversation_id, plan_id, check_id, question_id, text}."""
    from tools.reminders import ReminderKind, ReminderSpec

    plan = load_plans().plan(plan_id)
    conversation_id = conversation_id or uuid.uuid4().hex
    by_check: dict[str, list[ScheduledQuestion]] = {}
    for item in schedule(plan_id, anchor, tz):
        by_check.setdefault(item.question["check_id"], []).append(item)
    specs = []
    for check_id, items in by_check.items():
        first = items[0].question
        specs.append(
            ReminderSpec(
                patient_id=patient_id,
                kind=ReminderKind.followup_question,
                title_zh=plan.title.zh,
                title_en=plan.title.en,
                body_zh=first["text_zh"],
                body_en=first["text_en"],
                first_at=items[0].due_at,
                tz=tz,
                data={
                    "conversation_id": conversation_id,
                    "plan_id": plan.id,
                    "check_id": check_id,
                    "questions": [i.question for i in items],
                },
            )
        )
    return specs
