"""Reminders and their occurrences in SQLite (data_dir/reminders.sqlite3, shared with the notify
outbox). Times are UTC text (server.notify.iso: fixed width, so text order is time order).

An occurrence row (reminder_id, due_at) is the unit of delivery: pending -> fired (-> acked), or
missed (overdue behind a later one, listed in that one's notification) or cancelled (stopped).
A process fires a pending row only after claiming it with one atomic UPDATE (claimed_by,
claim_expires_at); a claim of a process that died expires, and the occurrence is fired by the
next one — the outbox's dedupe key (reminder_id, due_at, snoozes) keeps that to one notification.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from server.notify import iso, parse_iso
from server.sqlite_base import SqliteStore
from tools.reminders import ReminderSpec, Schedule

SCHEMA = """
CREATE TABLE IF NOT EXISTS reminders (
    reminder_id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    spec TEXT NOT NULL,
    first_at TEXT NOT NULL,
    rrule TEXT,
    tz TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reminders_patient ON reminders (patient_id, created_at);
CREATE TABLE IF NOT EXISTS occurrences (
    reminder_id TEXT NOT NULL REFERENCES reminders (reminder_id),
    due_at TEXT NOT NULL,
    fire_at TEXT NOT NULL,
    status TEXT NOT NULL,
    snoozes INTEGER NOT NULL DEFAULT 0,
    claimed_by TEXT,
    claim_expires_at TEXT,
    fired_at TEXT,
    late INTEGER,
    notification_id TEXT,
    acked_at TEXT,
    PRIMARY KEY (reminder_id, due_at)
);
CREATE INDEX IF NOT EXISTS occurrences_due ON occurrences (fire_at) WHERE status = 'pending';
"""


@dataclass(frozen=True)
class Claimed:
    """A claimed pending occurrence with what firing it needs."""

    reminder_id: str
    patient_id: str
    due_at: datetime
    fire_at: datetime
    snoozes: int
    spec: ReminderSpec
    schedule: Schedule


@dataclass(frozen=True)
class Completion:
    claimed: Claimed
    fired_at: datetime
    late: bool
    notification_id: str | None
    next_due: datetime | None
    missed: list[datetime] = field(default_factory=list)


class ReminderStore(SqliteStore):
    def __init__(self, path: Path | str) -> None:
        super().__init__(path, SCHEMA, 1, rows_by_name=True)

    # ---------------------------------------------------------------- writes

    def create(self, spec: ReminderSpec, schedule: Schedule, first_due: datetime, now: datetime) -> str:
        return self.create_many([(spec, schedule, first_due)], now)[0]

    def create_many(
        self, items: Sequence[tuple[ReminderSpec, Schedule, datetime]], now: datetime
    ) -> list[str]:
        """Store reminders with their first pending occurrence, all in one transaction."""
        ids = [uuid.uuid4().hex for _ in items]
        with self._transaction() as conn:
            for reminder_id, (spec, schedule, first_due) in zip(ids, items, strict=True):
                conn.execute(
                    "INSERT INTO reminders VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        reminder_id,
                        spec.patient_id,
                        spec.kind.value,
                        spec.model_dump_json(),
                        iso(schedule.first_at),
                        schedule.rrule,
                        schedule.tz,
                        "active",
                        iso(now),
                        iso(now),
                    ),
                )
                conn.execute(
                    "INSERT INTO occurrences (reminder_id, due_at, fire_at, status) VALUES (?,?,?,'pending')",
                    (reminder_id, iso(first_due), iso(first_due)),
                )
        return ids

    def claim_due(self, now: datetime, owner: str, lease_s: float, limit: int) -> list[Claimed]:
        """Atomically claim up to `limit` pending occurrences due by `now` that nobody holds (or
        whose holder's lease ran out), earliest first."""
        with self._transaction() as conn:
            rows = conn.execute(
                "UPDATE occurrences SET claimed_by = ?, claim_expires_at = ? WHERE rowid IN ("
                " SELECT rowid FROM occurrences WHERE status = 'pending' AND fire_at <= ?"
                " AND (claimed_by IS NULL OR claim_expires_at < ?) ORDER BY fire_at LIMIT ?)"
                " RETURNING reminder_id, due_at, fire_at, snoozes",
                (owner, iso(now + timedelta(seconds=lease_s)), iso(now), iso(now), limit),
            ).fetchall()
            if not rows:
                return []
            ids = sorted({row["reminder_id"] for row in rows})
            reminders = {
                r["reminder_id"]: r
                for r in conn.execute(
                    f"SELECT * FROM reminders WHERE reminder_id IN ({','.join('?' * len(ids))})", ids
                )
            }
        claimed = []
        for row in sorted(rows, key=lambda r: (r["fire_at"], r["reminder_id"])):
            reminder = reminders[row["reminder_id"]]
            spec = ReminderSpec.model_validate_json(reminder["spec"])
            schedule = Schedule.model_construct(  # our own row: already validated when stored
                first_at=parse_iso(reminder["first_at"]), rrule=reminder["rrule"], tz=reminder["tz"]
            )
            claimed.append(
                Claimed(
                    reminder_id=row["reminder_id"],
                    patient_id=reminder["patient_id"],
                    due_at=parse_iso(row["due_at"]),
                    fire_at=parse_iso(row["fire_at"]),
                    snoozes=row["snoozes"],
                    spec=spec,
                    schedule=schedule,
                )
            )
        return claimed

    def complete(self, owner: str, completions: Sequence[Completion]) -> int:
        """Mark fired occurrences, record missed ones, queue the next. Only rows still claimed by
        `owner` (a lease that expired and was taken over is the other process's business)."""
        done = 0
        with self._transaction() as conn:
            for item in completions:
                c = item.claimed
                cursor = conn.execute(
                    "UPDATE occurrences SET status = 'fired', fired_at = ?, late = ?, notification_id = ?,"
                    " claimed_by = NULL, claim_expires_at = NULL"
                    " WHERE reminder_id = ? AND due_at = ? AND status = 'pending' AND claimed_by = ?",
                    (
                        iso(item.fired_at),
                        int(item.late),
                        item.notification_id,
                        c.reminder_id,
                        iso(c.due_at),
                        owner,
                    ),
                )
                if cursor.rowcount != 1:
                    continue
                done += 1
                for missed in item.missed:
                    conn.execute(
                        "INSERT OR IGNORE INTO occurrences (reminder_id, due_at, fire_at, status,"
                        " notification_id) VALUES (?,?,?,'missed',?)",
                        (c.reminder_id, iso(missed), iso(missed), item.notification_id),
                    )
                if item.next_due is not None:
                    conn.execute(
                        "INSERT OR IGNORE INTO occurrences (reminder_id, due_at, fire_at, status)"
                        " SELECT ?, ?, ?, 'pending' FROM reminders"
                        " WHERE reminder_id = ? AND status = 'active'",
                        (c.reminder_id, iso(item.next_due), iso(item.next_due), c.reminder_id),
                    )
                elif c.snoozes == 0:
                    conn.execute(
                        "UPDATE reminders SET status = 'finished', updated_at = ?"
                        " WHERE reminder_id = ? AND status = 'active'",
                        (iso(item.fired_at), c.reminder_id),
                    )
        return done

    def _latest_fired(self, conn: Any, reminder_id: str) -> Any:
        return conn.execute(
            "SELECT * FROM occurrences WHERE reminder_id = ? AND status = 'fired'"
            " ORDER BY due_at DESC LIMIT 1",
            (reminder_id,),
        ).fetchone()

    def ack(self, reminder_id: str, now: datetime) -> dict[str, Any] | None:
        """Acknowledge the latest fired occurrence; None when nothing has fired unacknowledged."""
        with self._transaction() as conn:
            row = self._latest_fired(conn, reminder_id)
            if row is None:
                return None
            conn.execute(
                "UPDATE occurrences SET status = 'acked', acked_at = ? WHERE reminder_id = ? AND due_at = ?",
                (iso(now), reminder_id, row["due_at"]),
            )
        return {"due_at": row["due_at"], "notification_id": row["notification_id"]}

    def snooze(self, reminder_id: str, until: datetime) -> dict[str, Any] | None:
        """Fire the latest fired, unacknowledged occurrence again at `until`."""
        with self._transaction() as conn:
            row = self._latest_fired(conn, reminder_id)
            if row is None:
                return None
            conn.execute(
                "UPDATE occurrences SET status = 'pending', fire_at = ?, snoozes = snoozes + 1,"
                " claimed_by = NULL, claim_expires_at = NULL WHERE reminder_id = ? AND due_at = ?",
                (iso(until), reminder_id, row["due_at"]),
            )
        return {"due_at": row["due_at"], "notification_id": row["notification_id"]}

    def stop(self, reminder_id: str, now: datetime) -> int:
        """Stop for good: the reminder and every pending occurrence; returns how many were cancelled."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE reminders SET status = 'stopped', updated_at = ? WHERE reminder_id = ?",
                (iso(now), reminder_id),
            )
            return conn.execute(
                "UPDATE occurrences SET status = 'cancelled', claimed_by = NULL"
                " WHERE reminder_id = ? AND status = 'pending'",
                (reminder_id,),
            ).rowcount

    # ---------------------------------------------------------------- reads

    def get(self, reminder_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM reminders WHERE reminder_id = ?", (reminder_id,)
            ).fetchone()
            return None if row is None else self._reminder(row)

    def list_for(self, patient_id: str, *, include_ended: bool = True) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM reminders WHERE patient_id = ?"
                + ("" if include_ended else " AND status = 'active'")
                + " ORDER BY created_at, reminder_id",
                (patient_id,),
            ).fetchall()
            return [self._reminder(row) for row in rows]

    def _reminder(self, row: Any) -> dict[str, Any]:
        """The public view of a reminder row (caller holds the lock)."""
        with_occ = self._conn.execute(
            "SELECT due_at, fire_at, status, snoozes, fired_at, late FROM occurrences"
            " WHERE reminder_id = ? ORDER BY due_at",
            (row["reminder_id"],),
        ).fetchall()
        pending = [o for o in with_occ if o["status"] == "pending"]
        return {
            "reminder_id": row["reminder_id"],
            "patient_id": row["patient_id"],
            "kind": row["kind"],
            "status": row["status"],
            "spec": json.loads(row["spec"]),
            "first_at": row["first_at"],
            "rrule": row["rrule"],
            "tz": row["tz"],
            "next_fire_at": min((o["fire_at"] for o in pending), default=None),
            "occurrences": [
                dict(o) | {"late": bool(o["late"]) if o["late"] is not None else None} for o in with_occ[-20:]
            ],
        }

    def occurrence_rows(self) -> list[dict[str, Any]]:
        """Every occurrence (tests and benchmarks)."""
        with self._lock:
            return [dict(r) for r in self._conn.execute("SELECT * FROM occurrences ORDER BY fire_at")]
