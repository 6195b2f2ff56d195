"""SQLite persistence of escorted visits (settings.data_dir / "escort.sqlite3").

`visits` holds each visit's whole serialised VisitState (so a restarted server resumes every visit
at its step), plus the columns queries need. `visit_events` is the append-only log of accepted
events. `queue_counters` hands out queue numbers per (clinic, department, local day). Every write
checks the row's version, so two kiosks advancing one visit at once cannot lose an event.
Times are UTC ISO-8601 strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from server.sqlite_base import SqliteStore
from tools.visit_escort import Step, VisitState

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS visits (
    visit_id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL,
    clinic_id TEXT NOT NULL,
    department_id TEXT NOT NULL,
    day TEXT NOT NULL,
    queue_number INTEGER,
    step TEXT NOT NULL,
    state_json TEXT NOT NULL,
    version INTEGER NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS visits_patient ON visits(patient_id, created);
CREATE INDEX IF NOT EXISTS visits_queue ON visits(clinic_id, department_id, day, queue_number);
CREATE TABLE IF NOT EXISTS visit_events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    visit_id TEXT NOT NULL REFERENCES visits(visit_id),
    event TEXT NOT NULL,
    data_json TEXT NOT NULL,
    from_step TEXT NOT NULL,
    to_step TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS visit_events_visit ON visit_events(visit_id, event_id);
CREATE TABLE IF NOT EXISTS queue_counters (
    clinic_id TEXT NOT NULL,
    department_id TEXT NOT NULL,
    day TEXT NOT NULL,
    last_number INTEGER NOT NULL,
    PRIMARY KEY (clinic_id, department_id, day)
);
"""

# Steps in which a patient still stands in the department's queue.
QUEUED_STEPS = (Step.checked_in.value, Step.waiting.value)


class VersionConflict(Exception):
    """The visit changed between reading and writing it (another request advanced it)."""


@dataclass(frozen=True)
class StoredVisit:
    state: VisitState
    version: int
    day: date


def _stored(row: Any) -> StoredVisit:
    state = VisitState.model_validate_json(row["state_json"])
    return StoredVisit(state, int(row["version"]), date.fromisoformat(row["day"]))


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class EscortStore(SqliteStore):
    def __init__(self, path: Path | str) -> None:
        super().__init__(path, _SCHEMA, SCHEMA_VERSION, rows_by_name=True, foreign_keys=True)

    def create(self, state: VisitState, day: date, now: datetime) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO visits VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
                (
                    state.visit_id,
                    state.patient_id,
                    state.clinic_id,
                    state.department_id,
                    day.isoformat(),
                    state.queue_number,
                    state.step.value,
                    state.model_dump_json(),
                    _utc(now),
                    _utc(now),
                ),
            )

    def get(self, visit_id: str) -> StoredVisit | None:
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT state_json, version, day FROM visits WHERE visit_id = ?", (visit_id,)
            ).fetchone()
        return None if row is None else _stored(row)

    def list_for_patient(self, patient_id: str, *, active_only: bool = False) -> list[StoredVisit]:
        sql = "SELECT state_json, version, day FROM visits WHERE patient_id = ?"
        if active_only:
            sql += " AND step != 'done'"
        with self._transaction() as conn:
            rows = conn.execute(sql + " ORDER BY created DESC, visit_id", (patient_id,)).fetchall()
        return [_stored(row) for row in rows]

    def save_transition(
        self,
        before: StoredVisit,
        after: VisitState,
        event: str,
        data: dict[str, Any] | None,
        now: datetime,
        *,
        queue_day: date | None = None,
    ) -> StoredVisit:
        """Writes `after` if the visit is still at `before.version`, logs the event, and — when
        `queue_day` is given — first gives the visit the next queue number of its department that
        day. Raises VersionConflict when someone else advanced the visit meanwhile."""
        state = after.model_copy(deep=True)
        day = before.day
        with self._transaction() as conn:
            if queue_day is not None:
                day = queue_day
                state.queue_number = self._next_number(conn, state.clinic_id, state.department_id, day)
            cursor = conn.execute(
                "UPDATE visits SET step = ?, state_json = ?, queue_number = ?, day = ?,"
                " version = version + 1, updated = ? WHERE visit_id = ? AND version = ?",
                (
                    state.step.value,
                    state.model_dump_json(),
                    state.queue_number,
                    day.isoformat(),
                    _utc(now),
                    state.visit_id,
                    before.version,
                ),
            )
            if cursor.rowcount != 1:
                raise VersionConflict(state.visit_id)  # rolls the counter back too
            conn.execute(
                "INSERT INTO visit_events (visit_id, event, data_json, from_step, to_step, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    state.visit_id,
                    event,
                    json.dumps(data or {}, ensure_ascii=False),
                    before.state.step.value,
                    state.step.value,
                    _utc(now),
                ),
            )
        return StoredVisit(state, before.version + 1, day)

    @staticmethod
    def _next_number(conn: Any, clinic_id: str, department_id: str, day: date) -> int:
        conn.execute(
            "INSERT INTO queue_counters VALUES (?, ?, ?, 1)"
            " ON CONFLICT (clinic_id, department_id, day) DO UPDATE SET last_number = last_number + 1",
            (clinic_id, department_id, day.isoformat()),
        )
        row = conn.execute(
            "SELECT last_number FROM queue_counters WHERE clinic_id = ? AND department_id = ? AND day = ?",
            (clinic_id, department_id, day.isoformat()),
        ).fetchone()
        return int(row["last_number"])

    def queue_ahead(self, state: VisitState, day: date) -> int:
        """How many patients of the same department and day with a lower number are still queuing;
        before check-in (no number yet): everyone queuing there now."""
        sql = (
            "SELECT COUNT(*) AS n FROM visits WHERE clinic_id = ? AND department_id = ? AND day = ?"
            " AND step IN (?, ?)"
        )
        params: list[Any] = [state.clinic_id, state.department_id, day.isoformat(), *QUEUED_STEPS]
        if state.queue_number is not None:
            sql += " AND queue_number < ?"
            params.append(state.queue_number)
        with self._transaction() as conn:
            row = conn.execute(sql, params).fetchone()
        return int(row["n"])

    def events(self, visit_id: str) -> list[dict[str, Any]]:
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT event, data_json, from_step, to_step, at FROM visit_events WHERE visit_id = ?"
                " ORDER BY event_id",
                (visit_id,),
            ).fetchall()
        return [
            {
                "event": r["event"],
                "data": json.loads(r["data_json"]),
                "from_step": r["from_step"],
                "to_step": r["to_step"],
                "at": r["at"],
            }
            for r in rows
        ]
