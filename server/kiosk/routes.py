"""Kiosk REST routes: voice in (/stt), voice out (/tts), the visit-plan QR code (/qr) and the page
configuration (/config). Thin: read the body within a limit, call the runtime, shape the answer.
Errors are {"error": {"code", "message"}} in the request's language (?lang=, Accept-Language, zh)."""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from server.connection import request_lang
from server.kiosk.errors import KioskError
from server.kiosk.qr import VisitPlanCode, parse_plan, plan_qr_svg
from server.kiosk.runtime import KioskRuntime
from server.kiosk.tts import MAX_TTS_CHARS


def _plan_schema() -> dict[str, Any]:
    schema = VisitPlanCode.model_json_schema()
    schema.pop("$defs", None)
    return schema


MAX_AUDIO_BYTES = 2 * 1024 * 1024  # ~60 s of browser opus is far below this; a WAV minute is ~1.9 MB
MAX_JSON_BYTES = 16 * 1024
NO_STORE = {"Cache-Control": "no-store"}  # a visitor's words must not linger in caches

router = APIRouter(prefix="/api/kiosk", tags=["kiosk"])

_TTS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["text"],
                    "properties": {
                        "text": {"type": "string", "maxLength": MAX_TTS_CHARS},
                        "lang": {"type": "string", "enum": ["zh", "en"]},
                    },
                },
                "example": {"text": "请到三楼皮肤科诊室候诊。", "lang": "zh"},
            }
        },
    }
}
_QR_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": {"plan": _plan_schema()}},
                "example": {
                    "plan": {
                        "clinic_id": "demo-general-hospital",
                        "department_id": "dermatology",
                        "slot_start": "2026-11-24T09:30:00+08:00",
                        "room_id": "clinic_dermatology",
                        "steps": ["checked_in", "waiting", "consultation"],
                    }
                },
            }
        },
    }
}


def _runtime(request: Request) -> KioskRuntime:
    return request.app.state.kiosk  # type: ignore[no-any-return]


def _error(exc: KioskError, lang: Literal["zh", "en"]) -> JSONResponse:
    return JSONResponse(exc.body(lang), status_code=exc.status, headers=NO_STORE)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes without reading it all into memory first."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise KioskError("body_too_large", limit=limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise KioskError("body_too_large", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_json(request: Request) -> dict[str, Any]:
    raw = await _read_body(request, MAX_JSON_BYTES)
    try:
        data = json.loads(raw or b"null")
    except (UnicodeDecodeError, ValueError):
        raise KioskError("bad_json") from None
    if not isinstance(data, dict):
        raise KioskError("bad_json")
    return data


@router.get("/config")
async def kiosk_config(request: Request) -> JSONResponse:
    """Idle timeout, clinic, entrance node, and whether server voice input/output work. A kiosk page
    asking this is about to be used: the speech model starts loading in the background."""
    runtime = _runtime(request)
    runtime.warm_up()
    return JSONResponse(runtime.config(), headers=NO_STORE)


@router.post(
    "/stt",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"audio/*": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def speech_to_text(request: Request) -> JSONResponse:
    """Raw audio body (wav, webm/opus, ogg; up to 2 MB, 60 s) -> {text, language, seconds}.
    ?lang=zh|en is the visitor's language. 422 bad_audio / no_speech / stt_language; 503 stt_unavailable."""
    lang = request_lang(request)
    try:
        audio = await _read_body(request, MAX_AUDIO_BYTES)
        transcript = await run_in_threadpool(_runtime(request).stt.transcribe, audio, lang)
    except KioskError as exc:
        return _error(exc, lang)
    return JSONResponse(transcript.as_dict(), headers=NO_STORE)


@router.post("/tts", responses={200: {"content": {"audio/wav": {}}}}, openapi_extra=_TTS_BODY)
async def text_to_speech(request: Request) -> Response:
    """{text, lang} -> audio/wav spoken by espeak-ng. 422 empty_text / text_too_long; 503 tts_unavailable."""
    lang = request_lang(request)
    try:
        body = await _read_json(request)
        text, speak_lang = body.get("text"), body.get("lang") or lang
        if not isinstance(text, str):
            raise KioskError("invalid_field", field="text", detail="a string is required / 需要文字")
        if speak_lang not in ("zh", "en"):
            raise KioskError("invalid_field", field="lang", detail="zh | en")
        wav = await run_in_threadpool(_runtime(request).tts.synthesize, text, speak_lang)
    except KioskError as exc:
        return _error(exc, lang)
    return Response(wav, media_type="audio/wav", headers=NO_STORE)


@router.post("/qr", responses={200: {"content": {"image/svg+xml": {}}}}, openapi_extra=_QR_BODY)
async def visit_plan_qr(request: Request) -> Response:
    """{plan: {clinic_id, department_id?, slot_start?, room_id?, appointment_id?, visit_id?, steps: [ids]}}
    -> image/svg+xml; the encoded line is also in the X-Plan-Text header."""
    lang = request_lang(request)
    try:
        body = await _read_json(request)
        plan = parse_plan(body.get("plan", body))
        title = "就诊计划 Daozhen" if lang == "zh" else "Daozhen visit plan"
        svg, text = plan_qr_svg(plan, title=title)
    except KioskError as exc:
        return _error(exc, lang)
    return Response(svg, media_type="image/svg+xml", headers={**NO_STORE, "X-Plan-Text": text})
