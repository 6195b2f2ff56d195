"""LangChain tools of the service desk: find slots, book, cancel, route, mobile clinic, nearest
primary care — pydantic argument schemas over the booking service and the pure tools/ modules.

As with triage, the desk (assistant/visit_flow.py) chooses the tool in code and fills the arguments
from rules ("帮我挂明天上午皮肤科的号" -> find_slots(dermatology, tomorrow, am)), so a small model never
free-styles a booking. Every tool returns plain JSON-able data; domain errors propagate unchanged
(BookingError, NavigationError, TieredCareError, ... with .code and .message(lang)).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Literal

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from tools import navigation, tiered_care

_ID = r"^[a-z0-9_.:\-]{1,120}$"


class FindSlotsArgs(BaseModel):
    clinic_id: str = Field(pattern=_ID)
    department_id: str = Field(pattern=_ID)
    day: date | None = None
    half_day: Literal["am", "pm"] | None = None
    limit: int = Field(default=4, ge=1, le=200)


class BookSlotArgs(BaseModel):
    patient_id: str = Field(min_length=1, max_length=80)
    slot_id: str = Field(pattern=_ID)
    idempotency_key: str = Field(min_length=1, max_length=200)


class CancelBookingArgs(BaseModel):
    patient_id: str = Field(min_length=1, max_length=80)
    appointment_id: str = Field(min_length=1, max_length=80)


class RouteArgs(BaseModel):
    map_id: str = Field(pattern=_ID)
    start: str = Field(min_length=1, max_length=120, description="place id or name")
    to: str = Field(min_length=1, max_length=120, description="place id or name")
    step_free: bool = False


class AreaArgs(BaseModel):
    area: str = Field(min_length=1, max_length=200, description="village or district, in words")


def make_desk_tools(booking: Any | None, clock: Callable[[], datetime]) -> dict[str, StructuredTool]:
    """The desk's tools; the booking ones only when a booking service runs."""

    def route(map_id: str, start: str, to: str, step_free: bool = False) -> dict[str, Any]:
        plan = navigation.find_route(navigation.load_map(map_id), start, to, step_free=step_free)
        return plan.model_dump(mode="json")

    def next_mobile_clinic(area: str) -> dict[str, Any]:
        return tiered_care.next_mobile_visit(area, clock()).model_dump(mode="json")

    def nearest_primary_care(area: str) -> dict[str, Any]:
        found = tiered_care.resolve_area(area)
        services = tiered_care.nearest_services(found)
        return {
            "area": found.model_dump(mode="json"),
            "services": [s.model_dump(mode="json") for s in services],
        }

    tools = {
        "route": StructuredTool.from_function(
            func=route,
            name="route",
            description="Route inside the hospital: steps in zh/en, metres, seconds; step-free on request.",
            args_schema=RouteArgs,
        ),
        "next_mobile_clinic": StructuredTool.from_function(
            func=next_mobile_clinic,
            name="next_mobile_clinic",
            description="Next mobile clinic (巡回医疗) visit to a village: time, place, team, offers.",
            args_schema=AreaArgs,
        ),
        "nearest_primary_care": StructuredTool.from_function(
            func=nearest_primary_care,
            name="nearest_primary_care",
            description="Community health centres and family doctor teams nearest to a village or district.",
            args_schema=AreaArgs,
        ),
    }
    if booking is None:
        return tools

    def find_slots(
        clinic_id: str,
        department_id: str,
        day: date | None = None,
        half_day: str | None = None,
        limit: int = 4,
    ) -> list[dict[str, Any]]:
        return list(booking.search_slots(clinic_id, department_id, day=day, half_day=half_day, limit=limit))

    def book_slot(patient_id: str, slot_id: str, idempotency_key: str) -> dict[str, Any]:
        return dict(booking.book(patient_id, slot_id, idempotency_key))

    def cancel_booking(patient_id: str, appointment_id: str) -> dict[str, Any]:
        return dict(booking.cancel(patient_id, appointment_id))

    tools["find_slots"] = StructuredTool.from_function(
        func=find_slots,
        name="find_slots",
        description="Free numbered slots (号源) of a department, earliest first; optional day/half-day.",
        args_schema=FindSlotsArgs,
    )
    tools["book_slot"] = StructuredTool.from_function(
        func=book_slot,
        name="book_slot",
        description="Book one slot for a patient; the same idempotency key never books twice.",
        args_schema=BookSlotArgs,
    )
    tools["cancel_booking"] = StructuredTool.from_function(
        func=cancel_booking,
        name="cancel_booking",
        description="Cancel the patient's own booking; the first waiting patient gets the slot.",
        args_schema=CancelBookingArgs,
    )
    return tools
