"""REST for clinician handoff and patient follow-up answers (thin: authenticate, parse, call
assistant.followup / tools.handoff in a thread, shape the response).

Clinicians (fever accounts with role "clinician", "Authorization: Bearer <token>"):
    GET  /api/handoff/sessions/{session_id}        SBAR JSON of a chat session or a follow-up conversation
    GET  /api/handoff/sessions/{session_id}/fhir   FHIR R4 Bundle (document) with a Composition
    GET  /api/handoff/flags?status=open|all        clinic flags raised by follow-up answers
    POST /api/handoff/flags/{flag_id}/acknowledge
Patients (server/patients bearer token):
    POST /api/followup/answer {conversation_id?, plan_id?, question_id, check_id?, text, lang?, facts?}
         -> {"outcome": FollowUpOutcome, "conversation": {...}, "flag": {...} | null}
    GET  /api/followup/plans, POST /api/followup/plans {plan_id, anchor?, lang?, facts?}
         -> schedule a follow-up conversation and its reminders (followup_routes.py)
Errors: {"error": {"code", "message"}} in ?lang= / Accept-Language (zh by default).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assistant.followup import FollowUpConversation, FollowUpError, answer, handoff_inputs, load_plans
from assistant.session import ConversationSession
from server.connection import bearer_token, request_lang
from server.errors import REST_MESSAGES, FeatureApiError
from server.handoff.followup_routes import router as followup_router
from server.handoff.runtime import HandoffRuntime
from server.handoff.store import HandoffStore
from server.request_body import parse_json_body
from server.store import SessionStore
from tools.handoff import SBAR, build_sbar, readings_from_facts, sbar_to_fhir
from tools.triage_models import Facts, Lang

log = logging.getLogger(__name__)

router = APIRouter(tags=["handoff"])
router.include_router(followup_router)  # GET/POST /api/followup/plans: scheduling follow-ups

MAX_BODY_BYTES = 16 * 1024
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")

MESSAGES: dict[str, tuple[str, str]] = {
    **REST_MESSAGES,  # bad_json, body_too_large, invalid_field, internal
    "auth_required": ("请先登录。", "Please sign in first."),
    "bad_token": (
        "登录已失效，请重新登录。",
        "Your sign-in is not valid or has expired; please sign in again.",
    ),
    "wrong_role": (
        "只有医护账号可以查看交接摘要和提醒。",
        "Only clinician accounts may see handoffs and flags.",
    ),
    "session_not_found": ("找不到这个会话：{session_id}。", "No conversation {session_id}."),
    "conversation_not_found": ("找不到这次随访。", "No such follow-up conversation."),
    "flag_not_found": ("找不到这条提醒。", "No such clinic flag."),
    "plan_required": (
        "新的随访需要 plan_id（随访计划）。",
        "A new follow-up conversation needs a plan_id.",
    ),
    "plan_mismatch": ("这次随访属于另一个随访计划。", "This conversation belongs to another follow-up plan."),
    "not_ready": ("服务尚未就绪，请稍后再试。", "The service is not ready yet; please try again shortly."),
}


class HandoffError(FeatureApiError):
    messages = MESSAGES


def _runtime(request: Request) -> HandoffRuntime:
    runtime: HandoffRuntime | None = getattr(request.app.state, "handoff", None)
    if runtime is None or runtime.store is None:
        raise HandoffError(503, "not_ready")
    return runtime


def _store(request: Request) -> HandoffStore:
    store = _runtime(request).store
    assert store is not None
    return store


def _chat_store(request: Request) -> SessionStore:
    """The app's own chat store when the main Runtime runs; else a reader of the same file."""
    main = getattr(request.app.state, "runtime", None)
    store = getattr(main, "store", None)
    return store if isinstance(store, SessionStore) else _runtime(request).chat_store()


async def _clinician(request: Request) -> Any:
    """The fever account behind the bearer token; only clinicians pass."""
    fever = getattr(request.app.state, "fever", None)
    if fever is None:
        raise HandoffError(503, "not_ready")
    token = bearer_token(request)
    if not token:
        raise HandoffError(401, "auth_required")
    try:
        account = await run_in_threadpool(fever.service.authenticate, token)
    except Exception as exc:  # FeverError(401, auth_required | bad_token)
        code = getattr(exc, "code", "bad_token")
        raise HandoffError(401, code if code in MESSAGES else "bad_token") from exc
    if account.role != "clinician":
        raise HandoffError(403, "wrong_role")
    return account


async def _patient(request: Request) -> str:
    """The patient id behind the bearer token (server/patients.require_patient)."""
    try:
        from server.patients import require_patient
    except ImportError:  # pragma: no cover - the lead's module; without it nobody is a patient
        raise HandoffError(503, "not_ready") from None
    try:
        return await require_patient(request)
    except Exception as exc:  # ApiError(401, auth_required)
        raise HandoffError(getattr(exc, "status", 401), getattr(exc, "code", "auth_required")) from exc


def _respond(request: Request, exc: HandoffError) -> JSONResponse:
    return JSONResponse(exc.body(request_lang(request)), status_code=exc.status)


