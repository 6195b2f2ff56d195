"""BookingService on SQLite and on a real PostgreSQL: search, book, cancel, reschedule, the waiting
list (候补) with automatic promotion, referral-reserved numbers (号源下沉), idempotency — and each
bad input the issue lists (past, taken, vanished, retried, someone else's, unknown department)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from booking_support import CHC, HOSPITAL, TZ, Clock, Outbox, directory, hospital, slot_generator
from pg_support import pg_url, postgres_server  # noqa: F401

from server.booking.errors import BookingError
from server.booking.service import BookingService

MONDAY = date(2026, 11, 23)
THURSDAY = date(2026, 11, 26)


def slot(doctor: str, day: date, half_day: str, number: int) -> str:
    return f"{HOSPITAL}:{doctor}:{day.isoformat()}:{half_day}:{number:02d}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return str(tmp_path / "booking.sqlite3")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
def service(db_url: str, clock: Clock, outbox: Outbox) -> Iterator[BookingService]:
    svc = BookingService(db_url, directory(), notify=outbox, clock=clock, slot_generator=slot_generator())
    yield svc
    svc.close()


def code_of(exc: pytest.ExceptionInfo[BookingError]) -> str:
    return exc.value.code


# ------------------------------------------------------------------------------ search


def test_search_lists_public_free_slots_and_session_counts(service: BookingService) -> None:
    found = service.search(HOSPITAL, "dermatology", day=THURSDAY, half_day="am")
    ids = [s["slot_id"] for s in found["slots"]]
    # 4 numbers, the last one (ceil(0.25 * 4)) reserved for community referrals until Tuesday 00:00.
    assert ids == [slot("derm1", THURSDAY, "am", n) for n in (1, 2, 3)]
    first = found["slots"][0]
    assert first["start"] == "2026-11-26T08:00:00+08:00"
    assert first["department_name"] == {"zh": "皮肤科", "en": "Dermatology"}
    assert service.search_slots(HOSPITAL, "dermatology", day=THURSDAY, half_day="am") == found["slots"]
    assert found["sessions"] == [
        {"date": "2026-11-26", "half_day": "am", "total": 4, "free": 3, "waiting": 0}
    ]
    referred = service.search(HOSPITAL, "dermatology", day=THURSDAY, half_day="am", patient_is_referral=True)
    assert len(referred["slots"]) == 4 and referred["slots"][-1]["referral_only"] is True


def test_search_rejects_unknown_department_clinic_and_days_outside_the_window(
    service: BookingService,
) -> None:
    with pytest.raises(BookingError) as exc:
        service.search(HOSPITAL, "astrology")
    assert code_of(exc) == "unknown_department" and exc.value.status == 404
    assert "astrology" in exc.value.zh and "astrology" in exc.value.en
    with pytest.raises(BookingError) as exc:
        service.search("nowhere", "dermatology")
    assert code_of(exc) == "unknown_clinic"
    with pytest.raises(BookingError) as exc:
        service.search(HOSPITAL, "dermatology", day=date(2026, 11, 22))
    assert code_of(exc) == "date_in_past"
    with pytest.raises(BookingError) as exc:
        service.search(HOSPITAL, "dermatology", day=date(2026, 12, 30))
    assert code_of(exc) == "not_open_yet"


def test_search_skips_slots_that_already_started(service: BookingService, clock: Clock) -> None:
    clock.set(datetime(2026, 11, 23, 9, 30, tzinfo=TZ))
    found = service.search(HOSPITAL, "dermatology", day=MONDAY, half_day="am")
    assert [s["number"] for s in found["slots"]] == [3, 4]  # Monday's reserved number is released


# ------------------------------------------------------------------------------ booking


def test_book_then_list(service: BookingService) -> None:
    booked = service.book("alice", slot("derm1", THURSDAY, "am", 1), "k1")
    appointment = booked
    assert booked["replayed"] is False
    assert appointment["status"] == "booked" and appointment["patient_id"] == "alice"
    assert appointment["room_id"] == "clinic_dermatology" and appointment["number"] == 1
    listed = service.list_appointments("alice")
    assert [a["appointment_id"] for a in listed["appointments"]] == [appointment["appointment_id"]]
    assert service.list_appointments("bob")["appointments"] == []
    found = service.search(HOSPITAL, "dermatology", day=THURSDAY, half_day="am")
    assert slot("derm1", THURSDAY, "am", 1) not in [s["slot_id"] for s in found["slots"]]


def test_booking_a_past_slot_is_refused(service: BookingService, clock: Clock) -> None:
    clock.set(datetime(2026, 11, 23, 9, 30, tzinfo=TZ))
    with pytest.raises(BookingError) as exc:
        service.book("alice", slot("derm1", MONDAY, "am", 1), "k1")
    assert code_of(exc) == "slot_in_past" and "2026-11-23 08:00" in exc.value.en
    with pytest.raises(BookingError) as exc:  # last week's slot id: still "past", not "not found"
        service.book("alice", slot("derm1", date(2026, 11, 16), "am", 1), "k2")
    assert code_of(exc) == "slot_in_past"


def test_booking_a_taken_slot_says_taken_and_points_to_the_waitlist(service: BookingService) -> None:
    target = slot("derm1", THURSDAY, "am", 2)
    service.book("alice", target, "k1")
    with pytest.raises(BookingError) as exc:
        service.book("bob", target, "k1")
    assert code_of(exc) == "slot_taken" and exc.value.status == 409
    assert exc.value.extra["waitlist"] == {
        "clinic_id": HOSPITAL,
        "department_id": "dermatology",
        "date": "2026-11-26",
        "half_day": "am",
    }


def test_slot_that_vanished_between_offer_and_confirm(service: BookingService) -> None:
    offered = service.search(HOSPITAL, "dermatology", day=THURSDAY, half_day="am")["slots"]
    assert slot("derm1", THURSDAY, "am", 3) in [s["slot_id"] for s in offered]
    # The schedule changes: the doctor now sees 2 patients a session instead of 4.
    service.directory = directory(slots=2)
    with pytest.raises(BookingError) as exc:
        service.book("alice", slot("derm1", THURSDAY, "am", 3), "k1")
    assert code_of(exc) == "slot_not_found" and exc.value.status == 404
    for bogus in ("garbage", f"{HOSPITAL}:derm1:2026-13-45:am:01", "nowhere:derm1:2026-11-26:am:01"):
        with pytest.raises(BookingError) as exc:
            service.book("alice", bogus, "k2")
        assert code_of(exc) == "slot_not_found"


def test_same_request_retried_books_once(service: BookingService) -> None:
    target = slot("derm1", THURSDAY, "pm", 1)
    first = service.book("alice", target, "retry-me")
    again = service.book("alice", target, "retry-me")
    assert again["replayed"] is True
    assert again["appointment_id"] == first["appointment_id"]
    assert len(service.list_appointments("alice")["appointments"]) == 1
    with pytest.raises(BookingError) as exc:  # the same key for a different request
        service.book("alice", slot("derm1", THURSDAY, "pm", 2), "retry-me")
    assert code_of(exc) == "idempotency_conflict"
    for missing in (None, "", "   "):
        with pytest.raises(BookingError) as exc:
            service.book("alice", target, missing)
        assert code_of(exc) == "idempotency_key_required" and exc.value.status == 400
    # Another patient's identical key is independent of alice's.
    with pytest.raises(BookingError) as exc:
        service.book("bob", target, "retry-me")
    assert code_of(exc) == "slot_taken"


def test_one_booking_per_patient_per_department_session(service: BookingService) -> None:
    service.book("alice", slot("card1", THURSDAY, "am", 1), "k1")
    with pytest.raises(BookingError) as exc:
        service.book("alice", slot("card2", THURSDAY, "am", 1), "k2")
    assert code_of(exc) == "already_booked"
    service.book("alice", slot("card2", THURSDAY, "pm", 1), "k3")  # another session is fine


def test_referral_reserved_numbers(service: BookingService, clock: Clock) -> None:
    reserved = slot("derm1", THURSDAY, "am", 4)
    with pytest.raises(BookingError) as exc:
        service.book("alice", reserved, "k1")
    assert code_of(exc) == "referral_only" and "2026-11-24 00:00" in exc.value.en
    with pytest.raises(BookingError) as exc:
        service.book("alice", reserved, "k2", referral_from=HOSPITAL)  # not a community centre
    assert code_of(exc) == "bad_referral"
    referred = service.book("alice", reserved, "k3", referral_from=CHC)
    assert referred["referral_from"] == CHC
    # From Tuesday 00:00 the reserved numbers open to everyone.
    other = slot("derm1", THURSDAY, "pm", 4)
    clock.set(datetime(2026, 11, 24, 0, 0, 1, tzinfo=TZ))
    assert service.book("bob", other, "k1")["slot_id"] == other


# ------------------------------------------------------------------------------ cancel, waitlist


def fill_session(service: BookingService, day: date, half_day: str) -> list[str]:
    """Books every public number of derm1's session; returns the appointment ids."""
    ids = []
    for n in (1, 2, 3):
        ids.append(service.book(f"p{n}", slot("derm1", day, half_day, n), f"k{n}")["appointment_id"])
    return ids


