"""REST /api/visits/...: the full-visit escort. Thin — authenticate the patient, parse the body,
call the service in a thread, shape the response. Errors: {"error": {"code", "message"}} in the
request's language (?lang=zh|en, then Accept-Language; Chinese by default).

    POST /api/visits                     {department_id, clinic_id?, appointment_id?, lang?} -> 201 view
    GET  /api/visits?all=false           the patient's visits (active ones unless all=true)
    GET  /api/visits/{id}                view + event log
    POST /api/visits/{id}/events         {event, data?} -> view (pushes "visit_step" to the patient)
    GET  /api/visits/{id}/plan           remaining steps with where / how long / bring, and qr_text

A view is {visit, guidance, allowed_events, remaining_steps}. Guidance is in ?lang / Accept-Language
when given, else in the visit's language.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from server.connection import request_lang
from server.escort.service import EscortApiError, EscortRuntime, EscortService
from server.patients import require_patient
from server.request_body import parse_json_body
from server.rest import ErrorResponse, _inline_refs
from tools.triage_models import Lang

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/visits", tags=["visits"])

MAX_BODY_BYTES = 8192

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "bad_json"},
    401: {"model": ErrorResponse, "description": "auth_required"},
    403: {"model": ErrorResponse, "description": "not_your_visit"},
    404: {"model": ErrorResponse, "description": "visit_not_found"},
    409: {"model": ErrorResponse, "description": "visit_busy"},
    422: {
        "model": ErrorResponse,
        "description": "invalid_field, unknown_department, unknown_clinic, bad_transition (names the "
        "current step), unknown_event, bad_event_data, unknown_exam, exam_not_pending",
    },
}


class VisitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    department_id: str = Field(min_length=1, max_length=60)
    clinic_id: str | None = Field(default=None, min_length=1, max_length=80)  # default: settings
    appointment_id: str | None = Field(default=None, max_length=120)
    lang: Literal["zh", "en"] | None = None  # default: the patient's language


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: str = Field(min_length=1, max_length=40)
    data: dict[str, Any] | None = None


def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    schema = _inline_refs(model.model_json_schema())
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _runtime(request: Request) -> EscortRuntime:
    return request.app.state.escort  # type: ignore[no-any-return]


def _view_lang(request: Request) -> Lang | None:
    """The language asked for explicitly; None lets the visit's own language speak."""
    if request.query_params.get("lang") or request.headers.get("accept-language"):
        return request_lang(request)
    return None


async def _parse(request: Request, model: type[BaseModel]) -> Any:
    return await parse_json_body(request, model, limit=MAX_BODY_BYTES, error=EscortApiError)


async def _respond(
    request: Request, action: Callable[[EscortService], dict[str, Any]], status: int = 200
) -> JSONResponse:
    try:
        data = await run_in_threadpool(action, _runtime(request).service)
    except EscortApiError as exc:
        return JSONResponse(exc.body(request_lang(request)), status_code=exc.status)
    except Exception:
        log.exception("escort request %s failed", request.url.path)
        error = EscortApiError(500, "internal")
        return JSONResponse(error.body(request_lang(request)), status_code=500)
    return JSONResponse(data, status_code=status)


def _patient_lang(request: Request, patient_id: str) -> Lang:
    profile = getattr(request.app.state.patients, "profile", None)
    found = profile(patient_id) if profile is not None else None
    return "en" if found and found.get("lang") == "en" else "zh"


@router.post("", status_code=201, responses=_ERRORS, openapi_extra=_body_doc(VisitIn))  # type: ignore[arg-type]
async def start_visit(request: Request, patient_id: str = Depends(require_patient)) -> JSONResponse:
    """Start escorting a visit at 挂号 (registered); with an appointment the next step is check-in."""
    try:
        body: VisitIn = await _parse(request, VisitIn)
    except EscortApiError as exc:
        return JSONResponse(exc.body(request_lang(request)), status_code=exc.status)
    clinic_id = body.clinic_id or _runtime(request).settings.default_clinic_id
    lang = body.lang or await run_in_threadpool(_patient_lang, request, patient_id)
    view_lang = _view_lang(request)
    return await _respond(
        request,
        lambda s: s.start_visit(
            patient_id, clinic_id, body.department_id, body.appointment_id, lang, view_lang=view_lang
        ),
        status=201,
    )


@router.get("", responses=_ERRORS)  # type: ignore[arg-type]
async def list_visits(
    request: Request, all: bool = False, patient_id: str = Depends(require_patient)
) -> JSONResponse:
    """The patient's visits, newest first; only unfinished ones unless all=true (a kiosk or phone
    left mid-flow picks the visit up again from here)."""
    view_lang = _view_lang(request)
    return await _respond(
        request, lambda s: s.list_visits(patient_id, active_only=not all, view_lang=view_lang)
    )


@router.get("/{visit_id}", responses=_ERRORS)  # type: ignore[arg-type]
async def get_visit(
    request: Request, visit_id: str, patient_id: str = Depends(require_patient)
) -> JSONResponse:
    view_lang = _view_lang(request)
    return await _respond(request, lambda s: s.get(patient_id, visit_id, view_lang=view_lang))


@router.post("/{visit_id}/events", responses=_ERRORS, openapi_extra=_body_doc(EventIn))  # type: ignore[arg-type]
async def post_event(
    request: Request, visit_id: str, patient_id: str = Depends(require_patient)
) -> JSONResponse:
    """{event, data?}: check_in, queued, called, consult_done {has_exams?, exams?, has_prescription?,
    pay_later?, follow_up?}, paid, exam_done {exam_id?}, medicine_collected, report_ready,
    follow_up_booked {appointment_id?}, finish, cancel."""
    try:
        body: EventIn = await _parse(request, EventIn)
    except EscortApiError as exc:
        return JSONResponse(exc.body(request_lang(request)), status_code=exc.status)
    view_lang = _view_lang(request)
    return await _respond(
        request, lambda s: s.advance(patient_id, visit_id, body.event, body.data, view_lang=view_lang)
    )


@router.get("/{visit_id}/plan", responses=_ERRORS)  # type: ignore[arg-type]
async def visit_plan(
    request: Request, visit_id: str, patient_id: str = Depends(require_patient)
) -> JSONResponse:
    """The remaining steps (current first) with where / how long / what to bring, the total minutes
    and `qr_text` for the kiosk's QR code."""
    view_lang = _view_lang(request)
    return await _respond(request, lambda s: s.plan(patient_id, visit_id, view_lang=view_lang))
