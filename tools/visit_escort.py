"""The full-visit escort: an outpatient visit as a state machine, and what to tell the patient at
each step (what is next, where, how long, what to bring).

    挂号 registered → 报到 checked_in → 候诊 waiting → 就诊 consulting → 缴费 paying → 检查 exams
    → 取药 pharmacy → 取报告 reports → 复诊 follow_up → done

The path after the consultation depends on what the doctor ordered: no exams skips exams, reports
and (by default) follow-up; no medicine skips the pharmacy; nothing to pay skips payment; with
先诊疗后付费 (`pay_later`) payment moves to the end. Pure and deterministic: times come in as
arguments, texts and minutes from tools/data/visit_steps.yaml. Persistence, queue counters and
pushing step changes live in server/escort.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tools.booking.models import LocalizedText
from tools.departments import load_catalogue
from tools.localized_error import LocalizedError
from tools.triage_models import Lang

DEFAULT_STEPS_FILE = Path(__file__).resolve().parent / "data" / "visit_steps.yaml"


class Step(StrEnum):
    registered = "registered"
    checked_in = "checked_in"
    waiting = "waiting"
    consulting = "consulting"
    paying = "paying"
    exams = "exams"
    pharmacy = "pharmacy"
    reports = "reports"
    follow_up = "follow_up"
    done = "done"


# Before the consultation nobody knows what the doctor will order: the typical full path.
TYPICAL_PATH: tuple[Step, ...] = tuple(Step)
_BEFORE_CONSULT = (Step.registered, Step.checked_in, Step.waiting, Step.consulting)

# event -> the steps it is valid in
EVENTS: dict[str, frozenset[Step]] = {
    "check_in": frozenset({Step.registered}),
    "queued": frozenset({Step.checked_in}),  # reached the waiting area / appears on the queue screen
    "called": frozenset({Step.checked_in, Step.waiting}),
    "consult_done": frozenset({Step.consulting}),
    "paid": frozenset({Step.paying}),
    "exam_done": frozenset({Step.exams}),
    "medicine_collected": frozenset({Step.pharmacy}),
    "report_ready": frozenset({Step.reports}),
    "follow_up_booked": frozenset({Step.follow_up}),
    "finish": frozenset({Step.follow_up}),
    "cancel": frozenset(set(Step) - {Step.done}),
}

# ------------------------------------------------------------------------------ errors

_ERRORS: dict[str, tuple[str, str]] = {
    "bad_transition": (
        "现在这一步是「{step_zh}」，不能执行“{event}”。现在可以：{allowed}。",
        "The visit is at “{step_en}”; “{event}” is not possible now. Possible now: {allowed}.",
    ),
    "unknown_event": (
        "不认识的就诊事件“{event}”。可用的事件：{known}。",
        "Unknown visit event “{event}”. Known events: {known}.",
    ),
    "bad_event_data": ("事件“{event}”的数据不正确：{detail}", "Bad data for event “{event}”: {detail}"),
    "unknown_exam": (
        "不认识的检查“{exam}”，请按检查申请单上的名称选择。",
        "Unknown exam “{exam}”; choose one named on the exam request.",
    ),
    "exam_not_pending": (
        "检查“{exam}”不在待做清单里（待做：{pending}）。",
        "The exam “{exam}” is not pending (pending: {pending}).",
    ),
}


class EscortError(LocalizedError):
    """Bad input to the state machine: a stable code and the message in zh and en."""

    messages = _ERRORS


# ------------------------------------------------------------------------------ data file


class SourceRef(BaseModel):
    doc_id: str
    section: str


class ExamInfo(BaseModel):
    room: str
    zh: str
    en: str
    minutes: int = Field(ge=1)
    report_minutes: int = Field(ge=0)

    def name(self, lang: Lang) -> str:
        return self.zh if lang == "zh" else self.en


class StepText(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: LocalizedText
    what_next: LocalizedText
    what_next_walk_in: LocalizedText | None = None  # registered without an appointment
    what_next_settle: LocalizedText | None = None  # paying at the end (先诊疗后付费)
    what_next_unknown: LocalizedText | None = None  # exams whose rooms are not known
    what_next_cancelled: LocalizedText | None = None  # done by cancelling
    place: str  # a node id of `places`, or "clinic" (the department's room), "exam", "none"
    place_walk_in: str | None = None
    minutes: int = Field(ge=0)
    bring: list[str]
    tips: list[LocalizedText] = Field(default_factory=list)
    source: SourceRef


class StepsData(BaseModel):
    version: str
    source: SourceRef
    consult_minutes: dict[str, int]
    items: dict[str, LocalizedText]
    exams: dict[str, ExamInfo]
    places: dict[str, LocalizedText]
    steps: dict[Step, StepText]

    def consult_minutes_for(self, department_id: str) -> int:
        return self.consult_minutes.get(department_id, self.consult_minutes["default"])


_SPECIAL_PLACES = {"clinic", "exam", "none"}


def _check(data: StepsData, path: Path) -> None:
    problems: list[str] = []
    missing = [s.value for s in Step if s not in data.steps]
    if missing:
        problems.append(f"steps missing: {missing}")
    if "default" not in data.consult_minutes:
        problems.append("consult_minutes needs a `default`")
    for step, text in data.steps.items():
        for item in text.bring:
            if item not in data.items:
                problems.append(f"{step.value}: unknown item {item!r}")
        for place in (text.place, text.place_walk_in):
            if place is not None and place not in data.places and place not in _SPECIAL_PLACES:
                problems.append(f"{step.value}: unknown place {place!r}")
    for exam_id, exam in data.exams.items():
        if exam.room not in data.places:
            problems.append(f"exam {exam_id}: unknown room {exam.room!r}")
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))


def load_steps(path: Path | None = None) -> StepsData:
    return _load_steps(Path(path or DEFAULT_STEPS_FILE).resolve())


@lru_cache(maxsize=4)
def _load_steps(path: Path) -> StepsData:
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:
        data = StepsData.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    _check(data, path)
    return data


# ------------------------------------------------------------------------------ state


class HistoryEntry(BaseModel):
    step: Step
    at: datetime  # aware, UTC
    event: str | None = None  # the event that entered this step (None: the visit started)


class VisitState(BaseModel):
    visit_id: str
    patient_id: str
    clinic_id: str
    department_id: str
    room_id: str | None = None  # the consulting room's map node; None: "clinic_<department_id>"
    appointment_id: str | None = None
    step: Step = Step.registered
    history: list[HistoryEntry] = Field(default_factory=list)
    queue_number: int | None = None
    lang: Lang = "zh"
    # what the consultation decided (known once consult_done)
    consult_done: bool = False
    has_exams: bool = False
    has_prescription: bool = False
    pay_later: bool = False  # 先诊疗后付费: exams and medicine first, settle at the end
    needs_follow_up: bool = False
    exams_pending: list[str] = Field(default_factory=list)
    exams_done: list[str] = Field(default_factory=list)
    exams_finished_at: datetime | None = None
    paid: bool = False
    follow_up_appointment_id: str | None = None
    cancelled: bool = False
    last_place: str | None = None  # map node of the place the patient just left (route start)

    @property
    def consult_room(self) -> str:
        return self.room_id or f"clinic_{self.department_id}"

    @property
    def finished(self) -> bool:
        return self.step == Step.done


def new_visit(
    visit_id: str,
    patient_id: str,
    clinic_id: str,
    department_id: str,
    now: datetime,
    *,
    appointment_id: str | None = None,
    room_id: str | None = None,
    lang: Lang = "zh",
) -> VisitState:
    return VisitState(
        visit_id=visit_id,
        patient_id=patient_id,
        clinic_id=clinic_id,
        department_id=department_id,
        room_id=room_id,
        appointment_id=appointment_id,
        lang=lang,
        history=[HistoryEntry(step=Step.registered, at=_aware(now))],
    )


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("the escort needs timezone-aware times")
    return now


def path_of(state: VisitState) -> list[Step]:
    """The whole path of this visit as far as it is known now."""
    if state.cancelled:
        return [*[h.step for h in state.history if h.step != Step.done], Step.done]
    if not state.consult_done:
        return list(TYPICAL_PATH)
    path = list(_BEFORE_CONSULT)
    billable = state.has_exams or state.has_prescription
    if billable and not state.pay_later:
        path.append(Step.paying)
    if state.has_exams:
        path.append(Step.exams)
    if state.has_prescription:
        path.append(Step.pharmacy)
    if state.has_exams:
        path.append(Step.reports)
    if billable and state.pay_later:
        path.append(Step.paying)
    if state.needs_follow_up:
        path.append(Step.follow_up)
    path.append(Step.done)
    return path


def remaining_steps(state: VisitState) -> list[Step]:
    """The current step and every step still ahead."""
    path = path_of(state)
    return path[path.index(state.step) :] if state.step in path else [state.step]


def allowed_events(state: VisitState) -> list[str]:
    return [event for event, steps in EVENTS.items() if state.step in steps]


class ConsultOutcome(BaseModel):
    """What the doctor ordered (data of "consult_done")."""

    model_config = ConfigDict(extra="forbid", strict=False)

    has_exams: bool | None = None  # implied by a non-empty `exams`
    exams: list[str] = Field(default_factory=list)  # exam ids, in the order to do them
    has_prescription: bool = False
    pay_later: bool = False  # the hospital offers 先诊疗后付费 and the patient uses it
    follow_up: bool | None = None  # default: come back with the reports when there are exams


def _event_data(event: str, model: type[BaseModel], data: dict[str, Any] | None) -> Any:
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'data'}: {err['msg']}" for err in exc.errors()
        )
        raise EscortError("bad_event_data", event=event, detail=detail) from exc


class _ExamDone(BaseModel):
    model_config = ConfigDict(extra="forbid")
    exam_id: str | None = None


class _FollowUpBooked(BaseModel):
    model_config = ConfigDict(extra="forbid")
    appointment_id: str | None = None


def transition(
    state: VisitState,
    event: str,
    now: datetime,
    data: dict[str, Any] | None = None,
    *,
    steps_data: StepsData | None = None,
) -> VisitState:
    """The state after `event`; the input is not changed. Raises EscortError for an unknown
    event, an event not possible at the current step, or bad event data."""
    now = _aware(now)
    if event not in EVENTS:
        raise EscortError("unknown_event", event=event, known=", ".join(EVENTS))
    if state.step not in EVENTS[event]:
        names = _step_names(steps_data)
        raise EscortError(
            "bad_transition",
            event=event,
            step_zh=names[state.step].zh,
            step_en=names[state.step].en,
            allowed=", ".join(allowed_events(state)) or "—",
        )
    data_file = steps_data or load_steps()
    new = state.model_copy(deep=True)
    new.last_place = place_node(state, data_file)
    if event == "consult_done":
        outcome: ConsultOutcome = _event_data(event, ConsultOutcome, data)
        for exam_id in outcome.exams:
            if exam_id not in data_file.exams:
                raise EscortError("unknown_exam", exam=exam_id)
        new.consult_done = True
        new.has_exams = bool(outcome.exams) or bool(outcome.has_exams)
        new.exams_pending = list(dict.fromkeys(outcome.exams))
        new.has_prescription = outcome.has_prescription
        new.pay_later = outcome.pay_later
        new.needs_follow_up = new.has_exams if outcome.follow_up is None else outcome.follow_up
        nxt = _after(new, Step.consulting)
    elif event == "exam_done":
        done: _ExamDone = _event_data(event, _ExamDone, data)
        if done.exam_id is not None and done.exam_id not in new.exams_pending:
            raise EscortError(
                "exam_not_pending", exam=done.exam_id, pending=", ".join(new.exams_pending) or "—"
            )
        if new.exams_pending:
            finished = done.exam_id or new.exams_pending[0]
            new.exams_pending.remove(finished)
            new.exams_done.append(finished)
            new.last_place = data_file.exams[finished].room
        if new.exams_pending:
            nxt = Step.exams  # more exams: same step, next room
        else:
            new.exams_finished_at = now
            nxt = _after(new, Step.exams)
    elif event == "follow_up_booked":
        booked: _FollowUpBooked = _event_data(event, _FollowUpBooked, data)
        new.follow_up_appointment_id = booked.appointment_id
        nxt = Step.done
    elif event == "called":
        nxt = Step.consulting
    elif event == "cancel":
        new.cancelled = True
        nxt = Step.done
    else:
        if event == "paid":
            new.paid = True
        nxt = _after(new, state.step)
    new.step = nxt
    if nxt != state.step or event == "exam_done":
        new.history.append(HistoryEntry(step=nxt, at=now, event=event))
    return new


def _after(state: VisitState, step: Step) -> Step:
    path = path_of(state)  # each step appears once (paying sits late with pay_later)
    return path[path.index(step) + 1]


def _step_names(steps_data: StepsData | None) -> dict[Step, LocalizedText]:
    data = steps_data or load_steps()
    return {step: text.title for step, text in data.steps.items()}


# ------------------------------------------------------------------------------ guidance


class Place(BaseModel):
    node_id: str | None  # a node of the clinic's navigation map; None: no single place
    name: str


class StepGuidance(BaseModel):
    visit_id: str
    step: Step
    lang: Lang
    title: str
    what_next: str
    where: Place
    route_from: str | None = None  # map node to route from (ask /api/navigation/route)
    how_long: int  # minutes, estimate
    how_long_text: str
    bring: list[str]
    tips: list[str]
    queue_number: int | None = None
    queue_ahead: int | None = None
    maybe: bool = False  # a step of the typical path that may be skipped (before the consultation)
    source: SourceRef


class VisitPlan(BaseModel):
    visit_id: str
    lang: Lang
    current: Step
    steps: list[StepGuidance]  # the current step first
    total_minutes: int
    qr_text: str  # short text for a QR code the patient takes away


def department_name(department_id: str, lang: Lang) -> str:
    dept = load_catalogue().departments.get(department_id)
    return dept.name(lang) if dept is not None else department_id


def place_node(state: VisitState, data: StepsData, step: Step | None = None) -> str | None:
    step = step or state.step
    text = data.steps[step]
    place = text.place_walk_in if step == Step.registered and state.appointment_id is None else text.place
    if place == "clinic":
        return state.consult_room
    if place == "exam":
        return data.exams[state.exams_pending[0]].room if state.exams_pending else None
    if place == "none" or place is None:
        return None
    return place


def _place(state: VisitState, data: StepsData, step: Step, lang: Lang) -> Place:
    node = place_node(state, data, step)
    if node is None:
        name = {"zh": "按检查申请单上的地点", "en": "as printed on the exam request"}[lang]
        return Place(node_id=None, name=name if step == Step.exams else "")
    if node == state.consult_room:
        dept = department_name(state.department_id, lang)
        return Place(node_id=node, name=f"{dept}诊区" if lang == "zh" else f"{dept} clinic")
    known = data.places.get(node)
    return Place(node_id=node, name=known.get(lang) if known else node)


def _minutes_text(minutes: int, lang: Lang) -> str:
    if minutes <= 0:
        return "马上" if lang == "zh" else "now"
    if lang == "zh":
        return f"约 {minutes} 分钟"
    return f"about {minutes} min"


def _report_wait(state: VisitState, data: StepsData, now: datetime) -> int:
    exams = state.exams_done + state.exams_pending
    longest = max((data.exams[e].report_minutes for e in exams if e in data.exams), default=30)
    if state.exams_finished_at is None:
        return longest
    elapsed = int((now - state.exams_finished_at).total_seconds() // 60)
    return max(longest - elapsed, 0)


def guidance(
    state: VisitState,
    now: datetime,
    lang: Lang | None = None,
    *,
    queue_ahead: int | None = None,
    minutes_per_patient: int | None = None,
    step: Step | None = None,
    route_from: str | None = None,
    steps_data: StepsData | None = None,
) -> StepGuidance:
    """What to tell the patient at `step` (default: the current one). Waiting time = patients
    ahead × average consultation minutes of the department (data) unless given."""
    data = steps_data or load_steps()
    lang = lang or state.lang
    step = step or state.step
    text = data.steps[step]
    per_patient = minutes_per_patient or data.consult_minutes_for(state.department_id)
    ahead = max(queue_ahead or 0, 0)
    wait = ahead * per_patient
    report_wait = _report_wait(state, data, now)
    exam_names = [data.exams[e].name(lang) for e in state.exams_pending]

    what = text.what_next
    if step == Step.registered and state.appointment_id is None and text.what_next_walk_in:
        what = text.what_next_walk_in
    elif step == Step.paying and state.pay_later and text.what_next_settle:
        what = text.what_next_settle
    elif step == Step.exams and not state.exams_pending and text.what_next_unknown:
        what = text.what_next_unknown
    elif step == Step.done and state.cancelled and text.what_next_cancelled:
        what = text.what_next_cancelled

    fields = {
        "department": department_name(state.department_id, lang),
        "queue_number": state.queue_number if state.queue_number is not None else "—",
        "queue_ahead": ahead,
        "wait": wait,
        "exam": exam_names[0] if exam_names else "",
        "exams_left": len(exam_names),
        "report_wait": report_wait,
    }
    if step == Step.waiting:
        how_long = wait
    elif step == Step.consulting:
        how_long = per_patient
    elif step == Step.exams:
        how_long = sum(data.exams[e].minutes for e in state.exams_pending) or text.minutes
    elif step == Step.reports:
        how_long = report_wait + text.minutes
    else:
        how_long = text.minutes
    if route_from is None and step == state.step:
        route_from = state.last_place
    where = _place(state, data, step, lang)
    return StepGuidance(
        visit_id=state.visit_id,
        step=step,
        lang=lang,
        title=text.title.get(lang),
        what_next=what.get(lang).format(**fields),
        where=where,
        route_from=route_from if route_from != where.node_id else None,
        how_long=how_long,
        how_long_text=_minutes_text(how_long, lang),
        bring=[data.items[item].get(lang) for item in text.bring],
        tips=[tip.get(lang) for tip in text.tips],
        queue_number=state.queue_number,
        queue_ahead=queue_ahead if step in (Step.checked_in, Step.waiting) else None,
        maybe=not state.consult_done and step not in _BEFORE_CONSULT and step != Step.done,
        source=text.source,
    )


def plan(
    state: VisitState,
    now: datetime,
    lang: Lang | None = None,
    *,
    queue_ahead: int | None = None,
    minutes_per_patient: int | None = None,
    steps_data: StepsData | None = None,
) -> VisitPlan:
    """The list of next steps (current first) with where / how long / what to bring; the kiosk
    shows it and turns `qr_text` into a QR code."""
    data = steps_data or load_steps()
    lang = lang or state.lang
    items: list[StepGuidance] = []
    previous: str | None = state.last_place
    for step in remaining_steps(state):
        item = guidance(
            state,
            now,
            lang,
            queue_ahead=queue_ahead,
            minutes_per_patient=minutes_per_patient,
            step=step,
            route_from=previous,
            steps_data=data,
        )
        items.append(item)
        previous = item.where.node_id or previous
    total = sum(item.how_long for item in items)
    return VisitPlan(
        visit_id=state.visit_id,
        lang=lang,
        current=state.step,
        steps=items,
        total_minutes=total,
        qr_text=_qr_text(state, items, lang),
    )


def _qr_text(state: VisitState, items: list[StepGuidance], lang: Lang) -> str:
    head = f"导诊 就诊步骤 {state.visit_id}" if lang == "zh" else f"Daozhen visit steps {state.visit_id}"
    lines = [head]
    for n, item in enumerate(items, start=1):
        mark = "?" if item.maybe else ""
        place = f" @ {item.where.name}" if item.where.name else ""
        lines.append(f"{n}. {item.title}{mark}{place} ({item.how_long_text})")
    return "\n".join(lines)
