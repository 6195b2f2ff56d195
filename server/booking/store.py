"""Booking tables and the SQL the service runs, for SQLite and PostgreSQL alike.

The invariants live in the schema, so they hold under any concurrency and on both databases:
- appt_active_slot: at most one active ('booked') appointment per slot;
- appt_active_session: a patient holds at most one active appointment per department and half-day;
- waitlist_one_waiting: a patient waits at most once per (clinic, department, date, half-day);
- idempotency primary key (patient_id, key): a key is used once per patient.
Times are ISO-8601 UTC text ("2026-11-24T00:00:00Z"), which sorts like the instants it names.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from server.booking.db import Row, Tx
from tools.booking.models import SlotSpec

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS slots (
    slot_id       TEXT PRIMARY KEY,
    clinic_id     TEXT NOT NULL,
    department_id TEXT NOT NULL,
    doctor_id     TEXT NOT NULL,
    day           TEXT NOT NULL,
    half_day      TEXT NOT NULL,
    number        INTEGER NOT NULL,
    start_utc     TEXT NOT NULL,
    end_utc       TEXT NOT NULL,
    referral_only INTEGER NOT NULL,
    release_utc   TEXT,
    active        INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS slots_by_session ON slots (clinic_id, department_id, day, half_day);
CREATE TABLE IF NOT EXISTS slot_days (
    clinic_id   TEXT NOT NULL,
    day         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    PRIMARY KEY (clinic_id, day)
);
CREATE TABLE IF NOT EXISTS appointments (
    appointment_id   TEXT PRIMARY KEY,
    patient_id       TEXT NOT NULL,
    slot_id          TEXT NOT NULL,
    clinic_id        TEXT NOT NULL,
    department_id    TEXT NOT NULL,
    doctor_id        TEXT NOT NULL,
    day              TEXT NOT NULL,
    half_day         TEXT NOT NULL,
    status           TEXT NOT NULL,
    source           TEXT NOT NULL,
    referral_from    TEXT,
    rescheduled_from TEXT,
    rescheduled_to   TEXT,
    created_at       TEXT NOT NULL,
    cancelled_at     TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS appt_active_slot ON appointments (slot_id) WHERE status = 'booked';
CREATE UNIQUE INDEX IF NOT EXISTS appt_active_session
    ON appointments (patient_id, clinic_id, department_id, day, half_day) WHERE status = 'booked';
CREATE INDEX IF NOT EXISTS appt_by_patient ON appointments (patient_id, created_at);
CREATE TABLE IF NOT EXISTS waitlist (
    seq            {serial_pk},
    entry_id       TEXT NOT NULL UNIQUE,
    patient_id     TEXT NOT NULL,
    clinic_id      TEXT NOT NULL,
    department_id  TEXT NOT NULL,
    day            TEXT NOT NULL,
    half_day       TEXT NOT NULL,
    referral_from  TEXT,
    status         TEXT NOT NULL,
    appointment_id TEXT,
    created_at     TEXT NOT NULL,
    closed_at      TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS waitlist_one_waiting
    ON waitlist (patient_id, clinic_id, department_id, day, half_day) WHERE status = 'waiting';
CREATE INDEX IF NOT EXISTS waitlist_by_session ON waitlist (clinic_id, department_id, day, half_day, seq);
CREATE TABLE IF NOT EXISTS waitlist_sessions (
    clinic_id     TEXT NOT NULL,
    department_id TEXT NOT NULL,
    day           TEXT NOT NULL,
    half_day      TEXT NOT NULL,
    joins         INTEGER NOT NULL,
    PRIMARY KEY (clinic_id, department_id, day, half_day)
);
CREATE TABLE IF NOT EXISTS idempotency (
    patient_id   TEXT NOT NULL,
    key          TEXT NOT NULL,
    operation    TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    result_id    TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (patient_id, key)
);
CREATE TABLE IF NOT EXISTS exam_bookings (
    exam_booking_id        TEXT PRIMARY KEY,
    patient_id             TEXT NOT NULL,
    clinic_id              TEXT NOT NULL,
    exam_id                TEXT NOT NULL,
    day                    TEXT NOT NULL,
    half_day               TEXT NOT NULL,
    start_utc              TEXT NOT NULL,
    end_utc                TEXT NOT NULL,
    arrive_by_utc          TEXT NOT NULL,
    report_ready_utc       TEXT NOT NULL,
    ordering_department_id TEXT,
    ordering_doctor_id     TEXT,
    status                 TEXT NOT NULL,
    group_id               TEXT NOT NULL,
    report_notified_at     TEXT,
    created_at             TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS exam_by_patient ON exam_bookings (patient_id, created_at);
CREATE TABLE IF NOT EXISTS exam_groups (
    group_id   TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL,
    plan_json  TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS exam_capacity (
    clinic_id TEXT NOT NULL,
    exam_id   TEXT NOT NULL,
    day       TEXT NOT NULL,
    half_day  TEXT NOT NULL,
    booked    INTEGER NOT NULL,
    PRIMARY KEY (clinic_id, exam_id, day, half_day)
)
"""


