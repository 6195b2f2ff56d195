"""SQLite store of chronic-care patients and their readings (data_dir/chronic.sqlite3).

Dates of readings and visits are the clinic's local calendar dates (YYYY-MM-DD: follow-up is counted in
days); moments (created_at, recorded_at) are UTC text."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from server.sqlite_base import SqliteStore
from tools.chronic import ChronicPatient, Reading

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chronic_patients (
    patient_id        TEXT PRIMARY KEY,
    clinic_id         TEXT NOT NULL,
    name              TEXT NOT NULL,
    conditions        TEXT NOT NULL,          -- JSON list
    last_visit        TEXT,                   -- local date
    family_doctor     TEXT,
    village           TEXT,
    linked_patient_id TEXT,                   -- server/patients id of the person, when known
    created_by        TEXT NOT NULL,
    created_at        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chronic_patients_clinic ON chronic_patients(clinic_id);
CREATE TABLE IF NOT EXISTS chronic_readings (
    reading_id    TEXT PRIMARY KEY,
    patient_id    TEXT NOT NULL REFERENCES chronic_patients(patient_id),
    seq           INTEGER NOT NULL,           -- keeps same-day readings in the order they were given
    taken_on      TEXT NOT NULL,              -- local date
    kind          TEXT NOT NULL,
    systolic      INTEGER,
    diastolic     INTEGER,
    glucose_mmol  REAL,
    context       TEXT,
    hba1c_percent REAL,
    raw_text      TEXT,
    unit_given    TEXT,
    converted     INTEGER NOT NULL DEFAULT 0,
    level         TEXT NOT NULL,
    recorded_by   TEXT NOT NULL,
    recorded_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chronic_readings_patient ON chronic_readings(patient_id, taken_on, seq);
"""

_READING_FIELDS = ("taken_on", "kind", "systolic", "diastolic", "glucose_mmol", "context", "hba1c_percent")


class ChronicStore:
    def __init__(self, path: Path | str) -> None:
        self._db = SqliteStore(path, _SCHEMA, 1, rows_by_name=True, foreign_keys=True)

    def add_patient(self, row: dict[str, Any]) -> None:
        row = {**row, "conditions": json.dumps(row["conditions"])}
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._db._transaction() as conn:
            conn.execute(f"INSERT INTO chronic_patients ({columns}) VALUES ({marks})", tuple(row.values()))

    def patient_row(self, patient_id: str) -> dict[str, Any] | None:
        with self._db._transaction() as conn:
            row = conn.execute(
                "SELECT * FROM chronic_patients WHERE patient_id = ?", (patient_id,)
            ).fetchone()
        return _patient_dict(row) if row else None

    def add_reading(self, row: dict[str, Any], *, visit: bool) -> None:
        """Insert a reading; `visit` (a reading taken at a follow-up visit) moves last_visit forward."""
        with self._db._transaction() as conn:
            seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM chronic_readings").fetchone()[0]
            row = {**row, "seq": seq}
            columns = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            conn.execute(f"INSERT INTO chronic_readings ({columns}) VALUES ({marks})", tuple(row.values()))
            if visit:
                conn.execute(
                    "UPDATE chronic_patients SET last_visit = ? WHERE patient_id = ? "
                    "AND (last_visit IS NULL OR last_visit < ?)",
                    (row["taken_on"], row["patient_id"], row["taken_on"]),
                )

    def patient(self, patient_id: str) -> ChronicPatient | None:
        row = self.patient_row(patient_id)
        if row is None:
            return None
        return self._with_readings([row])[0]

    def clinic_patients(self, clinic_id: str) -> list[ChronicPatient]:
        with self._db._transaction() as conn:
            rows = conn.execute(
                "SELECT * FROM chronic_patients WHERE clinic_id = ? ORDER BY patient_id", (clinic_id,)
            ).fetchall()
        return self._with_readings([_patient_dict(r) for r in rows])

    def patients_linked_to(self, linked_patient_id: str) -> list[str]:
        with self._db._transaction() as conn:
            rows = conn.execute(
                "SELECT patient_id FROM chronic_patients WHERE linked_patient_id = ?", (linked_patient_id,)
            ).fetchall()
        return [r["patient_id"] for r in rows]

    def _with_readings(self, rows: list[dict[str, Any]]) -> list[ChronicPatient]:
        if not rows:
            return []
        ids = [r["patient_id"] for r in rows]
        readings: dict[str, list[Reading]] = {pid: [] for pid in ids}
        with self._db._transaction() as conn:
            for start in range(0, len(ids), 500):  # SQLite's bound-parameter limit
                chunk = ids[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                for r in conn.execute(
                    f"SELECT patient_id, {', '.join(_READING_FIELDS)} FROM chronic_readings "
                    f"WHERE patient_id IN ({marks}) ORDER BY taken_on, seq",
                    chunk,
                ):
                    fields = {k: r[k] for k in _READING_FIELDS if r[k] is not None}
                    readings[r["patient_id"]].append(Reading.model_validate(fields))
        return [
            ChronicPatient(
                id=row["patient_id"],
                name=row["name"],
                conditions=row["conditions"],
                last_visit=date.fromisoformat(row["last_visit"]) if row["last_visit"] else None,
                readings=readings[row["patient_id"]],
                clinic_id=row["clinic_id"],
                family_doctor=row["family_doctor"],
                village=row["village"],
            )
            for row in rows
        ]

    def close(self) -> None:
        self._db.close()


def _patient_dict(row: Any) -> dict[str, Any]:
    data = dict(row)
    data["conditions"] = json.loads(data["conditions"])
    return data
