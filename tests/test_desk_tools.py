"""The service desk's LangChain tools: argument schemas guard the booking service and the pure
navigation / tiered-care modules; domain errors come through with their codes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from assistant.agent.desk_tools import make_desk_tools
from server.booking.service import BookingService
from tools.booking.catalogue import load_directory
from tools.navigation import NavigationError

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 15, 0, tzinfo=TZ)  # a Monday afternoon


@pytest.fixture()
def tools(tmp_path: Path) -> Iterator[dict]:
    booking = BookingService(
        tmp_path / "booking.sqlite3", load_directory(), clock=lambda: NOW, tz="Asia/Shanghai"
    )
    yield make_desk_tools(booking, lambda: NOW)
    booking.close()


def test_without_a_booking_service_only_the_pure_tools_exist() -> None:
    assert set(make_desk_tools(None, lambda: NOW)) == {"route", "next_mobile_clinic", "nearest_primary_care"}


def test_find_book_and_cancel_through_the_tools(tools: dict) -> None:
    slots = tools["find_slots"].invoke(
        {"clinic_id": "demo-general-hospital", "department_id": "dermatology", "half_day": "pm", "limit": 3}
    )
    assert len(slots) == 3 and all(s["half_day"] == "pm" for s in slots)
    args = {"patient_id": "p-1", "slot_id": slots[0]["slot_id"], "idempotency_key": "k-1"}
    first = tools["book_slot"].invoke(args)
    again = tools["book_slot"].invoke(args)  # a retried request books once
    assert again["appointment_id"] == first["appointment_id"] and again["replayed"] is True
    cancelled = tools["cancel_booking"].invoke(
        {"patient_id": "p-1", "appointment_id": first["appointment_id"]}
    )
    assert cancelled["appointment"]["status"] == "cancelled"


@pytest.mark.parametrize(
    "args",
    [
        {"clinic_id": "demo-general-hospital", "department_id": "dermatology", "half_day": "evening"},
        {"clinic_id": "DROP TABLE", "department_id": "dermatology"},
        {"clinic_id": "demo-general-hospital", "department_id": "dermatology", "day": "下周八"},
        {"clinic_id": "demo-general-hospital", "department_id": "dermatology", "limit": 0},
    ],
)
def test_bad_arguments_are_refused_by_the_schema(tools: dict, args: dict) -> None:
    with pytest.raises(ValidationError):
        tools["find_slots"].invoke(args)


def test_route_errors_keep_their_code(tools: dict) -> None:
    plan = tools["route"].invoke({"map_id": "demo-general-hospital", "start": "entrance_main", "to": "药房"})
    assert plan["nodes"][-1] == "pharmacy" and plan["steps"]
    with pytest.raises(NavigationError) as caught:
        tools["route"].invoke({"map_id": "demo-general-hospital", "start": "entrance_main", "to": "火星"})
    assert caught.value.code == "unknown_place"


def test_mobile_clinic_and_primary_care_by_village(tools: dict) -> None:
    visit = tools["next_mobile_clinic"].invoke({"area": "岭下村"})
    assert datetime.fromisoformat(visit["start"]) > NOW
    found = tools["nearest_primary_care"].invoke({"area": "石门村"})
    distances = [s["distance_km"] for s in found["services"]]
    assert distances == sorted(distances) and found["services"]
