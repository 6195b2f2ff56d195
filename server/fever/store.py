"""SQLite persistence of the fever diary: accounts and tokens, children, readings, doses, symptoms,
colour changes, reminders, pre-consultation forms and callback requests.

Its own file (settings.data_dir / "fever.sqlite3"), built like server/store.py: one connection
behind a lock, WAL, short explicit transactions. Times are stored as UTC ISO-8601 strings of one
fixed format, so comparing strings compares times. Columns named *_json are decoded on the way out
(as the name without the suffix).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from server.sqlite_base import SqliteStore

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    account_id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('family', 'clinician')),
    display_name TEXT NOT NULL,
    clinic_id TEXT NOT NULL,
    lang TEXT,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(account_id),
    created TEXT NOT NULL,
    expires TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS children (
    child_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(account_id),
    clinic_id TEXT NOT NULL,
    name TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    sex TEXT,
    weight_kg REAL,
    allergies_json TEXT NOT NULL,
    conditions_json TEXT NOT NULL,
    colour TEXT,
    grade_json TEXT,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS children_account ON children(account_id);
CREATE TABLE IF NOT EXISTS readings (
    reading_id TEXT PRIMARY KEY,
    child_id TEXT NOT NULL REFERENCES children(child_id),
    value_c REAL NOT NULL,
    entered_value REAL NOT NULL,
    entered_unit TEXT,
    site TEXT,
    measured_at TEXT NOT NULL,
    source TEXT NOT NULL,
    device_time TEXT,
    payload_hex TEXT,
    warnings_json TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS readings_child_time ON readings(child_id, measured_at);
CREATE TABLE IF NOT EXISTS doses (
    dose_id TEXT PRIMARY KEY,
    child_id TEXT NOT NULL REFERENCES children(child_id),
    drug TEXT NOT NULL,
    drug_id TEXT,
    mg REAL,
    ml REAL,
    given_at TEXT NOT NULL,
    check_json TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS doses_child_time ON doses(child_id, given_at);
CREATE TABLE IF NOT EXISTS symptoms (
    entry_id TEXT PRIMARY KEY,
    child_id TEXT NOT NULL REFERENCES children(child_id),
    text TEXT NOT NULL,
    noted_at TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS symptoms_child_time ON symptoms(child_id, noted_at);
CREATE TABLE IF NOT EXISTS colour_changes (
    child_id TEXT NOT NULL REFERENCES children(child_id),
    seq INTEGER NOT NULL,
    colour TEXT NOT NULL,
    call_120 INTEGER NOT NULL,
    label TEXT NOT NULL,
    rule_ids_json TEXT NOT NULL,
    trigger TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (child_id, seq)
);
CREATE TABLE IF NOT EXISTS reminders (
    reminder_id TEXT PRIMARY KEY,
    child_id TEXT NOT NULL REFERENCES children(child_id),
    account_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    due_at TEXT NOT NULL,
    message TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'cancelled')),
    created TEXT NOT NULL,
    sent_at TEXT
);
CREATE INDEX IF NOT EXISTS reminders_due ON reminders(status, due_at);
CREATE TABLE IF NOT EXISTS forms (
    form_id TEXT PRIMARY KEY,
    child_id TEXT NOT NULL REFERENCES children(child_id),
    account_id TEXT NOT NULL,
    clinic_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('draft', 'sent')),
    form_json TEXT NOT NULL,
    idempotency_key TEXT,
    created TEXT NOT NULL,
    sent_at TEXT
);
CREATE INDEX IF NOT EXISTS forms_clinic ON forms(clinic_id, status, sent_at);
CREATE UNIQUE INDEX IF NOT EXISTS forms_idempotency ON forms(account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS callbacks (
    callback_id TEXT PRIMARY KEY,
    child_id TEXT NOT NULL REFERENCES children(child_id),
    account_id TEXT NOT NULL,
    clinic_id TEXT NOT NULL,
    phone TEXT,
    note TEXT,
    status TEXT NOT NULL CHECK (status IN ('open', 'handled')),
    created TEXT NOT NULL,
    handled_at TEXT,
    handled_by TEXT
);
CREATE INDEX IF NOT EXISTS callbacks_clinic ON callbacks(clinic_id, status, created);
"""

Row = dict[str, Any]


def iso(moment: datetime) -> str:
    """The one stored time format: UTC, milliseconds. Naive times are read as local time."""
    aware = moment if moment.tzinfo else moment.astimezone()
    return aware.astimezone(UTC).isoformat(timespec="milliseconds")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _decode(row: sqlite3.Row | None) -> Row | None:
    if row is None:
        return None
    out: Row = {}
    for key in row.keys():  # noqa: SIM118 - sqlite3.Row is not a mapping
        value = row[key]
        if key.endswith("_json"):
            out[key[:-5]] = json.loads(value) if value is not None else None
        else:
            out[key] = value
    return out