def utc_text(moment: datetime) -> str:
    """An aware datetime as sortable UTC text (second precision)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def request_hash(operation: str, args: dict[str, Any]) -> str:
    blob = json.dumps([operation, args], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# ------------------------------------------------------------------------------ slots


def fingerprint(specs: list[SlotSpec]) -> str:
    """Changes whenever the schedule of the day changes (a number added, moved or removed)."""
    parts = [
        f"{s.slot_id}|{utc_text(s.start)}|{utc_text(s.end)}|{int(s.referral_only)}|"
        f"{utc_text(s.referral_release_at) if s.referral_release_at else ''}"
        for s in specs
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def lock_day(tx: Tx, clinic_id: str, day: str) -> None:
    """Holds the (clinic, day) row until commit, so concurrent syncs of a day (other processes on
    the same PostgreSQL) run one after the other instead of deadlocking on the slot rows."""
    tx.execute(
        "INSERT INTO slot_days VALUES (?, ?, '') ON CONFLICT (clinic_id, day) "
        "DO UPDATE SET fingerprint = slot_days.fingerprint",
        (clinic_id, day),
    )


def stored_fingerprint(tx: Tx, clinic_id: str, day: str) -> str | None:
    row = tx.one("SELECT fingerprint FROM slot_days WHERE clinic_id = ? AND day = ?", (clinic_id, day))
    return None if row is None else str(row["fingerprint"])


def sync_day(tx: Tx, clinic_id: str, day: str, specs: list[SlotSpec], print_: str) -> None:
    """Makes the stored slots of (clinic, day) equal the schedule: new numbers appear, changed ones
    are updated, vanished ones become inactive (their id then answers slot_not_found)."""
    tx.execute("UPDATE slots SET active = 0 WHERE clinic_id = ? AND day = ?", (clinic_id, day))
    for s in specs:
        tx.execute(
            "INSERT INTO slots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) "
            "ON CONFLICT (slot_id) DO UPDATE SET department_id = excluded.department_id, "
            "doctor_id = excluded.doctor_id, start_utc = excluded.start_utc, end_utc = excluded.end_utc, "
            "referral_only = excluded.referral_only, release_utc = excluded.release_utc, active = 1",
            (
                s.slot_id,
                s.clinic_id,
                s.department_id,
                s.doctor_id,
                s.date.isoformat(),
                s.half_day,
                s.number,
                utc_text(s.start),
                utc_text(s.end),
                int(s.referral_only),
                utc_text(s.referral_release_at) if s.referral_release_at else None,
            ),
        )
    tx.execute(
        "INSERT INTO slot_days VALUES (?, ?, ?) ON CONFLICT (clinic_id, day) "
        "DO UPDATE SET fingerprint = excluded.fingerprint",
        (clinic_id, day, print_),
    )


def get_slot(tx: Tx, slot_id: str) -> Row | None:
    return tx.one("SELECT * FROM slots WHERE slot_id = ?", (slot_id,))


def slot_is_taken(tx: Tx, slot_id: str) -> bool:
    row = tx.one("SELECT 1 AS x FROM appointments WHERE slot_id = ? AND status = 'booked'", (slot_id,))
    return row is not None


# A slot is open to a patient when it is not reserved, its reservation has been released, or the
# patient comes with a community referral (parameter 2).
_OPEN_TO = "(s.referral_only = 0 OR s.release_utc <= ? OR ? = 1)"
_FREE = "NOT EXISTS (SELECT 1 FROM appointments a WHERE a.slot_id = s.slot_id AND a.status = 'booked')"


def free_slots(
    tx: Tx,
    clinic_id: str,
    department_id: str,
    days: list[str],
    now: str,
    *,
    referral: bool,
    half_day: str | None = None,
    doctor_id: str | None = None,
    limit: int = 20,
) -> list[Row]:
    sql = (
        f"SELECT s.* FROM slots s WHERE s.clinic_id = ? AND s.department_id = ? AND s.active = 1 "
        f"AND s.day IN ({', '.join('?' for _ in days)}) AND s.start_utc > ? AND {_OPEN_TO} AND {_FREE}"
    )
    params: list[Any] = [clinic_id, department_id, *days, now, now, int(referral)]
    if half_day is not None:
        sql += " AND s.half_day = ?"
        params.append(half_day)
    if doctor_id is not None:
        sql += " AND s.doctor_id = ?"
        params.append(doctor_id)
    sql += " ORDER BY s.start_utc, s.doctor_id, s.number LIMIT ?"
    params.append(limit)
    return tx.all(sql, params)


def session_counts(tx: Tx, clinic_id: str, department_id: str, days: list[str], now: str) -> list[Row]:
    """Per (day, half_day): total numbers, free ones open to the public, people waiting."""
    marks = ", ".join("?" for _ in days)
    return tx.all(
        f"SELECT s.day, s.half_day, COUNT(*) AS total, "
        f"SUM(CASE WHEN s.start_utc > ? AND (s.referral_only = 0 OR s.release_utc <= ?) AND {_FREE} "
        f"THEN 1 ELSE 0 END) AS free_public, "
        f"(SELECT COUNT(*) FROM waitlist w WHERE w.clinic_id = s.clinic_id AND w.department_id = "
        f"s.department_id AND w.day = s.day AND w.half_day = s.half_day AND w.status = 'waiting') AS waiting "
        f"FROM slots s WHERE s.clinic_id = ? AND s.department_id = ? AND s.active = 1 AND s.day IN ({marks}) "
        f"GROUP BY s.clinic_id, s.department_id, s.day, s.half_day ORDER BY s.day, s.half_day",
        [now, now, clinic_id, department_id, *days],
    )


# ------------------------------------------------------------------------------ appointments


def insert_appointment(
    tx: Tx,
    appointment_id: str,
    patient_id: str,
    slot: Row,
    *,
    source: str,
    now: str,
    referral_from: str | None = None,
    rescheduled_from: str | None = None,
) -> None:
    tx.execute(
        "INSERT INTO appointments (appointment_id, patient_id, slot_id, clinic_id, department_id, doctor_id, "
        "day, half_day, status, source, referral_from, rescheduled_from, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'booked', ?, ?, ?, ?)",
        (
            appointment_id,
            patient_id,
            slot["slot_id"],
            slot["clinic_id"],
            slot["department_id"],
            slot["doctor_id"],
            slot["day"],
            slot["half_day"],
            source,
            referral_from,
            rescheduled_from,
            now,
        ),
    )
    # Booked the session directly: the patient no longer waits for it.
    tx.execute(
        "UPDATE waitlist SET status = 'booked_directly', closed_at = ?, appointment_id = ? "
        "WHERE patient_id = ? AND clinic_id = ? AND department_id = ? AND day = ? AND half_day = ? "
        "AND status = 'waiting'",
        (
            now,
            appointment_id,
            patient_id,
            slot["clinic_id"],
            slot["department_id"],
            slot["day"],
            slot["half_day"],
        ),
    )


def get_appointment(tx: Tx, appointment_id: str) -> Row | None:
    return tx.one(
        "SELECT a.*, s.number, s.start_utc, s.end_utc FROM appointments a "
        "JOIN slots s ON s.slot_id = a.slot_id WHERE a.appointment_id = ?",
        (appointment_id,),
    )


def patient_appointments(tx: Tx, patient_id: str) -> list[Row]:
    return tx.all(
        "SELECT a.*, s.number, s.start_utc, s.end_utc FROM appointments a "
        "JOIN slots s ON s.slot_id = a.slot_id WHERE a.patient_id = ? ORDER BY s.start_utc, a.created_at",
        (patient_id,),
    )


def active_in_session(
    tx: Tx, patient_id: str, clinic_id: str, department_id: str, day: str, half_day: str
) -> Row | None:
    return tx.one(
        "SELECT appointment_id FROM appointments WHERE patient_id = ? AND clinic_id = ? "
        "AND department_id = ? "
        "AND day = ? AND half_day = ? AND status = 'booked'",
        (patient_id, clinic_id, department_id, day, half_day),
    )


def mark_cancelled(tx: Tx, appointment_id: str, now: str, rescheduled_to: str | None = None) -> int:
    return tx.execute(
        "UPDATE appointments SET status = 'cancelled', cancelled_at = ?, rescheduled_to = ? "
        "WHERE appointment_id = ? AND status = 'booked'",
        (now, rescheduled_to, appointment_id),
    )


# ------------------------------------------------------------------------------ waitlist


def lock_waitlist_session(tx: Tx, clinic_id: str, department_id: str, day: str, half_day: str) -> None:
    """Serialises joins to one session's waiting list (the upsert holds the row lock until commit),
    so on PostgreSQL too the queue order is the commit order and a reported position is exact."""
    tx.execute(
        "INSERT INTO waitlist_sessions VALUES (?, ?, ?, ?, 1) "
        "ON CONFLICT (clinic_id, department_id, day, half_day) "
        "DO UPDATE SET joins = waitlist_sessions.joins + 1",
        (clinic_id, department_id, day, half_day),
    )


def waiting_entries(tx: Tx, clinic_id: str, department_id: str, day: str, half_day: str) -> list[Row]:
    return tx.all(
        "SELECT * FROM waitlist WHERE clinic_id = ? AND department_id = ? AND day = ? AND half_day = ? "
        "AND status = 'waiting' ORDER BY seq",
        (clinic_id, department_id, day, half_day),
    )


def waiting_entry_of(
    tx: Tx, patient_id: str, clinic_id: str, department_id: str, day: str, half_day: str
) -> Row | None:
    return tx.one(
        "SELECT * FROM waitlist WHERE patient_id = ? AND clinic_id = ? AND department_id = ? AND day = ? "
        "AND half_day = ? AND status = 'waiting'",
        (patient_id, clinic_id, department_id, day, half_day),
    )


def waitlist_position(tx: Tx, entry: Row) -> int | None:
    if entry["status"] != "waiting":
        return None
    row = tx.one(
        "SELECT COUNT(*) AS n FROM waitlist WHERE clinic_id = ? AND department_id = ? AND day = ? "
        "AND half_day = ? AND status = 'waiting' AND seq <= ?",
        (entry["clinic_id"], entry["department_id"], entry["day"], entry["half_day"], entry["seq"]),
    )
    return int(row["n"]) if row else None


def patient_waitlist(tx: Tx, patient_id: str) -> list[Row]:
    return tx.all("SELECT * FROM waitlist WHERE patient_id = ? ORDER BY seq", (patient_id,))


# ------------------------------------------------------------------------------ idempotency


def idempotent_result(tx: Tx, patient_id: str, key: str) -> Row | None:
    return tx.one("SELECT * FROM idempotency WHERE patient_id = ? AND key = ?", (patient_id, key))


def claim_key(tx: Tx, patient_id: str, key: str, operation: str, hash_: str, now: str) -> None:
    """Inserts the key with an empty result; rolled back with the transaction if the request fails."""
    tx.execute("INSERT INTO idempotency VALUES (?, ?, ?, ?, '', ?)", (patient_id, key, operation, hash_, now))


def remember(tx: Tx, patient_id: str, key: str, operation: str, hash_: str, result_id: str, now: str) -> None:
    """Stores the result of the request that claimed the key in this transaction."""
    tx.execute(
        "UPDATE idempotency SET result_id = ? WHERE patient_id = ? AND key = ? AND request_hash = ?",
        (result_id, patient_id, key, hash_),
    )


# ------------------------------------------------------------------------------ exams


def exam_booked(tx: Tx, clinic_id: str, exam_id: str, day: str, half_day: str) -> int:
    row = tx.one(
        "SELECT booked FROM exam_capacity WHERE clinic_id = ? AND exam_id = ? AND day = ? AND half_day = ?",
        (clinic_id, exam_id, day, half_day),
    )
    return int(row["booked"]) if row else 0


def take_exam_place(tx: Tx, clinic_id: str, exam_id: str, day: str, half_day: str, capacity: int) -> bool:
    """One place of an exam session, if any is left (a conditional update: safe under concurrency)."""
    tx.execute(
        "INSERT INTO exam_capacity VALUES (?, ?, ?, ?, 0) "
        "ON CONFLICT (clinic_id, exam_id, day, half_day) DO NOTHING",
        (clinic_id, exam_id, day, half_day),
    )
    return bool(
        tx.execute(
            "UPDATE exam_capacity SET booked = booked + 1 WHERE clinic_id = ? AND exam_id = ? AND day = ? "
            "AND half_day = ? AND booked < ?",
            (clinic_id, exam_id, day, half_day, capacity),
        )
    )
