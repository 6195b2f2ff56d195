"""REST /api/booking/... and FHIR-shaped /fhir/Schedule, /fhir/Slot, /fhir/Appointment: thin —
authenticate the patient, parse, call BookingService in a thread, shape the response.
Errors: {"error": {"code", "message"}} in the request's language (?lang= or Accept-Language, zh by
default). POST routes that create something need an Idempotency-Key header; a retry with the same
key and body answers 200 with the first result instead of booking again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from server.booking.errors import BookingError
from server.booking.runtime import BookingRuntime
from server.booking.service import BookingService
from server.connection import request_lang
from server.errors import ApiError
from server.patients import require_patient
from server.request_body import parse_json_body
from server.rest import ErrorResponse, _inline_refs
from tools.booking.errors import BookingDomainError

log = logging.getLogger(__name__)

router = APIRouter(tags=["booking"])
API = "/api/booking"
MAX_BODY_BYTES = 8192

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "bad_json, idempotency_key_required, bad_idempotency_key"},
    401: {"model": ErrorResponse, "description": "auth_required"},
    403: {"model": ErrorResponse, "description": "not_your_appointment, referral_only"},
    404: {
        "model": ErrorResponse,
        "description": "unknown_clinic, unknown_department, slot_not_found, appointment_not_found",
    },
    409: {
        "model": ErrorResponse,
        "description": "slot_taken, slot_in_past, already_booked, already_cancelled, already_on_waitlist, "
        "slots_available, idempotency_conflict, appointment_in_past",
    },
    422: {"model": ErrorResponse, "description": "invalid_field, bad_date, date_in_past, not_open_yet, ..."},
}


class BookIn(BaseModel):
    slot_id: str = Field(min_length=1, max_length=160)
    referral_from: str | None = Field(default=None, max_length=80, description="community centre's clinic id")


class RescheduleIn(BaseModel):
    slot_id: str = Field(min_length=1, max_length=160)


class WaitlistIn(BaseModel):
    clinic_id: str | None = Field(default=None, max_length=80, description="default: the default clinic")
    department_id: str = Field(min_length=1, max_length=80)
    date: str = Field(description="YYYY-MM-DD")
    half_day: str = Field(description="am | pm")
    referral_from: str | None = Field(default=None, max_length=80)


class ExamsIn(BaseModel):
    clinic_id: str | None = Field(default=None, max_length=80)
    exam_ids: list[str] = Field(max_length=20)
    ordering_department_id: str | None = Field(default=None, max_length=80)
    ordering_doctor_id: str | None = Field(default=None, max_length=80)


def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    schema = _inline_refs(model.model_json_schema())
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _runtime(request: Request) -> BookingRuntime:
    return request.app.state.booking  # type: ignore[no-any-return]


async def _parse(request: Request, model: type[BaseModel]) -> Any:
    return await parse_json_body(request, model, limit=MAX_BODY_BYTES, error=BookingError)


def parse_day(text: str, field: str = "date") -> date:
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise BookingError(422, "bad_date", text=text, detail="YYYY-MM-DD") from exc


Action = Callable[[BookingService, str | None, Any], Any]


async def _respond(
    request: Request,
    action: Action,
    body: type[BaseModel] | None = None,
    *,
    auth: bool = True,
    status: int = 200,
) -> JSONResponse:
    """Runs action(service, patient_id, body) in a thread; BookingError and the tools' domain
    errors become the error body; a replayed idempotent request answers 200 instead of 201."""
    lang = request_lang(request)
    try:
        patient_id = await require_patient(request) if auth else None
        payload = await _parse(request, body) if body is not None else None
        service = _runtime(request).service
        data = await run_in_threadpool(action, service, patient_id, payload)
    except ApiError as exc:
        return JSONResponse(exc.body(), status_code=exc.status)
    except BookingError as exc:
        return JSONResponse(exc.body(lang), status_code=exc.status)
    except BookingDomainError as exc:
        return JSONResponse(exc.to_dict(lang), status_code=404 if exc.code.startswith("unknown") else 422)
    except Exception:
        log.exception("booking request %s failed", request.url.path)
        return JSONResponse(BookingError(500, "internal").body(lang), status_code=500)
    if isinstance(data, dict) and data.get("replayed") is True:
        status = 200
    return JSONResponse(data, status_code=status)


def _wrap(name: str, view: dict[str, Any]) -> dict[str, Any]:
    """{name: view, "replayed": ...} from a service view that carries "replayed"."""
    replayed = view.pop("replayed", False)
    return {name: view, "replayed": replayed}


def _key(request: Request) -> str | None:
    return request.headers.get("idempotency-key")


# ------------------------------------------------------------------------------ catalogue


@router.get(f"{API}/clinics")
async def list_clinics(request: Request) -> JSONResponse:
    """Clinics with their bookable departments and exams (names in zh and en)."""
    return await _respond(
        request,
        lambda s, p, b: {"clinics": [_clinic_summary(c) for c in s.directory.clinics.values()]},
        auth=False,
    )


@router.get(f"{API}/clinics/{{clinic_id}}", responses=_ERRORS)  # type: ignore[arg-type]
async def get_clinic(request: Request, clinic_id: str) -> JSONResponse:
    return await _respond(
        request, lambda s, p, b: {"clinic": s.clinic(clinic_id).model_dump(mode="json")}, auth=False
    )


def _clinic_summary(clinic: Any) -> dict[str, Any]:
    return {
        "id": clinic.id,
        "name": clinic.name.model_dump(),
        "kind": clinic.kind,
        "demo": clinic.demo,
        "district": clinic.district.model_dump(),
        "address": clinic.address.model_dump(),
        "phone": clinic.phone,
        "map_id": clinic.map_id,
        "booking_days_ahead": clinic.booking_days_ahead,
        "departments": [
            {"id": d.id, "name": d.name.model_dump(), "room_id": d.room_id} for d in clinic.departments
        ],
        "exams": [{"id": e.id, "name": e.name.model_dump()} for e in clinic.exams],
    }


# ------------------------------------------------------------------------------ slots


@router.get(f"{API}/slots", responses=_ERRORS)  # type: ignore[arg-type]
async def search_slots(
    request: Request,
    department_id: str,
    clinic_id: str | None = None,
    date: str | None = None,
    half_day: str | None = None,
    doctor_id: str | None = None,
    when: str | None = None,
    referral: bool = False,
    limit: int = 20,
) -> JSONResponse:
    """Free slots, earliest first: {slots[], sessions[{date, half_day, total, free, waiting}]}.
    `when` takes a phrase ("明天上午", "next Wednesday"); `date`/`half_day` win over it."""
    lang = request_lang(request)

    def action(s: BookingService, p: Any, b: Any) -> dict[str, Any]:
        clinic = s.clinic(clinic_id or _runtime(request).default_clinic_id)
        day = parse_day(date) if date else None
        half = half_day
        parsed = None
        if when and when.strip():
            from tools.booking.dates import parse_when

            parsed = parse_when(when, s.clock(), lang, tz=clinic.timezone, session_times=clinic.session_times)
            day = day or parsed.date
            half = half or parsed.half_day
        result = s.search(
            clinic.id,
            department_id,
            day=day,
            half_day=half,
            doctor_id=doctor_id,
            patient_is_referral=referral,
            limit=limit,
        )
        if parsed is not None:
            result["when"] = {
                "date": parsed.date.isoformat() if parsed.date else None,
                "half_day": parsed.half_day,
                "text": parsed.text,
            }
        return result

    return await _respond(request, action, auth=False)


# ------------------------------------------------------------------------------ appointments


@router.post(f"{API}/appointments", status_code=201, responses=_ERRORS, openapi_extra=_body_doc(BookIn))  # type: ignore[arg-type]
async def book(request: Request) -> JSONResponse:
    """{slot_id, referral_from?} + header Idempotency-Key -> 201 {appointment, replayed: false};
    the same request retried -> 200 {appointment (the same), replayed: true}."""
    key = _key(request)
    return await _respond(
        request,
        lambda s, p, b: _wrap("appointment", s.book(p, b.slot_id, key, referral_from=b.referral_from)),
        BookIn,
        status=201,
    )


@router.get(f"{API}/appointments", responses=_ERRORS)  # type: ignore[arg-type]
async def list_appointments(request: Request) -> JSONResponse:
    """The patient's appointments (all statuses) and waiting-list entries with positions."""
    return await _respond(request, lambda s, p, b: s.list_appointments(p))


