"""Patients without passwords: chat and kiosk visitors get an id and a bearer token.

A kiosk visitor or a chat user who books, follows a visit or receives reminders is a "patient".
The token is shown to the client once; only its SHA-256 is stored (server/fever/auth.py), so a copy
of the database cannot be used to act as a patient.

POST /api/patients {display_name?, phone?, lang?, village?} -> {patient_id, token}
Other routes depend on `require_patient` ("Authorization: Bearer <token>"); it raises
server.errors.ApiError(401, "auth_required"). Apps (and test apps) call
server.errors.install_error_handlers(app) so that renders as {"error": {"code", "message"}}.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError, field_validator

from server.connection import bearer_token, request_lang
from server.errors import ApiError, error_body
from server.fever.auth import new_id, new_token, token_digest
from server.sqlite_base import SqliteStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS patients (
    patient_id   TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    display_name TEXT,
    phone        TEXT,
    lang         TEXT NOT NULL,
    village      TEXT,
    created_at   TEXT NOT NULL
);
"""
_PHONE = re.compile(r"^[0-9 +\-]{5,20}$")
MAX_BODY_BYTES = 4096


class PatientIn(BaseModel):
    display_name: str | None = Field(default=None, max_length=60)
    phone: str | None = None
    lang: Literal["zh", "en"] = "zh"
    village: str | None = Field(default=None, max_length=60)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is not None and not _PHONE.match(value):
            raise ValueError("digits, spaces, + and - only; 5-20 characters")
        return value


class PatientDirectory:
    def __init__(self, path: Path | str) -> None:
        self._db = SqliteStore(path, _SCHEMA, 1, rows_by_name=True)

    def create(
        self,
        display_name: str | None = None,
        phone: str | None = None,
        lang: str = "zh",
        village: str | None = None,
    ) -> tuple[str, str]:
        patient_id, token = "p-" + new_id(), new_token()
        with self._db._transaction() as conn:
            conn.execute(
                "INSERT INTO patients VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    patient_id,
                    token_digest(token),
                    display_name,
                    phone,
                    lang,
                    village,
                    datetime.now(UTC).isoformat(),
                ),
            )
        return patient_id, token

    def authenticate(self, token: str | None) -> str | None:
        if not token:
            return None
        with self._db._transaction() as conn:
            row = conn.execute(
                "SELECT patient_id FROM patients WHERE token_sha256 = ?", (token_digest(token),)
            ).fetchone()
        return row["patient_id"] if row else None

    def profile(self, patient_id: str) -> dict[str, str | None] | None:
        with self._db._transaction() as conn:
            row = conn.execute(
                "SELECT patient_id, display_name, lang, village FROM patients WHERE patient_id = ?",
                (patient_id,),
            ).fetchone()
        return dict(row) if row else None

    def close(self) -> None:
        self._db.close()


async def require_patient(request: Request) -> str:
    """FastAPI dependency: the patient id of the bearer token, or 401 auth_required."""
    directory: PatientDirectory = request.app.state.patients
    patient_id = await run_in_threadpool(directory.authenticate, bearer_token(request))
    if patient_id is None:
        raise ApiError(401, "auth_required", request_lang(request))
    return patient_id


router = APIRouter(tags=["patients"])


@router.post("/api/patients", status_code=201)
async def create_patient(request: Request) -> JSONResponse:
    lang = request_lang(request)
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        return JSONResponse(error_body("body_too_large", lang, limit=MAX_BODY_BYTES), status_code=413)
    try:
        body = PatientIn.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "body"
        return JSONResponse(
            error_body("invalid_field", lang, field=field, detail=first.get("msg", "")), status_code=422
        )
    directory: PatientDirectory = request.app.state.patients
    patient_id, token = await run_in_threadpool(
        directory.create, body.display_name, body.phone, body.lang, body.village
    )
    return JSONResponse({"patient_id": patient_id, "token": token, "lang": body.lang}, status_code=201)