def _internal(request: Request) -> JSONResponse:
    log.exception("handoff request %s failed", request.url.path)
    return _respond(request, HandoffError(500, "internal"))


# ------------------------------------------------------------------------------ SBAR


def _sbar_for(request: Request, session_id: str, lang: Lang) -> tuple[SBAR, str]:
    """SBAR of a chat session (server/store.py) or of a follow-up conversation, and the patient
    reference for FHIR."""
    if not _ID.match(session_id):
        raise HandoffError(404, "session_not_found", session_id=session_id[:80])
    chat = _chat_store(request)
    state = chat.load_session(session_id)
    if state is not None:
        messages = chat.messages(session_id)
        decisions: list[Any] = list(chat.decisions(session_id))
        try:
            session = ConversationSession.from_dict(state)
            facts = session.facts
            if not decisions and session.last_result is not None:
                decisions = [session.last_result]  # assessed, but no card was recorded yet
        except ValidationError:  # an older stored format: the audit rows still tell the story
            facts = Facts()
        last = messages[-1].created if messages else None
        readings = readings_from_facts(facts, _parse_time(last))
        sbar = build_sbar(messages, decisions, facts, readings, lang)
        return sbar, f"session:{session_id}"
    found = _store(request).load_conversation(session_id)
    if found is None:
        raise HandoffError(404, "session_not_found", session_id=session_id)
    patient_id, data = found
    conversation = FollowUpConversation.from_dict(data)
    inputs = handoff_inputs(conversation)
    plan = load_plans().plan(conversation.plan_id)
    checks = ", ".join(dict.fromkeys(a.check_id for a in conversation.answers))
    title = plan.title.get(lang)
    context = (
        (f"随访：{title}（{checks}）" if lang == "zh" else f"Follow-up: {title} ({checks})")
        if checks
        else title
    )
    sbar = build_sbar(
        inputs["turns"], inputs["decisions"], inputs["facts"], inputs["readings"], lang, context=context
    )
    return sbar, patient_id


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


@router.get("/api/handoff/sessions/{session_id}")
async def get_sbar(request: Request, session_id: str) -> JSONResponse:
    """SBAR summary (situation, background, assessment from the engine, recommendation, sources)."""
    try:
        account = await _clinician(request)
        lang = _lang(request, account)
        sbar, _ = await run_in_threadpool(_sbar_for, request, session_id, lang)
    except HandoffError as exc:
        return _respond(request, exc)
    except Exception:
        return _internal(request)
    return JSONResponse({"session_id": session_id, "sbar": sbar.model_dump(mode="json")})


@router.get("/api/handoff/sessions/{session_id}/fhir")
async def get_sbar_fhir(request: Request, session_id: str) -> JSONResponse:
    """FHIR R4 Bundle (type document): Composition with S/B/A/R sections, Observations."""
    try:
        account = await _clinician(request)
        lang = _lang(request, account)
        sbar, patient_ref = await run_in_threadpool(_sbar_for, request, session_id, lang)
    except HandoffError as exc:
        return _respond(request, exc)
    except Exception:
        return _internal(request)
    bundle = sbar_to_fhir(sbar, patient_ref)
    return JSONResponse(
        bundle,
        media_type="application/fhir+json",
        headers={"Content-Disposition": f'attachment; filename="handoff-{session_id}.fhir.json"'},
    )


def _lang(request: Request, account: Any) -> Lang:
    if request.query_params.get("lang") in ("zh", "en") or "accept-language" in request.headers:
        return request_lang(request)
    return "en" if getattr(account, "lang", None) == "en" else "zh"


# ------------------------------------------------------------------------------ flags


@router.get("/api/handoff/flags")
async def list_flags(request: Request) -> JSONResponse:
    """Clinic flags, open ones first and the most urgent first (?status=all includes acknowledged)."""
    try:
        await _clinician(request)
        include = request.query_params.get("status") == "all"
        flags = await run_in_threadpool(_store(request).flags, include)
    except HandoffError as exc:
        return _respond(request, exc)
    except Exception:
        return _internal(request)
    return JSONResponse({"flags": flags})


@router.post("/api/handoff/flags/{flag_id}/acknowledge")
async def acknowledge_flag(request: Request, flag_id: str) -> JSONResponse:
    try:
        account = await _clinician(request)
        flag = await run_in_threadpool(_store(request).acknowledge, flag_id, account.account_id)
        if flag is None:
            raise HandoffError(404, "flag_not_found")
    except HandoffError as exc:
        return _respond(request, exc)
    except Exception:
        return _internal(request)
    return JSONResponse({"flag": flag})


# ------------------------------------------------------------------------------ follow-up answers


class FollowUpAnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,80}$")
    plan_id: str | None = Field(default=None, max_length=64)
    question_id: str = Field(min_length=1, max_length=64)
    check_id: str | None = Field(default=None, max_length=64)
    text: str = Field(max_length=4000)  # longer than an answer may be: answer() asks again, politely
    lang: Literal["zh", "en"] | None = None
    facts: Facts | None = None  # what the clinic knows (age, sex, pregnancy) for a new conversation