@router.get(f"{API}/appointments/{{appointment_id}}", responses=_ERRORS)  # type: ignore[arg-type]
async def get_appointment(request: Request, appointment_id: str) -> JSONResponse:
    return await _respond(request, lambda s, p, b: s.get_appointment(p, appointment_id))


@router.post(f"{API}/appointments/{{appointment_id}}/cancel", responses=_ERRORS)  # type: ignore[arg-type]
async def cancel(request: Request, appointment_id: str) -> JSONResponse:
    """Cancels; the first waiting patient of that session is booked into the freed slot and notified.
    Idempotency-Key is optional here: with it, a retried cancel answers 200 like the first one."""
    key = _key(request)
    return await _respond(request, lambda s, p, b: s.cancel(p, appointment_id, key))


@router.post(
    f"{API}/appointments/{{appointment_id}}/reschedule",
    status_code=201,
    responses=_ERRORS,
    openapi_extra=_body_doc(RescheduleIn),
)  # type: ignore[arg-type]
async def reschedule(request: Request, appointment_id: str) -> JSONResponse:
    """{slot_id} + Idempotency-Key -> {appointment (new), previous (cancelled), waitlist_promoted}."""
    key = _key(request)
    return await _respond(
        request, lambda s, p, b: s.reschedule(p, appointment_id, b.slot_id, key), RescheduleIn, status=201
    )


