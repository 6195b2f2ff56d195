"""REST /api/chronic/...: chronic-care registration, readings with units, the clinic's overdue list.

    GET  /api/chronic/overdue?today=YYYY-MM-DD&lang=   clinician: the clinic's worklist, most pressing first
    POST /api/chronic/patients                          clinician: register {name, conditions, last_visit?}
    GET  /api/chronic/patients/{id}                     clinician of that clinic: status and readings
    POST /api/chronic/patients/{id}/readings            clinician of that clinic, or the linked patient
         {kind: bp|glucose|hba1c, text? | systolic+diastolic+unit? | value+unit?, context?, taken_on?,
          symptoms?, visit?} -> parsed value, classification, urgent flag (+ the triage engine's reading)

Clinicians sign in through the fever accounts ("Authorization: Bearer <token>"; role "clinician");
family accounts get 403 wrong_role. Errors: {"error": {"code", "message"}} in ?lang= / Accept-Language
(zh by default); bad readings are 422 with the parser's code (incomplete_bp, implausible_bp, ...)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from server.chronic.service import ChronicError, ChronicService, PatientIn, ReadingIn
from server.connection import bearer_token, request_lang
from server.fever.errors import FeverError
from server.request_body import parse_json_body

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/chronic", tags=["chronic"])
MAX_BODY_BYTES = 8 * 1024


class Caller(BaseModel):
    kind: str  # "clinician" | "patient"
    id: str
    clinic_id: str | None = None


def _service(request: Request) -> ChronicService:
    return request.app.state.chronic.service  # type: ignore[no-any-return]


def _authenticate(request: Request, *, allow_patient: bool) -> Caller:
    token = bearer_token(request)
    try:
        account = request.app.state.fever.service.authenticate(token)
    except FeverError as exc:
        patients = getattr(request.app.state, "patients", None)
        if allow_patient and exc.code == "bad_token" and patients is not None:
            patient_id = patients.authenticate(token)
            if patient_id is not None:
                return Caller(kind="patient", id=patient_id)
        raise ChronicError(exc.status, exc.code, zh=exc.zh, en=exc.en) from exc
    if account.role != "clinician":
        raise ChronicError(403, "wrong_role")
    return Caller(kind="clinician", id=account.account_id, clinic_id=account.clinic_id)


async def _body(request: Request, model: type[BaseModel]) -> Any:
    return await parse_json_body(request, model, limit=MAX_BODY_BYTES, error=ChronicError)


def _today(request: Request, service: ChronicService) -> date:
    value = request.query_params.get("today")
    if not value:
        return service.local_today()
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ChronicError(422, "bad_date", value=value[:20]) from exc


async def _respond(request: Request, action: Callable[[], Any], status: int = 200) -> JSONResponse:
    lang = request_lang(request)
    try:
        data = await action()
    except ChronicError as exc:
        return JSONResponse(exc.body(lang), status_code=exc.status)
    except Exception:
        log.exception("chronic request %s failed", request.url.path)
        return JSONResponse(ChronicError(500, "internal").body(lang), status_code=500)
    return JSONResponse(data, status_code=status)


@router.get("/overdue")
async def overdue(request: Request) -> JSONResponse:
    """The clinic's patients who are overdue, worsening or urgent: urgent first, then risk, then days."""

    async def action() -> Any:
        caller = await run_in_threadpool(_authenticate, request, allow_patient=False)
        service = _service(request)
        today = _today(request, service)
        assert caller.clinic_id is not None
        return await run_in_threadpool(service.overdue, caller.clinic_id, today, request_lang(request))

    return await _respond(request, action)


@router.post("/patients", status_code=201)
async def register(request: Request) -> JSONResponse:
    async def action() -> Any:
        caller = await run_in_threadpool(_authenticate, request, allow_patient=False)
        body = await _body(request, PatientIn)
        assert caller.clinic_id is not None
        return await run_in_threadpool(_service(request).register, caller.clinic_id, body, caller.id)

    return await _respond(request, action, status=201)


@router.get("/patients/{patient_id}")
async def patient(request: Request, patient_id: str) -> JSONResponse:
    async def action() -> Any:
        caller = await run_in_threadpool(_authenticate, request, allow_patient=False)
        service = _service(request)
        today = _today(request, service)
        assert caller.clinic_id is not None
        found = await run_in_threadpool(service.check_clinic, patient_id, caller.clinic_id)
        return await run_in_threadpool(service.patient_view, found, today, request_lang(request))

    return await _respond(request, action)


@router.post("/patients/{patient_id}/readings", status_code=201)
async def add_reading(request: Request, patient_id: str) -> JSONResponse:
    async def action() -> Any:
        caller = await run_in_threadpool(_authenticate, request, allow_patient=True)
        service = _service(request)
        if caller.kind == "clinician":
            assert caller.clinic_id is not None
            await run_in_threadpool(service.check_clinic, patient_id, caller.clinic_id)
        else:
            await run_in_threadpool(service.check_linked, patient_id, caller.id)
        body = await _body(request, ReadingIn)
        today = _today(request, service)
        return await run_in_threadpool(
            service.add_reading, patient_id, body, f"{caller.kind}:{caller.id}", request_lang(request), today
        )

    return await _respond(request, action, status=201)
