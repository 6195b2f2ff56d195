"""REST for scheduling follow-up conversations (patients; server/patients bearer token). Included in
server/handoff/routes.py's router, beside POST /api/followup/answer.

    GET  /api/followup/plans   -> {"plans": [{plan_id, name, name_zh, name_en, checks, repeat}]}
    POST /api/followup/plans   {plan_id, anchor?, lang?, facts?}
         -> 201 {conversation_id, plan_id, name, anchor, timezone, schedule: [{check_id, due_at,
                 reminder_id, questions}], skipped: [{check_id, due_at}]}

The anchor (surgery, discharge or visit time; ISO 8601, default now; naive = clinic local time) and
the plan give one reminder per check (assistant.followup.reminder_specs), all sharing the new
conversation id the patient then answers with. Checks already past are left out ("skipped"); when
every one is past the reminders' own validation answers 422 time_in_past. Due times are in the
clinic's zone (settings.timezone). Errors: {"error": {"code", "message"}} in ?lang= /
Accept-Language (zh by default): 401 auth_required, 422 unknown_plan / bad_anchor / anchor_too_far
/ time_in_past / invalid_field, 400 bad_json, 413 body_too_large, 503 not_ready.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from assistant.followup import FollowUpConversation, FollowUpError, load_plans, reminder_specs, schedule
from server.connection import request_lang
from server.errors import REST_MESSAGES, FeatureApiError
from server.handoff.runtime import HandoffRuntime
from server.reminders.runtime import ReminderApiError
from server.request_body import parse_json_body
from tools.reminders import DEFAULT_GRACE, ReminderError
from tools.triage_models import Facts, Lang

log = logging.getLogger(__name__)

router = APIRouter(tags=["handoff"])

MAX_BODY_BYTES = 8 * 1024
MAX_AHEAD = timedelta(days=366)  # an operation booked next year is fine; year 9999 is a typo

MESSAGES: dict[str, tuple[str, str]] = {
    **REST_MESSAGES,  # bad_json, body_too_large, invalid_field, internal
    "auth_required": ("请先登录。", "Please sign in first."),
    "bad_anchor": (
        "时间“{value}”看不懂，请用 ISO 格式，例如 2026-11-23T09:30。",
        'The time "{value}" is not valid; use ISO 8601, e.g. 2026-11-23T09:30.',
    ),
    "anchor_too_far": (
        "时间 {value} 太远了（最多一年以后），请核对。",
        "The time {value} is too far ahead (at most a year); please check it.",
    ),
    "not_ready": ("服务尚未就绪，请稍后再试。", "The service is not ready yet; please try again shortly."),
}


class ScheduleError(FeatureApiError):
    messages = MESSAGES


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan_id: str = Field(min_length=1, max_length=64)
    # A string, parsed below: pydantic would also take a number as a Unix time, which no form means.
    anchor: str | None = Field(default=None, max_length=40)
    lang: Literal["zh", "en"] | None = None
    facts: Facts | None = None  # what the clinic knows (age, sex, pregnancy) for the triage engine


# ------------------------------------------------------------------------------ helpers


def _runtime(request: Request) -> HandoffRuntime:
    runtime: HandoffRuntime | None = getattr(request.app.state, "handoff", None)
    if runtime is None or runtime.store is None:
        raise ScheduleError(503, "not_ready")
    return runtime


def _reminders(request: Request) -> Any:
    """app.state.reminders.service (ReminderService); 503 while the feature is not running."""
    runtime = getattr(request.app.state, "reminders", None)
    if runtime is None:
        raise ScheduleError(503, "not_ready")
    try:
        return runtime.service
    except Exception as exc:  # ReminderApiError(503, not_ready) before start
        raise ScheduleError(503, "not_ready") from exc


async def _patient(request: Request) -> str:
    from server.patients import require_patient

    try:
        return await require_patient(request)
    except Exception as exc:  # ApiError(401, auth_required)
        raise ScheduleError(getattr(exc, "status", 401), "auth_required") from exc


async def _parse(request: Request) -> PlanRequest:
    parsed: PlanRequest = await parse_json_body(
        request, PlanRequest, limit=MAX_BODY_BYTES, error=ScheduleError
    )
    return parsed


def parse_anchor(text: str | None, now: datetime) -> datetime:
    """ISO 8601 (date, or date and time, with or without offset) -> datetime; None -> now.
    A naive value is left naive: schedule() reads it as clinic local time."""
    if text is None or not text.strip():
        return now
    value = text.strip()
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise ScheduleError(422, "bad_anchor", value=value[:40]) from exc


def _plan_view(plan_id: str, lang: Lang) -> dict[str, Any]:
    plan = load_plans().plan(plan_id)
    return {
        "plan_id": plan.id,
        "name": plan.title.get(lang),
        "name_zh": plan.title.zh,
        "name_en": plan.title.en,
        "checks": [{"check_id": c.id, "day": c.day, "time": c.time.strftime("%H:%M")} for c in plan.checks],
        "repeat": plan.repeat.model_dump() if plan.repeat else None,
    }


def _schedule_plan(
    runtime: HandoffRuntime, reminders: Any, patient_id: str, body: PlanRequest, lang: Lang
) -> dict[str, Any]:
    tz = runtime.settings.timezone
    now: datetime = reminders.clock()
    plan = load_plans().plan(body.plan_id)  # unknown plan -> FollowUpError
    anchor = parse_anchor(body.anchor, now)
    aware = anchor if anchor.tzinfo is not None else anchor.replace(tzinfo=runtime.settings.tz)
    try:
        too_far = aware - now > MAX_AHEAD
    except OverflowError:
        too_far = True
    if too_far:
        raise ScheduleError(422, "anchor_too_far", value=body.anchor or "")
    conversation_id = uuid.uuid4().hex
    try:
        specs = reminder_specs(patient_id, plan.id, anchor, tz, conversation_id=conversation_id)
        questions = schedule(plan.id, anchor, tz, lang)
    except OverflowError as exc:  # year 1 minus a time zone offset, and the like
        raise ScheduleError(422, "bad_anchor", value=body.anchor or "") from exc
    upcoming = [s for s in specs if s.first_at >= now - DEFAULT_GRACE]
    # Every check already past: hand them all to the reminders' validation, which says time_in_past.
    views = reminders.create_many(upcoming or specs)
    by_check = {view["spec"]["data"]["check_id"]: view["reminder_id"] for view in views}

    conversation = FollowUpConversation(
        conversation_id=conversation_id,
        plan_id=plan.id,
        patient_id=patient_id,
        lang=lang,
        facts=body.facts or Facts(),
    )
    store = runtime.store
    assert store is not None
    store.save_conversation(conversation_id, patient_id, plan.id, conversation.level, conversation.to_dict())

    checks: dict[str, dict[str, Any]] = {}
    for item in questions:
        check_id = item.question["check_id"]
        entry = checks.setdefault(
            check_id,
            {
                "check_id": check_id,
                "due_at": item.due_at.isoformat(),
                "reminder_id": by_check.get(check_id),
                "questions": [],
            },
        )
        entry["questions"].append({k: item.question[k] for k in ("question_id", "text", "answer_type")})
    return {
        "conversation_id": conversation_id,
        "plan_id": plan.id,
        "name": plan.title.get(lang),
        "anchor": aware.astimezone(runtime.settings.tz).isoformat(),
        "timezone": tz,
        "lang": lang,
        "schedule": [c for c in checks.values() if c["reminder_id"] is not None],
        "skipped": [
            {"check_id": c["check_id"], "due_at": c["due_at"]}
            for c in checks.values()
            if c["reminder_id"] is None
        ],
    }


# ------------------------------------------------------------------------------ routes


@router.get("/api/followup/plans")
async def list_plans(request: Request) -> JSONResponse:
    """The follow-up plans a patient (or the clinic for them) can schedule; no sign-in needed."""
    lang = request_lang(request)
    plans = load_plans().plans
    return JSONResponse({"plans": [_plan_view(plan_id, lang) for plan_id in plans]})


@router.post("/api/followup/plans", status_code=201)
async def schedule_plan(request: Request) -> JSONResponse:
    """Start a follow-up conversation: one reminder per check of the plan, due in clinic local time."""
    lang = request_lang(request)
    try:
        patient_id = await _patient(request)
        body = await _parse(request)
        lang = body.lang or lang
        runtime = _runtime(request)
        reminders = _reminders(request)
        data = await run_in_threadpool(_schedule_plan, runtime, reminders, patient_id, body, lang)
    except ScheduleError as exc:
        return JSONResponse(exc.body(lang), status_code=exc.status)
    except FollowUpError as exc:  # unknown_plan (unknown_timezone cannot happen: settings checks it)
        return JSONResponse({"error": {"code": exc.code, "message": exc.message(lang)}}, status_code=422)
    except ReminderApiError as exc:  # time_in_past (every check already past) and the like
        return JSONResponse(exc.body(lang), status_code=exc.status)
    except ReminderError as exc:
        return JSONResponse({"error": {"code": exc.code, "message": exc.message(lang)}}, status_code=422)
    except Exception:
        log.exception("follow-up scheduling failed")
        return JSONResponse(ScheduleError(500, "internal").body(lang), status_code=500)
    return JSONResponse(data, status_code=201)
