"""SQLite persistence: session state, every transcript line, every triage decision (audit trail).

One connection shared by all threads behind a lock; WAL so a reader (e.g. an audit query from
another process) never blocks the server. Every operation is a short transaction, so calling it
from the event loop costs well under a millisecond. ":memory:" works for tests.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from server.sqlite_base import SqliteStore
from tools.triage_models import TriageResult

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    state_json TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    session_id TEXT NOT NULL REFERENCES sessions(session_id),
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    text TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE IF NOT EXISTS decisions (
    session_id TEXT NOT NULL REFERENCES sessions(session_id),
    seq INTEGER NOT NULL,
    level TEXT NOT NULL,
    rule_ids TEXT NOT NULL,
    engine_version TEXT NOT NULL,
    knowledge_version TEXT NOT NULL,
    input_text TEXT NOT NULL,
    result_json TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class StoredMessage:
    seq: int
    role: str  # "user" | "assistant" | "error"
    text: str
    created: str


@dataclass(frozen=True)
class StoredDecision:
    seq: int
    level: str
    rule_ids: list[str]
    engine_version: str
    knowledge_version: str
    input_text: str
    result: dict[str, Any]
    created: str


@dataclass(frozen=True)
class Decision:
    """A triage decision to record: the engine's result and the user text that led to it."""

    result: TriageResult
    input_text: str

    @property
    def rule_ids(self) -> list[str]:
        ids = [f.rule_id for f in self.result.rule_trace] + [f.rule_id for f in self.result.red_flags]
        return list(dict.fromkeys(ids))


class SessionStore(SqliteStore):
    def __init__(self, path: Path | str) -> None:
        super().__init__(path, _SCHEMA, SCHEMA_VERSION)

    # ---- sessions

    def save_session(self, session_id: str, state: dict[str, Any]) -> None:
        with self._transaction() as db:
            self._upsert(db, session_id, state)

    @staticmethod
    def _upsert(db: sqlite3.Connection, session_id: str, state: dict[str, Any]) -> None:
        now = _now()
        db.execute(
            "INSERT INTO sessions(session_id, state_json, created, updated) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(session_id) DO UPDATE SET "
            "state_json = excluded.state_json, updated = excluded.updated",
            (session_id, json.dumps(state, ensure_ascii=False), now, now),
        )

    def load_session(self, session_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT state_json FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def session_count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])

    # ---- one turn, atomically

    def record_turn(
        self,
        session_id: str,
        state: dict[str, Any],
        lines: list[tuple[str, str]],
        decision: Decision | None = None,
    ) -> None:
        """Saves the session state, appends transcript lines (role, text) and the decision, if any."""
        with self._transaction() as db:
            self._upsert(db, session_id, state)
            seq = self._next_seq(db, "messages", session_id)
            for offset, (role, text) in enumerate(lines):
                db.execute(
                    "INSERT INTO messages(session_id, seq, role, text, created) VALUES (?, ?, ?, ?, ?)",
                    (session_id, seq + offset, role, text, _now()),
                )
            if decision is not None:
                result = decision.result
                db.execute(
                    "INSERT INTO decisions(session_id, seq, level, rule_ids, engine_version, "
                    "knowledge_version, input_text, result_json, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        session_id,
                        self._next_seq(db, "decisions", session_id),
                        result.level.value,
                        json.dumps(decision.rule_ids),
                        result.engine_version,
                        result.knowledge_version,
                        decision.input_text,
                        result.model_dump_json(),
                        _now(),
                    ),
                )

    @staticmethod
    def _next_seq(db: sqlite3.Connection, table: str, session_id: str) -> int:
        row = db.execute(f"SELECT COALESCE(MAX(seq), 0) + 1 FROM {table} WHERE session_id = ?", (session_id,))
        return int(row.fetchone()[0])

    # ---- reading back

    def messages(self, session_id: str, last: int | None = None) -> list[StoredMessage]:
        """The transcript in order; with `last`, only the last that many lines."""
        query = "SELECT seq, role, text, created FROM messages WHERE session_id = ? ORDER BY seq DESC"
        params: tuple[Any, ...] = (session_id,)
        if last is not None:
            query += " LIMIT ?"
            params += (last,)
        with self._lock:
            rows = self._conn.execute(query, params).fetchall()
        return [StoredMessage(*row) for row in reversed(rows)]

    def decisions(self, session_id: str) -> list[StoredDecision]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, level, rule_ids, engine_version, knowledge_version, input_text, result_json, "
                "created FROM decisions WHERE session_id = ? ORDER BY seq",
                (session_id,),
            ).fetchall()
        return [
            StoredDecision(
                seq=seq,
                level=level,
                rule_ids=json.loads(rule_ids),
                engine_version=engine,
                knowledge_version=knowledge,
                input_text=text,
                result=json.loads(result),
                created=created,
            )
            for seq, level, rule_ids, engine, knowledge, text, result, created in rows
        ]
