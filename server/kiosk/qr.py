"""The visit plan as a QR code the visitor photographs or scans at the kiosk (segno, pure Python).

The code carries ids, not prose: a short line any phone camera shows as text and a desk scanner
parses back (parse_plan_text), e.g.

    DZ1;c=demo-general-hospital;d=dermatology;t=2026-11-24T09:00+08:00;r=clinic_dermatology;s=register,consult

Keys: c clinic, d department, t slot start, r room, a appointment, v visit, s next-step ids.
Ids may not contain the separators ; = , so the line stays unambiguous without escaping.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from typing import Any

import segno
from pydantic import BaseModel, Field, ValidationError, field_validator

from server.kiosk.errors import KioskError

PREFIX = "DZ1"
# Well under version-40 capacity; beyond a few hundred characters a code on a screen is hard to scan.
MAX_QR_CHARS = 600
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/+\-]{0,79}$")  # ASCII: the text also goes in a header
_KEYS = {
    "c": "clinic_id",
    "d": "department_id",
    "t": "slot_start",
    "r": "room_id",
    "a": "appointment_id",
    "v": "visit_id",
    "s": "steps",
}


def _check_id(value: str | None) -> str | None:
    if value is None:
        return None
    if not _ID.match(value):
        raise ValueError("letters, digits and _ . : @ / + - only, at most 80 characters")
    return value


class VisitPlanCode(BaseModel):
    """What the QR code says about one visit."""

    clinic_id: str
    department_id: str | None = None
    slot_start: datetime | None = None
    room_id: str | None = None
    appointment_id: str | None = None
    visit_id: str | None = None
    steps: list[str] = Field(default_factory=list, max_length=30)

    @field_validator("clinic_id", "department_id", "room_id", "appointment_id", "visit_id")
    @classmethod
    def _ids(cls, value: str | None) -> str | None:
        return _check_id(value)

    @field_validator("steps")
    @classmethod
    def _step_ids(cls, values: list[str]) -> list[str]:
        for value in values:
            _check_id(value)
        return values


def parse_plan(data: Any) -> VisitPlanCode:
    """A JSON plan -> VisitPlanCode; raises KioskError("bad_plan") naming the first bad field."""
    try:
        return VisitPlanCode.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "plan"
        raise KioskError("bad_plan", detail=f"{where}: {first.get('msg', '')}") from None


def plan_text(plan: VisitPlanCode) -> str:
    parts = [PREFIX, f"c={plan.clinic_id}"]
    if plan.department_id:
        parts.append(f"d={plan.department_id}")
    if plan.slot_start is not None:
        parts.append(f"t={plan.slot_start.isoformat(timespec='minutes')}")
    for key, value in (("r", plan.room_id), ("a", plan.appointment_id), ("v", plan.visit_id)):
        if value:
            parts.append(f"{key}={value}")
    if plan.steps:
        parts.append("s=" + ",".join(plan.steps))
    text = ";".join(parts)
    if len(text) > MAX_QR_CHARS:
        raise KioskError("plan_too_long")
    return text


def parse_plan_text(text: str) -> dict[str, Any]:
    """The inverse of plan_text (for a desk scanner and the tests): field name -> value."""
    prefix, *fields = text.split(";")
    if prefix != PREFIX:
        raise ValueError(f"not a Daozhen visit code: {text[:20]!r}")
    parsed: dict[str, Any] = {}
    for field in fields:
        key, _, value = field.partition("=")
        name = _KEYS.get(key)
        if name is None:
            continue  # a newer version's field: skip, do not fail
        parsed[name] = value.split(",") if key == "s" else value
    return parsed


def plan_qr_svg(plan: VisitPlanCode, *, title: str = "Daozhen visit plan") -> tuple[str, str]:
    """(svg markup, encoded text). Black on white, quiet zone of 4 modules, error correction M."""
    text = plan_text(plan)
    code = segno.make(text, error="m", micro=False)
    buffer = io.BytesIO()
    code.save(buffer, kind="svg", scale=8, border=4, dark="#000", light="#fff", title=title, xmldecl=False)
    return buffer.getvalue().decode("utf-8"), text