# ------------------------------------------------------------------------------ waiting list


@router.post(f"{API}/waitlist", status_code=201, responses=_ERRORS, openapi_extra=_body_doc(WaitlistIn))  # type: ignore[arg-type]
async def join_waitlist(request: Request) -> JSONResponse:
    """{clinic_id?, department_id, date, half_day, referral_from?} + Idempotency-Key ->
    {entry: {entry_id, position, ...}}. Only for a full session (else 409 slots_available)."""
    key = _key(request)

    def action(s: BookingService, p: Any, b: WaitlistIn) -> Any:
        clinic_id = b.clinic_id or _runtime(request).default_clinic_id
        entry = s.join_waitlist(
            p, clinic_id, b.department_id, parse_day(b.date), b.half_day, key, referral_from=b.referral_from
        )
        return _wrap("entry", entry)

    return await _respond(request, action, WaitlistIn, status=201)


@router.delete(f"{API}/waitlist/{{entry_id}}", responses=_ERRORS)  # type: ignore[arg-type]
async def leave_waitlist(request: Request, entry_id: str) -> JSONResponse:
    return await _respond(request, lambda s, p, b: s.leave_waitlist(p, entry_id))


# ------------------------------------------------------------------------------ exams (预就诊)


@router.post(f"{API}/exams", status_code=201, responses=_ERRORS, openapi_extra=_body_doc(ExamsIn))  # type: ignore[arg-type]
async def book_exams(request: Request) -> JSONResponse:
    """{clinic_id?, exam_ids[], ordering_department_id?, ordering_doctor_id?} + Idempotency-Key ->
    {plan (trips, preparation, report times), bookings[]}. When a report is ready the patient is
    notified with a follow-up slot offered with the ordering doctor."""
    key, lang = _key(request), request_lang(request)

    def action(s: BookingService, p: Any, b: ExamsIn) -> Any:
        clinic_id = b.clinic_id or _runtime(request).default_clinic_id
        return s.book_exams(
            p,
            clinic_id,
            b.exam_ids,
            key,
            lang=lang,
            ordering_department_id=b.ordering_department_id,
            ordering_doctor_id=b.ordering_doctor_id,
        )

    return await _respond(request, action, ExamsIn, status=201)