def _encode(row: Row) -> Row:
    return {
        k: json.dumps(v, ensure_ascii=False) if k.endswith("_json") and v is not None else v
        for k, v in row.items()
    }


class FeverStore(SqliteStore):
    def __init__(self, path: Path | str) -> None:
        super().__init__(path, _SCHEMA, SCHEMA_VERSION, rows_by_name=True, foreign_keys=True)

    # ------------------------------------------------------------------ plumbing

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        with self._lock:
            return _decode(self._conn.execute(sql, params).fetchone())

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [r for r in map(_decode, rows) if r is not None]

    @staticmethod
    def _insert(db: sqlite3.Connection, table: str, row: Row) -> None:
        encoded = _encode(row)
        names = ", ".join(encoded)
        marks = ", ".join("?" for _ in encoded)
        db.execute(f"INSERT INTO {table}({names}) VALUES ({marks})", tuple(encoded.values()))

    def insert(self, table: str, row: Row) -> None:
        with self._transaction() as db:
            self._insert(db, table, row)

    # ------------------------------------------------------------------ accounts and tokens

    def create_account(self, row: Row) -> bool:
        """False when the username is taken (usernames compare case-insensitively: stored folded)."""
        try:
            self.insert("accounts", row)
        except sqlite3.IntegrityError:
            return False
        return True

    def account_by_username(self, username: str) -> Row | None:
        return self._one("SELECT * FROM accounts WHERE username = ?", (username,))

    def account(self, account_id: str) -> Row | None:
        return self._one("SELECT * FROM accounts WHERE account_id = ?", (account_id,))

    def add_token(self, token_hash: str, account_id: str, created: str, expires: str) -> None:
        self.insert(
            "tokens",
            {"token_hash": token_hash, "account_id": account_id, "created": created, "expires": expires},
        )

    def account_for_token(self, token_hash: str, now: str) -> Row | None:
        return self._one(
            "SELECT a.* FROM tokens t JOIN accounts a ON a.account_id = t.account_id "
            "WHERE t.token_hash = ? AND t.expires > ?",
            (token_hash, now),
        )

    def delete_token(self, token_hash: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM tokens WHERE token_hash = ?", (token_hash,))

    # ------------------------------------------------------------------ children

    def child(self, child_id: str) -> Row | None:
        return self._one("SELECT * FROM children WHERE child_id = ?", (child_id,))

    def children_of(self, account_id: str) -> list[Row]:
        return self._all("SELECT * FROM children WHERE account_id = ? ORDER BY created", (account_id,))

    def update_child(self, child_id: str, fields: Row) -> None:
        encoded = _encode(fields)
        sets = ", ".join(f"{k} = ?" for k in encoded)
        with self._transaction() as db:
            db.execute(f"UPDATE children SET {sets} WHERE child_id = ?", (*encoded.values(), child_id))

    def child_shared_with_clinic(self, child_id: str, clinic_id: str) -> bool:
        """The family sent this clinic a form or asked it for a call: its staff may read the diary."""
        row = self._one(
            "SELECT 1 AS shared FROM forms WHERE child_id = ? AND clinic_id = ? AND status = 'sent' "
            "UNION SELECT 1 FROM callbacks WHERE child_id = ? AND clinic_id = ? LIMIT 1",
            (child_id, clinic_id, child_id, clinic_id),
        )
        return row is not None

    # ------------------------------------------------------------------ diary

    def readings(self, child_id: str, since: str | None = None) -> list[Row]:
        return self._all(
            "SELECT * FROM readings WHERE child_id = ? AND measured_at >= ? ORDER BY measured_at, created",
            (child_id, since or ""),
        )

    def ble_duplicate(
        self, child_id: str, value_c: float, device_time: str | None, window: tuple[str, str]
    ) -> Row | None:
        """A Bluetooth reading already stored that this one repeats: the same device timestamp
        and value, or — without a device timestamp — the same value received within the window."""
        if device_time is not None:
            return self._one(
                "SELECT * FROM readings WHERE child_id = ? AND source = 'ble' AND device_time = ? "
                "AND abs(value_c - ?) < 0.001",
                (child_id, device_time, value_c),
            )
        return self._one(
            "SELECT * FROM readings WHERE child_id = ? AND source = 'ble' AND device_time IS NULL "
            "AND abs(value_c - ?) < 0.001 AND measured_at BETWEEN ? AND ?",
            (child_id, value_c, *window),
        )

    def doses(self, child_id: str, since: str | None = None) -> list[Row]:
        return self._all(
            "SELECT * FROM doses WHERE child_id = ? AND given_at >= ? ORDER BY given_at, created",
            (child_id, since or ""),
        )

    def symptoms(self, child_id: str, since: str | None = None) -> list[Row]:
        return self._all(
            "SELECT * FROM symptoms WHERE child_id = ? AND noted_at >= ? ORDER BY noted_at, created",
            (child_id, since or ""),
        )

    def colour_changes(self, child_id: str) -> list[Row]:
        return self._all("SELECT * FROM colour_changes WHERE child_id = ? ORDER BY seq", (child_id,))

    def record_grade(self, child_id: str, grade: Row, change: Row | None, updated: str) -> None:
        """The latest grade on the child, and a colour_changes row when the colour changed."""
        with self._transaction() as db:
            db.execute(
                "UPDATE children SET grade_json = ?, colour = ?, updated = ? WHERE child_id = ?",
                (json.dumps(grade, ensure_ascii=False), grade["colour"], updated, child_id),
            )
            if change is not None:
                seq = db.execute(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM colour_changes WHERE child_id = ?", (child_id,)
                ).fetchone()[0]
                self._insert(db, "colour_changes", {"child_id": child_id, "seq": seq, **change})

    # ------------------------------------------------------------------ reminders

    def replace_pending_reminders(self, child_id: str, kinds: Iterable[str], new: list[Row]) -> None:
        """Cancels the child's pending reminders of these kinds and adds the new ones, atomically."""
        kinds = list(kinds)
        marks = ", ".join("?" for _ in kinds)
        with self._transaction() as db:
            db.execute(
                f"UPDATE reminders SET status = 'cancelled' WHERE child_id = ? AND status = 'pending' "
                f"AND kind IN ({marks})",
                (child_id, *kinds),
            )
            for row in new:
                self._insert(db, "reminders", row)

    def reminders(self, child_id: str, limit: int = 50) -> list[Row]:
        """Pending ones first (soonest first), then the most recently sent."""
        return self._all(
            "SELECT * FROM reminders WHERE child_id = ? AND status != 'cancelled' "
            "ORDER BY status = 'pending' DESC, CASE WHEN status = 'pending' THEN due_at END ASC, "
            "due_at DESC LIMIT ?",
            (child_id, limit),
        )

    def due_reminders(self, now: str, limit: int = 200) -> list[Row]:
        return self._all(
            "SELECT * FROM reminders WHERE status = 'pending' AND due_at <= ? ORDER BY due_at LIMIT ?",
            (now, limit),
        )

    def mark_reminders_sent(self, reminder_ids: list[str], now: str) -> None:
        with self._transaction() as db:
            db.executemany(
                "UPDATE reminders SET status = 'sent', sent_at = ? "
                "WHERE reminder_id = ? AND status = 'pending'",
                [(now, rid) for rid in reminder_ids],
            )

    # ------------------------------------------------------------------ forms

    def form(self, form_id: str) -> Row | None:
        return self._one("SELECT * FROM forms WHERE form_id = ?", (form_id,))

    def forms_of_account(self, account_id: str, status: str | None) -> list[Row]:
        return self._all(
            "SELECT * FROM forms WHERE account_id = ? AND (? IS NULL OR status = ?) ORDER BY created DESC",
            (account_id, status, status),
        )

    def forms_of_clinic(self, clinic_id: str) -> list[Row]:
        return self._all(
            "SELECT * FROM forms WHERE clinic_id = ? AND status = 'sent' ORDER BY sent_at DESC", (clinic_id,)
        )

    def form_by_key(self, account_id: str, key: str) -> Row | None:
        return self._one(
            "SELECT * FROM forms WHERE account_id = ? AND idempotency_key = ?", (account_id, key)
        )

    def send_form(self, form_id: str, key: str | None, now: str) -> bool:
        """True when this call sent the form; False when it had been sent already."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE forms SET status = 'sent', sent_at = ?, idempotency_key = ? "
                "WHERE form_id = ? AND status = 'draft'",
                (now, key, form_id),
            )
            return cursor.rowcount == 1

    # ------------------------------------------------------------------ callbacks

    def callback(self, callback_id: str) -> Row | None:
        return self._one("SELECT * FROM callbacks WHERE callback_id = ?", (callback_id,))

    def open_callback_for(self, child_id: str) -> Row | None:
        return self._one(
            "SELECT * FROM callbacks WHERE child_id = ? AND status = 'open' ORDER BY created DESC LIMIT 1",
            (child_id,),
        )

    def callbacks_of_clinic(self, clinic_id: str, status: str | None) -> list[Row]:
        return self._all(
            "SELECT * FROM callbacks WHERE clinic_id = ? AND (? IS NULL OR status = ?) ORDER BY created",
            (clinic_id, status, status),
        )

    def callbacks_of_account(self, account_id: str) -> list[Row]:
        return self._all("SELECT * FROM callbacks WHERE account_id = ? ORDER BY created DESC", (account_id,))

    def handle_callback(self, callback_id: str, by: str, now: str) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE callbacks SET status = 'handled', handled_at = ?, handled_by = ? "
                "WHERE callback_id = ? AND status = 'open'",
                (now, by, callback_id),
            )
            return cursor.rowcount == 1
