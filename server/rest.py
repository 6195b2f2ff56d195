"""REST routes: health, readiness, triage, guideline sections, metrics. Thin: parse, call a service,
shape the response. Errors are {"error": {"code", "message"}} with zh/en text."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from server.errors import error_body
from server.runtime import Runtime
from server.triage_service import ApiError, triage_from_body
from tools.triage_models import Facts, Lang, Sex, TriageResult, VitalSigns

router = APIRouter()

# ------------------------------------------------------------------------------ models (for docs)


class ErrorDetail(BaseModel):
    code: str = Field(
        description="stable error code, e.g. empty_input, input_too_long, invalid_fact, bad_json"
    )
    message: str = Field(description="human-readable message (zh / en)")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class KnowledgeStatus(BaseModel):
    ready: bool
    version: str | None = None
    error: str | None = None


class LLMStatus(BaseModel):
    name: str
    available: bool
    reason: str | None = None


class ChatStatus(BaseModel):
    ready: bool
    mode: str = Field(description="agent | rules | injected")
    service: str


class ReadinessResponse(BaseModel):
    status: Literal["ready", "starting", "failed"]
    knowledge: KnowledgeStatus
    llm: LLMStatus
    chat: ChatStatus


class TriageRequest(BaseModel):
    """One `daozhen triage --jsonl` row: the text, optionally the language and known facts,
    either nested (`facts`, `facts.vitals`) or flat (`age_months`, `temperature_c`, ...)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"text": "胸口压榨样疼痛，出冷汗，持续20分钟", "lang": "zh"},
                {
                    "text": "my 2 year old has had a fever since yesterday",
                    "age_months": 24,
                    "temperature_c": 39.2,
                },
                {
                    "text": "rash on both arms, itchy",
                    "facts": {"age_months": 420, "vitals": {"temperature_c": 36.8}},
                },
            ]
        }
    )

    text: str = Field(max_length=4000, description="symptom description")
    lang: Lang | None = Field(default=None, description="output language; detected from text when absent")
    facts: Facts | None = None
    vitals: VitalSigns | None = None
    age_months: float | None = None
    sex: Sex | None = None
    pregnant: bool | None = None
    pregnancy_weeks: float | None = None
    duration_hours: float | None = None
    chronic_conditions: list[str] | None = None
    temperature_c: float | None = None
    heart_rate: float | None = None
    respiratory_rate: float | None = None
    spo2: float | None = None
    systolic_bp: float | None = None
    diastolic_bp: float | None = None
    glucose_mmol: float | None = None


class GuidelineSection(BaseModel):
    doc_id: str
    section: str
    lang: Lang
    title: str
    section_title: str
    text: str
    doc_version: str
    sources: list[dict[str, Any]]


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with every local $ref replaced by its definition (OpenAPI has no $defs here)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


_TRIAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _inline_refs(TriageRequest.model_json_schema())}},
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "not JSON, or not a JSON object"},
    413: {"model": ErrorResponse, "description": "request body too large"},
    422: {"model": ErrorResponse, "description": "unusable input (empty, too long, invalid fact)"},
}


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------ routes


@router.get("/healthz", response_model=HealthResponse, tags=["ops"])
async def healthz() -> dict[str, str]:
    """The process is up (liveness)."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=ReadinessResponse,
    responses={
        503: {"model": ReadinessResponse, "description": "still loading, or the knowledge base failed"}
    },
    tags=["ops"],
)
async def readyz(request: Request) -> JSONResponse:
    """Ready when the knowledge base is open and the chat service is built (the model may be
    absent: then `llm.available` is false and chats run in rules-only mode)."""
    ready, status = _runtime(request).readiness()
    return JSONResponse(status, status_code=200 if ready else 503)


@router.post(
    "/api/triage",
    response_model=TriageResult,
    responses=_ERRORS,  # type: ignore[arg-type]
    openapi_extra=_TRIAGE_BODY,
    tags=["triage"],
)
async def triage(request: Request) -> JSONResponse:
    """Assess one symptom description with the deterministic engine: the same JSON as
    `daozhen triage --json` (and as one line of `--jsonl`)."""
    body = await request.body()
    try:
        result = await run_in_threadpool(triage_from_body, body)
    except ApiError as exc:
        return JSONResponse(exc.body(), status_code=exc.status)
    return JSONResponse(result)


@router.get(
    "/api/guidelines/{doc_id}/{section}",
    response_model=GuidelineSection,
    responses={404: {"model": ErrorResponse}},
    tags=["knowledge"],
)
async def guideline_section(
    request: Request, doc_id: str, section: str, lang: Lang | None = None
) -> JSONResponse:
    """The guideline text a citation {doc_id, section} points to, in `lang` when available."""
    library = request.app.state.guidelines
    found = await run_in_threadpool(library.section, doc_id, section, lang)
    if found is None:
        return JSONResponse(error_body("not_found", lang), status_code=404)
    return JSONResponse(found)


@router.get("/metrics", response_class=PlainTextResponse, tags=["ops"])
async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text format."""
    return PlainTextResponse(
        _runtime(request).metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