@router.get(f"{API}/exams", responses=_ERRORS)  # type: ignore[arg-type]
async def list_exams(request: Request) -> JSONResponse:
    return await _respond(request, lambda s, p, b: s.list_exam_bookings(p))


@router.post(f"{API}/exams/{{exam_booking_id}}/report-ready", responses=_ERRORS)  # type: ignore[arg-type]
async def report_ready(request: Request, exam_booking_id: str) -> JSONResponse:
    """Clinicians (fever accounts with role "clinician"): the report is ready -> the patient is
    notified with a follow-up offer. Reports are also announced automatically at report_ready_at."""
    lang = request_lang(request)
    fever = getattr(request.app.state, "fever", None)
    if fever is None:
        return JSONResponse(BookingError(401, "auth_required").body(lang), status_code=401)
    try:
        from server.fever.errors import FeverError

        token = request.headers.get("authorization", "").partition(" ")[2].strip() or None
        account = await run_in_threadpool(fever.service.authenticate, token)
    except FeverError as exc:
        return JSONResponse(exc.body(), status_code=exc.status)
    except Exception:
        log.exception("clinician sign-in check failed")
        return JSONResponse(BookingError(500, "internal").body(lang), status_code=500)
    if account.role != "clinician":
        return JSONResponse(BookingError(403, "wrong_role").body(lang), status_code=403)
    return await _respond(request, lambda s, p, b: s.report_ready(exam_booking_id), auth=False)


# ------------------------------------------------------------------------------ FHIR R4 shapes


async def _fhir(request: Request, action: Action, *, auth: bool = False) -> JSONResponse:
    response = await _respond(request, action, auth=auth)
    if response.status_code == 200:
        response.headers["content-type"] = "application/fhir+json"
    return response


@router.get("/fhir/Schedule", responses=_ERRORS)  # type: ignore[arg-type]
async def fhir_schedules(
    request: Request, clinic_id: str | None = None, department_id: str | None = None
) -> JSONResponse:
    """A searchset Bundle of the doctors' Schedules (Practitioner + HealthcareService actors)."""
    lang = request_lang(request)
    clinic = clinic_id or _runtime(request).default_clinic_id
    return await _fhir(request, lambda s, p, b: s.fhir_schedules(clinic, department_id, lang))


@router.get("/fhir/Slot", responses=_ERRORS)  # type: ignore[arg-type]
async def fhir_slots(
    request: Request,
    department_id: str,
    clinic_id: str | None = None,
    date: str | None = None,
    half_day: str | None = None,
) -> JSONResponse:
    """A searchset Bundle of Slots: free, busy, or busy-unavailable (reserved for referrals)."""
    lang = request_lang(request)
    clinic = clinic_id or _runtime(request).default_clinic_id
    return await _fhir(
        request,
        lambda s, p, b: s.fhir_slots(
            clinic, department_id, day=parse_day(date) if date else None, half_day=half_day, lang=lang
        ),
    )


@router.get("/fhir/Appointment", responses=_ERRORS)  # type: ignore[arg-type]
async def fhir_appointments(request: Request) -> JSONResponse:
    """The signed-in patient's Appointments as a searchset Bundle."""
    lang = request_lang(request)
    return await _fhir(request, lambda s, p, b: s.fhir_appointments(p, lang=lang), auth=True)


@router.get("/fhir/Appointment/{appointment_id}", responses=_ERRORS)  # type: ignore[arg-type]
async def fhir_appointment(request: Request, appointment_id: str) -> JSONResponse:
    """One Appointment of the signed-in patient (FHIR id: our id)."""
    lang = request_lang(request)
    return await _fhir(request, lambda s, p, b: s.fhir_appointments(p, appointment_id, lang=lang), auth=True)
