"""REST /api/reminders (patient bearer token, server/patients.py):

  POST /api/reminders                {kind, title_zh?/title_en?, body_*?, first_at, rrule?, count?,
                                      until?, tz?, data?} -> 201 reminder view
  POST /api/reminders/medication     {medicine, times_per_day, course_days, start_date?, times?, tz?}
                                      -> 201 {"reminders": [...]}
  GET  /api/reminders                -> {"reminders": [...]}
  POST /api/reminders/{id}/ack       -> the latest fired occurrence acknowledged
  POST /api/reminders/{id}/snooze    {minutes: 1-720} -> fire it again then
  POST /api/reminders/{id}/stop
  GET  /api/reminders.ics            -> text/calendar (active reminders; add to a phone calendar)
Errors {"error": {"code", "message"}} in ?lang=zh|en / Accept-Language (default zh): 401
auth_required/bad_token, 403 not_your_reminder, 404 reminder_not_found, 409 nothing_to_ack /
nothing_to_snooze / reminder_stopped, 422 time_in_past / impossible_recurrence /
unsupported_recurrence / too_frequent / bad_timezone / invalid_field.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError

from server.connection import bearer_token, request_lang
from server.notify import authenticate_patient
from server.reminders.runtime import ReminderApiError, ReminderRuntime, ReminderService
from server.request_body import parse_json_body
from tools.reminders import ReminderError, ReminderKind, ReminderSpec, medication_plan, zone

log = logging.getLogger(__name__)

router = APIRouter(tags=["reminders"])
MAX_BODY = 16384


class ReminderIn(BaseModel):
    kind: ReminderKind
    title_zh: str | None = None
    title_en: str | None = None
    body_zh: str | None = None
    body_en: str | None = None
    first_at: datetime
    rrule: str | None = None
    count: int | None = None
    until: datetime | None = None
    tz: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class MedicationIn(BaseModel):
    medicine: str = Field(min_length=1, max_length=100)
    times_per_day: int
    course_days: int
    start_date: date | None = None
    times: list[str] | None = None
    tz: str | None = None


class SnoozeIn(BaseModel):
    minutes: int = Field(ge=1, le=720)


def _fields_error(exc: ValidationError) -> ReminderApiError:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "body"
    return ReminderApiError(422, "invalid_field", field=field, detail=str(first.get("msg", ""))[:120])


async def _body(request: Request, model: type[BaseModel]) -> Any:
    return await parse_json_body(
        request, model, limit=MAX_BODY, error=ReminderApiError, on_invalid=_fields_error
    )


async def _handle(
    request: Request,
    action: Callable[[ReminderService, str], Any],
    status: int = 200,
    *,
    raw: Callable[[Any], Response] | None = None,
) -> Response:
    lang = request_lang(request)
    try:
        token = bearer_token(request)
        patient_id = await run_in_threadpool(authenticate_patient, request.app.state, token)
        if patient_id is None:
            raise ReminderApiError(401, "bad_token" if token else "auth_required")
        runtime: ReminderRuntime = request.app.state.reminders
        service = runtime.service
        result = await action(service, patient_id)
    except ReminderApiError as exc:
        return JSONResponse(exc.body(lang), status_code=exc.status)
    except ReminderError as exc:
        return JSONResponse(ReminderApiError.from_domain(exc).body(lang), status_code=422)
    except Exception:
        log.exception("reminder request %s failed", request.url.path)
        return JSONResponse(
            {"error": {"code": "internal", "message": "服务器内部错误 / Internal server error"}},
            status_code=500,
        )
    return raw(result) if raw is not None else JSONResponse(result, status_code=status)


def _tz(runtime_tz: str, given: str | None) -> str:
    return given or runtime_tz


@router.post("/api/reminders", status_code=201)
async def create_reminder(request: Request) -> Response:
    async def action(service: ReminderService, patient_id: str) -> Any:
        body: ReminderIn = await _body(request, ReminderIn)
        try:
            spec = ReminderSpec(
                patient_id=patient_id, **body.model_dump(exclude={"tz"}), tz=_tz(service.tz, body.tz)
            )
        except ValidationError as exc:
            raise _fields_error(exc) from exc
        return await run_in_threadpool(service.create, spec)

    return await _handle(request, action, 201)


@router.post("/api/reminders/medication", status_code=201)
async def create_medication(request: Request) -> Response:
    async def action(service: ReminderService, patient_id: str) -> Any:
        body: MedicationIn = await _body(request, MedicationIn)
        tz = _tz(service.tz, body.tz)
        now = service.clock()
        start = body.start_date or now.astimezone(zone(tz)).date()
        specs = medication_plan(
            patient_id,
            body.medicine,
            body.times_per_day,
            body.course_days,
            start,
            now,
            times=body.times,
            tz=tz,
        )
        return {"reminders": await run_in_threadpool(service.create_many, specs)}

    return await _handle(request, action, 201)


@router.get("/api/reminders")
async def list_reminders(request: Request) -> Response:
    async def action(service: ReminderService, patient_id: str) -> Any:
        return {"reminders": await run_in_threadpool(service.list, patient_id)}

    return await _handle(request, action)


@router.get("/api/reminders.ics")
async def export_ical(request: Request) -> Response:
    lang = request_lang(request)

    async def action(service: ReminderService, patient_id: str) -> Any:
        return await run_in_threadpool(service.ical, patient_id, lang)

    def as_calendar(text: Any) -> Response:
        return Response(
            text,
            media_type="text/calendar; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="daozhen-reminders.ics"'},
        )

    return await _handle(request, action, raw=as_calendar)


@router.post("/api/reminders/{reminder_id}/ack")
async def ack_reminder(request: Request, reminder_id: str) -> Response:
    async def action(service: ReminderService, patient_id: str) -> Any:
        return await run_in_threadpool(service.ack, patient_id, reminder_id)

    return await _handle(request, action)


@router.post("/api/reminders/{reminder_id}/snooze")
async def snooze_reminder(request: Request, reminder_id: str) -> Response:
    async def action(service: ReminderService, patient_id: str) -> Any:
        body: SnoozeIn = await _body(request, SnoozeIn)
        return await run_in_threadpool(service.snooze, patient_id, reminder_id, body.minutes)

    return await _handle(request, action)


@router.post("/api/reminders/{reminder_id}/stop")
async def stop_reminder(request: Request, reminder_id: str) -> Response:
    async def action(service: ReminderService, patient_id: str) -> Any:
        return await run_in_threadpool(service.stop, patient_id, reminder_id)

    return await _handle(request, action)
