"""REST /api/fever/...: thin — authenticate, parse the body, call the service in a thread, push
the events it returns, shape the response. Errors: {"error": {"code", "message"}} (zh / en).
Authentication: "Authorization: Bearer <token>" from POST /accounts or /login."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from server.connection import bearer_token
from server.fever.errors import FeverError
from server.fever.models import (
    AccountIn,
    BleIn,
    CallbackIn,
    ChildIn,
    ChildPatch,
    DoseIn,
    FormIn,
    LoginIn,
    ReadingIn,
    SendIn,
    SymptomIn,
)
from server.fever.runtime import FeverRuntime
from server.fever.service import FeverService, Outcome, fields_error
from server.request_body import parse_json_body
from server.rest import ErrorResponse, _inline_refs

log = logging.getLogger(__name__)

from server.fever.chat import MessageIn  # noqa: E402
from server.fever.chat import record_message as chat_record  # noqa: E402

router = APIRouter(prefix="/api/fever", tags=["fever"])

Action = Callable[[FeverService, Any, Any], Outcome]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "not JSON, or not a JSON object"},
    401: {"model": ErrorResponse, "description": "auth_required, bad_token, bad_credentials"},
    403: {
        "model": ErrorResponse,
        "description": "wrong_role, not_your_child, not_your_clinic, not_your_form",
    },
    404: {"model": ErrorResponse, "description": "child_not_found, form_not_found, callback_not_found"},
    422: {"model": ErrorResponse, "description": "invalid input (the code says which)"},
}


def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    schema = _inline_refs(model.model_json_schema())
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _fever(request: Request) -> FeverRuntime:
    return request.app.state.fever  # type: ignore[no-any-return]


async def _parse(request: Request, model: type[BaseModel], limit: int) -> BaseModel:
    parsed: BaseModel = await parse_json_body(
        request, model, limit=limit, error=FeverError, on_invalid=fields_error
    )
    return parsed


async def _respond(
    request: Request, action: Action, body: type[BaseModel] | None = None, *, auth: bool = True
) -> JSONResponse:
    fever = _fever(request)
    try:
        account = await run_in_threadpool(fever.service.authenticate, bearer_token(request)) if auth else None
        lang = request.query_params.get("lang")
        if account is not None and lang in ("zh", "en"):
            account = replace(account, lang=lang)  # the page's language for grades and warnings
        payload = await _parse(request, body, fever.config.max_body_bytes) if body is not None else None
        outcome = await run_in_threadpool(action, fever.service, account, payload)
    except FeverError as exc:
        return JSONResponse(exc.body(), status_code=exc.status)
    except Exception:
        log.exception("fever request %s failed", request.url.path)
        error = FeverError(500, "internal")
        return JSONResponse(error.body(), status_code=500)
    fever.hub.publish(outcome.events)
    return JSONResponse(outcome.data, status_code=outcome.status)


# ------------------------------------------------------------------------------ accounts


@router.get("/meta")
async def meta(request: Request) -> JSONResponse:
    """Measurement sites, underlying conditions, the two checked medicines, colour labels."""
    return await _respond(request, lambda s, a, b: Outcome(s.meta()), auth=False)


@router.post("/accounts", status_code=201, responses=_ERRORS, openapi_extra=_body_doc(AccountIn))  # type: ignore[arg-type]
async def create_account(request: Request) -> JSONResponse:
    """Sign up: {role, username, password, display_name, clinic_id?, clinic_code? (clinicians)}
    -> {token, account_id, role, ...}."""
    return await _respond(request, lambda s, a, b: s.create_account(b), AccountIn, auth=False)


@router.post("/login", responses=_ERRORS, openapi_extra=_body_doc(LoginIn))  # type: ignore[arg-type]
async def login(request: Request) -> JSONResponse:
    return await _respond(request, lambda s, a, b: s.login(b), LoginIn, auth=False)


@router.post("/logout", responses=_ERRORS)  # type: ignore[arg-type]
async def logout(request: Request) -> JSONResponse:
    token = bearer_token(request) or ""
    return await _respond(request, lambda s, a, b: s.logout(token))


@router.get("/me", responses=_ERRORS)  # type: ignore[arg-type]
async def me(request: Request) -> JSONResponse:
    return await _respond(request, lambda s, a, b: Outcome(a.public()))


# ------------------------------------------------------------------------------ children


@router.post("/children", status_code=201, responses=_ERRORS, openapi_extra=_body_doc(ChildIn))  # type: ignore[arg-type]
async def create_child(request: Request) -> JSONResponse:
    return await _respond(request, lambda s, a, b: s.create_child(a, b), ChildIn)


@router.get("/children", responses=_ERRORS)  # type: ignore[arg-type]
async def list_children(request: Request) -> JSONResponse:
    return await _respond(request, lambda s, a, b: s.list_children(a))


@router.get("/children/{child_id}", responses=_ERRORS)  # type: ignore[arg-type]
async def get_child(request: Request, child_id: str) -> JSONResponse:
    return await _respond(request, lambda s, a, b: s.get_child(a, child_id))


@router.patch("/children/{child_id}", responses=_ERRORS, openapi_extra=_body_doc(ChildPatch))  # type: ignore[arg-type]
async def update_child(request: Request, child_id: str) -> JSONResponse:
    """Change weight, allergies, conditions or name; the child is graded again."""
    return await _respond(request, lambda s, a, b: s.update_child(a, child_id, b), ChildPatch)


# ------------------------------------------------------------------------------ diary


@router.post(
    "/children/{child_id}/readings", status_code=201, responses=_ERRORS, openapi_extra=_body_doc(ReadingIn)
)  # type: ignore[arg-type]
async def add_reading(request: Request, child_id: str) -> JSONResponse:
    """{value, unit "C"|"F"|null, site, time?, source} -> {reading, grade}. 385 is read as 38.5 and
    102 without a unit as °F (with a warning); impossible values ask to measure again (422)."""
    return await _respond(request, lambda s, a, b: s.add_reading(a, child_id, b), ReadingIn)


@router.post("/children/{child_id}/ble", status_code=201, responses=_ERRORS, openapi_extra=_body_doc(BleIn))  # type: ignore[arg-type]
async def add_ble(request: Request, child_id: str) -> JSONResponse:
    """A raw Temperature Measurement (0x2A1C) value as hex -> {reading, grade}; a repeat of a stored
    frame answers 200 {duplicate: true}."""
    return await _respond(request, lambda s, a, b: s.add_ble(a, child_id, b), BleIn)


@router.post(
    "/children/{child_id}/doses", status_code=201, responses=_ERRORS, openapi_extra=_body_doc(DoseIn)
)  # type: ignore[arg-type]
async def add_dose(request: Request, child_id: str) -> JSONResponse:
    """Logs a paracetamol / ibuprofen dose if the label rules allow it; otherwise 422 dose_refused
    with the reason (error.reason = the check's code) and the full check."""
    return await _respond(request, lambda s, a, b: s.add_dose(a, child_id, b), DoseIn)


@router.post("/children/{child_id}/doses/check", responses=_ERRORS, openapi_extra=_body_doc(DoseIn))  # type: ignore[arg-type]
async def check_dose(request: Request, child_id: str) -> JSONResponse:
    """The same label-rule check without logging anything: {check}."""
    return await _respond(request, lambda s, a, b: s.check_dose(a, child_id, b), DoseIn)


@router.post(
    "/children/{child_id}/symptoms", status_code=201, responses=_ERRORS, openapi_extra=_body_doc(SymptomIn)
)  # type: ignore[arg-type]
async def add_symptom(request: Request, child_id: str) -> JSONResponse:
    return await _respond(request, lambda s, a, b: s.add_symptom(a, child_id, b), SymptomIn)


@router.post(
    "/children/{child_id}/message", status_code=201, responses=_ERRORS, openapi_extra=_body_doc(MessageIn)
)  # type: ignore[arg-type]
async def record_message(request: Request, child_id: str) -> JSONResponse:
    """A message in the parent's words: records the reading, a dose already given and the symptoms,
    grades, and returns {recorded, grade, reply}."""
    return await _respond(request, lambda s, a, b: chat_record(s, a, child_id, b), MessageIn)


@router.get("/children/{child_id}/timeline", responses=_ERRORS)  # type: ignore[arg-type]
async def timeline(request: Request, child_id: str) -> JSONResponse:
    """{child, readings[], doses[], symptoms[], grades[] (colour changes), current_grade, reminders[]}."""
    return await _respond(request, lambda s, a, b: s.timeline(a, child_id))


@router.get("/children/{child_id}/grade", responses=_ERRORS)  # type: ignore[arg-type]
async def grade(request: Request, child_id: str) -> JSONResponse:
    """FeverGrade JSON of the diary as of now."""
    return await _respond(request, lambda s, a, b: s.current_grade(a, child_id))


# ------------------------------------------------------------------------------ forms


@router.post("/children/{child_id}/form", status_code=201, responses=_ERRORS, openapi_extra=_body_doc(FormIn))  # type: ignore[arg-type]
async def create_form(request: Request, child_id: str) -> JSONResponse:
    """A draft pre-consultation form from the diary: {form_id, form, status: "draft"}."""
    return await _respond(request, lambda s, a, b: s.create_form(a, child_id, b), FormIn)


@router.get("/forms", responses=_ERRORS)  # type: ignore[arg-type]
async def list_forms(request: Request, status: str | None = None) -> JSONResponse:
    """Clinicians: the sent forms of their clinic. Families: their own forms."""
    return await _respond(request, lambda s, a, b: s.list_forms(a, status))


@router.get("/forms/{form_id}", responses=_ERRORS)  # type: ignore[arg-type]
async def get_form(request: Request, form_id: str) -> JSONResponse:
    return await _respond(request, lambda s, a, b: s.get_form(a, form_id))


@router.post("/forms/{form_id}/send", responses=_ERRORS, openapi_extra=_body_doc(SendIn))  # type: ignore[arg-type]
async def send_form(request: Request, form_id: str) -> JSONResponse:
    """{idempotency_key?} -> {status: "sent", duplicate}; the clinic's clinicians get it at once."""
    return await _respond(request, lambda s, a, b: s.send_form(a, form_id, b), SendIn)


@router.get("/forms/{form_id}/fhir", responses=_ERRORS)  # type: ignore[arg-type]
async def form_fhir(request: Request, form_id: str) -> JSONResponse:
    """FHIR R4 Bundle: Patient, QuestionnaireResponse, Observation (LOINC 8310-5) per reading."""
    response = await _respond(request, lambda s, a, b: s.form_fhir(a, form_id))
    if response.status_code == 200:
        response.headers["content-type"] = "application/fhir+json"
    return response


# ------------------------------------------------------------------------------ callbacks


@router.post(
    "/children/{child_id}/callback", status_code=201, responses=_ERRORS, openapi_extra=_body_doc(CallbackIn)
)  # type: ignore[arg-type]
async def request_callback(request: Request, child_id: str) -> JSONResponse:
    """Ask a nurse to call back: {phone?, note?}; one open request per child."""
    return await _respond(request, lambda s, a, b: s.request_callback(a, child_id, b), CallbackIn)


@router.get("/callbacks", responses=_ERRORS)  # type: ignore[arg-type]
async def list_callbacks(request: Request, status: str | None = None) -> JSONResponse:
    """Clinicians: the clinic's queue with each child's colour and summary, reddest first."""
    return await _respond(request, lambda s, a, b: s.list_callbacks(a, status))


@router.post("/callbacks/{callback_id}/handled", responses=_ERRORS)  # type: ignore[arg-type]
async def handle_callback(request: Request, callback_id: str) -> JSONResponse:
    return await _respond(request, lambda s, a, b: s.handle_callback(a, callback_id))
