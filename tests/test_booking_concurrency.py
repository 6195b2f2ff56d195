"""Races, on SQLite and on a real PostgreSQL server: 100 clients for the last slot (exactly one
booking; the 99 others get slot_taken, join the waiting list, and none of those entries is lost),
then a cancellation promotes the first waiter; the same request retried concurrently books once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from booking_support import HOSPITAL, Clock, Outbox, directory, slot_generator
from pg_support import pg_url, postgres_server  # noqa: F401

from server.booking.db import PostgresDatabase, SqliteDatabase
from server.booking.errors import BookingError
from server.booking.service import BookingService

THURSDAY = date(2026, 11, 26)
CLIENTS = 100


def derm_slot(number: int) -> str:
    return f"{HOSPITAL}:derm1:{THURSDAY.isoformat()}:am:{number:02d}"


@pytest.fixture(params=["sqlite", "postgresql"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[BookingService, Outbox]]:
    if request.param == "postgresql":
        db: Any = PostgresDatabase(request.getfixturevalue("pg_url"), pool_size=32)
    else:
        db = SqliteDatabase(tmp_path / "booking.sqlite3", pool_size=8)
    outbox = Outbox()
    svc = BookingService(db, directory(), notify=outbox, clock=Clock(), slot_generator=slot_generator())
    yield svc, outbox
    svc.close()


def race(n: int, attempt: Callable[[int], Any]) -> list[Any]:
    """Runs attempt(i) for i in range(n) on n threads released at the same instant."""
    gate = threading.Barrier(n)

    def run(i: int) -> Any:
        gate.wait()
        try:
            return attempt(i)
        except BookingError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def test_hundred_clients_race_for_the_last_slot(service: tuple[BookingService, Outbox]) -> None:
    svc, outbox = service
    svc.book("early1", derm_slot(1), "k")
    svc.book("early2", derm_slot(2), "k")  # number 3 is the last public one; 4 is reserved
    order: list[str] = []  # losers in the order their waitlist entry committed
    order_lock = threading.Lock()

    def attempt(i: int) -> Any:
        patient = f"racer{i:03d}"
        try:
            return svc.book(patient, derm_slot(3), f"race-{i}")
        except BookingError as exc:
            if exc.code != "slot_taken":
                raise
            joined = svc.join_waitlist(patient, HOSPITAL, "dermatology", THURSDAY, "am", f"wait-{i}")
            with order_lock:
                order.append(patient)
            return (exc, joined, patient)

    started = time.perf_counter()
    results = race(CLIENTS, attempt)
    elapsed = time.perf_counter() - started
    winners = [r for r in results if isinstance(r, dict)]
    losers = [r for r in results if isinstance(r, tuple)]
    assert not [r for r in results if isinstance(r, BookingError)], "no other error than slot_taken"
    assert len(winners) == 1 and len(losers) == CLIENTS - 1
    assert all(exc.code == "slot_taken" for exc, _, _ in losers)
    winner = winners[0]
    print(f"{svc.db.dialect}: {CLIENTS} clients, 1 booked, {len(losers)} waitlisted in {elapsed:.2f} s")

    # Exactly one active booking of the slot in the database.
    booked = svc.db.run(
        lambda tx: tx.all(
            "SELECT patient_id FROM appointments WHERE slot_id = ? AND status = 'booked'", (derm_slot(3),)
        ),
        write=False,
    )
    assert [r["patient_id"] for r in booked] == [winner["patient_id"]]

    # No lost waiting-list entries; positions are 1..99 without gaps, in commit order.
    waiting = svc.waitlist_snapshot(HOSPITAL, "dermatology", THURSDAY, "am")
    assert len(waiting) == CLIENTS - 1 and len(set(waiting)) == CLIENTS - 1
    assert sorted(joined["position"] for _, joined, _ in losers) == list(range(1, CLIENTS))
    by_position = {joined["position"]: patient for _, joined, patient in losers}
    assert [by_position[i] for i in range(1, CLIENTS)] == waiting
    # On SQLite writes are serialised, so the commit order seen by the threads is the queue order.
    if svc.db.dialect == "sqlite":
        assert waiting == order

    # The winner cancels: the first waiter gets the slot, in the same transaction, and is told.
    svc.cancel(winner["patient_id"], winner["appointment_id"])
    first = waiting[0]
    [(patient, kind, payload)] = outbox.sent
    assert (patient, kind) == (first, "waitlist_promoted")
    assert payload["appointment"]["slot_id"] == derm_slot(3)
    assert svc.waitlist_snapshot(HOSPITAL, "dermatology", THURSDAY, "am") == waiting[1:]
    mine = svc.list_appointments(first)["appointments"]
    assert [(a["slot_id"], a["status"]) for a in mine] == [(derm_slot(3), "booked")]


def test_the_same_request_retried_concurrently_books_once(service: tuple[BookingService, Outbox]) -> None:
    svc, _ = service
    results = race(20, lambda i: svc.book("alice", derm_slot(1), "one-key"))
    assert all(isinstance(r, dict) for r in results), [r for r in results if not isinstance(r, dict)]
    assert len({r["appointment_id"] for r in results}) == 1
    assert sum(not r["replayed"] for r in results) == 1
    assert len(svc.list_appointments("alice")["appointments"]) == 1


def test_two_patients_racing_for_many_slots_never_double_book(service: tuple[BookingService, Outbox]) -> None:
    """40 clients over the 3 public numbers of a session: 3 bookings, all on different numbers."""
    svc, _ = service
    results = race(40, lambda i: svc.book(f"p{i}", derm_slot(1 + i % 3), f"k{i}"))
    booked = [r["slot_id"] for r in results if isinstance(r, dict)]
    assert sorted(booked) == [derm_slot(1), derm_slot(2), derm_slot(3)]
    assert {r.code for r in results if isinstance(r, BookingError)} == {"slot_taken"}