async def _parse(request: Request) -> FollowUpAnswerIn:
    parsed: FollowUpAnswerIn = await parse_json_body(
        request, FollowUpAnswerIn, limit=MAX_BODY_BYTES, error=HandoffError
    )
    return parsed


def _answer(store: HandoffStore, patient_id: str, body: FollowUpAnswerIn, lang: Lang) -> dict[str, Any]:
    conversation: FollowUpConversation | None = None
    if body.conversation_id:
        found = store.load_conversation(body.conversation_id)
        if found is not None:
            owner, data = found
            if owner != patient_id:  # someone else's: answer as if it did not exist
                raise HandoffError(404, "conversation_not_found")
            conversation = FollowUpConversation.from_dict(data)
            if body.plan_id and body.plan_id != conversation.plan_id:
                raise HandoffError(409, "plan_mismatch")
    if conversation is None:
        if not body.plan_id:
            raise HandoffError(422, "plan_required")
        load_plans().plan(body.plan_id)  # unknown plan -> FollowUpError
        extra = {"conversation_id": body.conversation_id} if body.conversation_id else {}
        conversation = FollowUpConversation(
            plan_id=body.plan_id, patient_id=patient_id, lang=lang, facts=body.facts or Facts(), **extra
        )
    outcome = answer(conversation, body.question_id, body.text, lang, check_id=body.check_id)
    flag = None
    if outcome.status == "recorded":
        store.save_conversation(
            conversation.conversation_id,
            patient_id,
            conversation.plan_id,
            conversation.level,
            conversation.to_dict(),
        )
        if outcome.clinic_flag:
            escalation = outcome.escalation
            flag = store.add_flag(
                patient_id=patient_id,
                conversation_id=conversation.conversation_id,
                plan_id=conversation.plan_id,
                check_id=outcome.check_id,
                question_id=outcome.question_id,
                kind="escalation" if escalation else "attention",
                level=outcome.answer_level,
                call_120=bool(escalation and escalation.call_120),
                answer_text=body.text.strip(),
                red_flags=[f.model_dump(mode="json") for f in (escalation.red_flags if escalation else [])],
                rule_ids=[f.rule_id for f in outcome.rule_trace],
                advice=outcome.message,
            )
    return {
        "outcome": outcome.model_dump(mode="json", exclude={"engine"}),
        "conversation": {
            "conversation_id": conversation.conversation_id,
            "plan_id": conversation.plan_id,
            "level": conversation.level.value,
            "answers": len(conversation.answers),
        },
        "flag": flag,
    }


def record_in_chronic_registry(state: Any, patient_id: str, outcome: dict[str, Any], lang: Lang) -> list[str]:
    """A check-in value (blood pressure, glucose) also goes into the clinic's chronic-care registry
    for every record linked to this patient, so the overdue / worsening list sees home readings.
    Returns the chronic record ids written; nothing when the reading was not recorded."""
    reading = outcome.get("reading") if outcome.get("status") == "recorded" else None
    chronic = getattr(state, "chronic", None)
    if not reading or chronic is None:
        return []
    from server.chronic.service import ReadingIn

    if reading["kind"] == "bp":
        values = {"systolic": reading["systolic"], "diastolic": reading["diastolic"], "unit": "mmHg"}
    else:
        values = {"value": reading["mmol_l"], "unit": "mmol/L", "context": reading.get("context")}
    written = []
    for record_id in chronic.store.patients_linked_to(patient_id):
        try:
            chronic.service.add_reading(
                record_id, ReadingIn(kind=reading["kind"], **values), f"followup:{patient_id}", lang
            )
            written.append(record_id)
        except Exception:  # the follow-up answer stands; the registry write is a best effort
            log.exception("recording a check-in reading for chronic record %s failed", record_id)
    return written


@router.post("/api/followup/answer")
async def followup_answer(request: Request) -> JSONResponse:
    """A patient's answer to a follow-up question. Always read by the triage engine first: a red
    flag anywhere in it escalates (advice with 120, and a clinic flag). status "retry" means the
    answer could not be used (e.g. an incomplete blood pressure): show the message, ask again."""
    lang = request_lang(request)
    try:
        patient_id = await _patient(request)
        body = await _parse(request)
        lang = body.lang or lang
        runtime = _runtime(request)
        async with runtime.answer_lock:
            data = await run_in_threadpool(_answer, _store(request), patient_id, body, lang)
        data["chronic_records"] = await run_in_threadpool(
            record_in_chronic_registry, request.app.state, patient_id, data["outcome"], lang
        )
    except HandoffError as exc:
        return JSONResponse(exc.body(lang), status_code=exc.status)
    except FollowUpError as exc:
        status = 404 if exc.code in ("unknown_plan", "unknown_question", "unknown_check") else 422
        return JSONResponse({"error": {"code": exc.code, "message": exc.message(lang)}}, status_code=status)
    except Exception:
        return _internal(request)
    return JSONResponse(data)