def test_cancelling_someone_elses_booking_is_refused(service: BookingService) -> None:
    appointment_id = service.book("alice", slot("derm1", THURSDAY, "am", 1), "k1")["appointment_id"]
    with pytest.raises(BookingError) as exc:
        service.cancel("mallory", appointment_id)
    assert code_of(exc) == "not_your_appointment" and exc.value.status == 403
    with pytest.raises(BookingError) as exc:
        service.get_appointment("mallory", appointment_id)
    assert code_of(exc) == "not_your_appointment"
    with pytest.raises(BookingError) as exc:
        service.cancel("alice", "apt-doesnotexist")
    assert code_of(exc) == "appointment_not_found"
    assert service.get_appointment("alice", appointment_id)["appointment"]["status"] == "booked"
    cancelled = service.cancel("alice", appointment_id)
    assert cancelled["appointment"]["status"] == "cancelled" and cancelled["waitlist_promoted"] is False
    with pytest.raises(BookingError) as exc:
        service.cancel("alice", appointment_id)
    assert code_of(exc) == "already_cancelled"


def test_cancel_promotes_the_first_waiting_patient_and_notifies_them(
    service: BookingService, outbox: Outbox
) -> None:
    ids = fill_session(service, THURSDAY, "am")
    with pytest.raises(BookingError) as exc:  # free numbers left: no need to wait
        service.join_waitlist("w0", HOSPITAL, "cardiology", THURSDAY, "am", "k")
    assert code_of(exc) == "slots_available"
    first = service.join_waitlist("w1", HOSPITAL, "dermatology", THURSDAY, "am", "k")
    second = service.join_waitlist("w2", HOSPITAL, "dermatology", THURSDAY, "am", "k")
    assert (first["position"], second["position"]) == (1, 2)
    assert service.join_waitlist("w1", HOSPITAL, "dermatology", THURSDAY, "am", "k")["replayed"] is True
    with pytest.raises(BookingError) as exc:
        service.join_waitlist("w1", HOSPITAL, "dermatology", THURSDAY, "am", "another-key")
    assert code_of(exc) == "already_on_waitlist" and exc.value.extra["position"] == 1
    with pytest.raises(BookingError) as exc:
        service.join_waitlist("p1", HOSPITAL, "dermatology", THURSDAY, "am", "k9")
    assert code_of(exc) == "already_booked"

    cancelled = service.cancel("p2", ids[1])
    assert cancelled["waitlist_promoted"] is True
    promoted = service.list_appointments("w1")["appointments"]
    assert [(a["slot_id"], a["status"], a["source"]) for a in promoted] == [
        (slot("derm1", THURSDAY, "am", 2), "booked", "waitlist")
    ]
    [(patient, kind, payload)] = outbox.sent
    assert (patient, kind) == ("w1", "waitlist_promoted")
    assert payload["appointment"]["appointment_id"] == promoted[0]["appointment_id"]
    assert service.waitlist_snapshot(HOSPITAL, "dermatology", THURSDAY, "am") == ["w2"]
    w2 = service.list_appointments("w2")["waitlist"]
    assert w2[0]["position"] == 1 and w2[0]["status"] == "waiting"


def test_reserved_number_freed_goes_to_a_referred_waiter(service: BookingService, outbox: Outbox) -> None:
    fill_session(service, THURSDAY, "am")
    referred = service.book("r0", slot("derm1", THURSDAY, "am", 4), "k", referral_from=CHC)
    service.join_waitlist("public", HOSPITAL, "dermatology", THURSDAY, "am", "k")
    service.join_waitlist("community", HOSPITAL, "dermatology", THURSDAY, "am", "k", referral_from=CHC)
    service.cancel("r0", referred["appointment_id"])
    assert [n[0] for n in outbox.of_kind("waitlist_promoted")] == ["community"]
    assert service.waitlist_snapshot(HOSPITAL, "dermatology", THURSDAY, "am") == ["public"]


def test_reschedule_moves_the_booking_and_frees_the_old_slot(service: BookingService, outbox: Outbox) -> None:
    ids = fill_session(service, THURSDAY, "am")
    service.join_waitlist("w1", HOSPITAL, "dermatology", THURSDAY, "am", "k")
    moved = service.reschedule("p1", ids[0], slot("derm1", THURSDAY, "pm", 1), "move-1")
    assert moved["appointment"]["slot_id"] == slot("derm1", THURSDAY, "pm", 1)
    assert moved["appointment"]["rescheduled_from"] == ids[0]
    assert moved["previous"]["status"] == "cancelled" and moved["waitlist_promoted"] is True
    assert outbox.of_kind("waitlist_promoted")[0][0] == "w1"
    again = service.reschedule("p1", ids[0], slot("derm1", THURSDAY, "pm", 1), "move-1")
    assert (
        again["replayed"] is True
        and again["appointment"]["appointment_id"] == moved["appointment"]["appointment_id"]
    )
    with pytest.raises(BookingError) as exc:  # onto a taken slot: the original booking stays
        service.reschedule("p2", ids[1], slot("derm1", THURSDAY, "pm", 1), "move-2")
    assert code_of(exc) == "slot_taken"
    assert service.get_appointment("p2", ids[1])["appointment"]["status"] == "booked"
    with pytest.raises(BookingError) as exc:
        service.reschedule("mallory", ids[1], slot("derm1", THURSDAY, "pm", 2), "move-3")
    assert code_of(exc) == "not_your_appointment"


def test_cancel_after_the_visit_started_is_refused(service: BookingService, clock: Clock) -> None:
    appointment_id = service.book("alice", slot("derm1", MONDAY, "am", 1), "k")["appointment_id"]
    clock.set(datetime(2026, 11, 23, 8, 5, tzinfo=TZ))
    with pytest.raises(BookingError) as exc:
        service.cancel("alice", appointment_id)
    assert code_of(exc) == "appointment_in_past"


def test_schedule_change_keeps_existing_bookings_readable(service: BookingService) -> None:
    booked = service.book("alice", slot("derm1", THURSDAY, "am", 4), "k", referral_from=CHC)
    service.directory = directory(slots=2)
    service.search(HOSPITAL, "dermatology", day=THURSDAY)  # re-syncs the day
    listed = service.list_appointments("alice")["appointments"]
    assert listed[0]["appointment_id"] == booked["appointment_id"]
    assert hospital().id == HOSPITAL


# ------------------------------------------------------------------------------ exams and 预就诊


def test_exam_booking_respects_capacity_and_replays(service: BookingService) -> None:
    first = service.book_exams(
        "alice",
        HOSPITAL,
        ["blood_routine"],
        "e1",
        ordering_department_id="cardiology",
        ordering_doctor_id="card2",
    )
    [booking] = first["bookings"]
    assert (booking["date"], booking["half_day"], booking["start"]) == (
        "2026-11-23",
        "am",
        "2026-11-23T08:00:00+08:00",
    )
    assert booking["report_ready_at"] == "2026-11-23T10:05:00+08:00" and first["plan"]["total_trips"] == 1
    again = service.book_exams(
        "alice",
        HOSPITAL,
        ["blood_routine"],
        "e1",
        ordering_department_id="cardiology",
        ordering_doctor_id="card2",
    )
    assert again["replayed"] is True and again["group_id"] == first["group_id"]
    for n in (2, 3):  # capacity 3 per half-day: Monday morning is now full
        service.book_exams(f"p{n}", HOSPITAL, ["blood_routine"], "e")
    fourth = service.book_exams("p4", HOSPITAL, ["blood_routine"], "e")
    assert (fourth["bookings"][0]["date"], fourth["bookings"][0]["half_day"]) == ("2026-11-23", "pm")
    for exam_ids, code in ((["mri"], "unknown_exam"), ([], "no_exams")):
        with pytest.raises(BookingError) as exc:
            service.book_exams("alice", HOSPITAL, exam_ids, "e9")
        assert code_of(exc) == code
    with pytest.raises(BookingError) as exc:
        service.book_exams("alice", HOSPITAL, ["blood_routine"], "e9", ordering_department_id="astrology")
    assert code_of(exc) == "unknown_department"


def test_ready_report_offers_a_followup_with_the_ordering_doctor(
    service: BookingService, clock: Clock, outbox: Outbox
) -> None:
    booked = service.book_exams(
        "alice",
        HOSPITAL,
        ["blood_routine"],
        "e1",
        ordering_department_id="cardiology",
        ordering_doctor_id="card2",
    )
    clock.set(datetime(2026, 11, 23, 10, 0, tzinfo=TZ))
    assert service.due_reports() == 0  # ready at 10:05
    clock.set(datetime(2026, 11, 23, 10, 6, tzinfo=TZ))
    assert service.due_reports() == 1
    [(patient, kind, payload)] = outbox.sent
    assert (patient, kind) == ("alice", "report_ready")
    offer = payload["offer"]
    assert (
        offer["doctor_id"] == "card2" and offer["start"] == "2026-11-23T11:00:00+08:00"
    )  # next number to start
    assert payload["exam_booking"]["exam_booking_id"] == booked["bookings"][0]["exam_booking_id"]
    assert service.due_reports() == 0  # told once
    repeat = service.report_ready(booked["bookings"][0]["exam_booking_id"])
    assert repeat["notified"] is False and len(outbox.sent) == 1
    with pytest.raises(BookingError) as exc:
        service.report_ready("exam-nope")
    assert code_of(exc) == "exam_booking_not_found"


def test_cancel_retried_with_a_key_and_leaving_the_waitlist(service: BookingService, clock: Clock) -> None:
    appointment_id = service.book("alice", slot("derm1", THURSDAY, "am", 1), "k")["appointment_id"]
    first = service.cancel("alice", appointment_id, "c1")
    again = service.cancel("alice", appointment_id, "c1")
    assert first["replayed"] is False and again["replayed"] is True
    assert again["appointment"]["status"] == "cancelled"
    fill_session(service, THURSDAY, "pm")
    entry = service.join_waitlist("w1", HOSPITAL, "dermatology", THURSDAY, "pm", "k")
    with pytest.raises(BookingError) as exc:
        service.leave_waitlist("mallory", entry["entry_id"])
    assert code_of(exc) == "not_your_appointment"
    assert service.leave_waitlist("w1", entry["entry_id"])["entry"]["status"] == "left"
    assert service.waitlist_snapshot(HOSPITAL, "dermatology", THURSDAY, "pm") == []
    service.join_waitlist("w2", HOSPITAL, "dermatology", THURSDAY, "pm", "k")
    clock.set(datetime(2026, 11, 27, 9, 0, tzinfo=TZ))  # Friday: Thursday passed with nobody cancelling
    [expired] = service.list_appointments("w2")["waitlist"]
    assert expired["status"] == "expired" and expired["position"] is None
