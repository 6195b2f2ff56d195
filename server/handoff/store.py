"""SQLite for follow-up conversations and clinic flags (data_dir/handoff.sqlite3).

A follow-up conversation is stored whole (FollowUpConversation JSON) with its owner and current
level; a clinic flag is one row per escalation (or "see a doctor today") a clinician should see,
open until acknowledged. Times are UTC ISO strings.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from server.fever.auth import new_id
from server.sqlite_base import SqliteStore
from tools.triage_models import Level

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS followup_conversations (
    conversation_id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL,
    plan_id TEXT NOT NULL,
    level TEXT NOT NULL,
    state_json TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS followup_by_patient ON followup_conversations(patient_id);
CREATE TABLE IF NOT EXISTS clinic_flags (
    flag_id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    plan_id TEXT NOT NULL,
    check_id TEXT NOT NULL,
    question_id TEXT NOT NULL,
    kind TEXT NOT NULL,               -- "escalation" | "attention"
    level TEXT NOT NULL,
    level_rank INTEGER NOT NULL,
    call_120 INTEGER NOT NULL,
    answer_text TEXT NOT NULL,
    red_flags_json TEXT NOT NULL,
    rule_ids_json TEXT NOT NULL,
    advice TEXT NOT NULL,
    created TEXT NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by TEXT
);
CREATE INDEX IF NOT EXISTS flags_open ON clinic_flags(acknowledged_at, level_rank, created);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _flag(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "flag_id": row["flag_id"],
        "patient_id": row["patient_id"],
        "conversation_id": row["conversation_id"],
        "plan_id": row["plan_id"],
        "check_id": row["check_id"],
        "question_id": row["question_id"],
        "kind": row["kind"],
        "level": row["level"],
        "call_120": bool(row["call_120"]),
        "answer_text": row["answer_text"],
        "red_flags": json.loads(row["red_flags_json"]),
        "rule_ids": json.loads(row["rule_ids_json"]),
        "advice": row["advice"],
        "created_at": row["created"],
        "acknowledged_at": row["acknowledged_at"],
        "acknowledged_by": row["acknowledged_by"],
    }


class HandoffStore(SqliteStore):
    def __init__(self, path: Path | str) -> None:
        super().__init__(path, _SCHEMA, SCHEMA_VERSION, rows_by_name=True)

    # ---- conversations

    def load_conversation(self, conversation_id: str) -> tuple[str, dict[str, Any]] | None:
        """(owner patient id, state) or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT patient_id, state_json FROM followup_conversations WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()
        return (row["patient_id"], json.loads(row["state_json"])) if row else None

    def save_conversation(
        self, conversation_id: str, patient_id: str, plan_id: str, level: Level, state: dict[str, Any]
    ) -> None:
        now = _now()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO followup_conversations(conversation_id, patient_id, plan_id, level, state_json, "
                "created, updated) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(conversation_id) DO UPDATE SET "
                "level = excluded.level, state_json = excluded.state_json, updated = excluded.updated",
                (
                    conversation_id,
                    patient_id,
                    plan_id,
                    level.value,
                    json.dumps(state, ensure_ascii=False),
                    now,
                    now,
                ),
            )

    # ---- flags

    def add_flag(
        self,
        *,
        patient_id: str,
        conversation_id: str,
        plan_id: str,
        check_id: str,
        question_id: str,
        kind: str,
        level: Level,
        call_120: bool,
        answer_text: str,
        red_flags: list[dict[str, Any]],
        rule_ids: list[str],
        advice: str,
    ) -> dict[str, Any]:
        flag_id = "flag-" + new_id()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO clinic_flags(flag_id, patient_id, conversation_id, plan_id, check_id, "
                "question_id, kind, level, level_rank, call_120, answer_text, red_flags_json, rule_ids_json, "
                "advice, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    flag_id,
                    patient_id,
                    conversation_id,
                    plan_id,
                    check_id,
                    question_id,
                    kind,
                    level.value,
                    level.rank,
                    int(call_120),
                    answer_text,
                    json.dumps(red_flags, ensure_ascii=False),
                    json.dumps(rule_ids),
                    advice,
                    _now(),
                ),
            )
        found = self.flag(flag_id)
        assert found is not None
        return found

    def flag(self, flag_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM clinic_flags WHERE flag_id = ?", (flag_id,)).fetchone()
        return _flag(row) if row else None

    def flags(self, include_acknowledged: bool = False, limit: int = 200) -> list[dict[str, Any]]:
        """Open flags first, the most urgent first, then the newest."""
        where = "" if include_acknowledged else "WHERE acknowledged_at IS NULL"
        with self._lock:
            rows = self._conn.execute(
                f"SELECT * FROM clinic_flags {where} "
                "ORDER BY acknowledged_at IS NOT NULL, level_rank DESC, created DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_flag(r) for r in rows]

    def acknowledge(self, flag_id: str, account_id: str) -> dict[str, Any] | None:
        with self._transaction() as db:
            db.execute(
                "UPDATE clinic_flags SET acknowledged_at = ?, acknowledged_by = ? "
                "WHERE flag_id = ? AND acknowledged_at IS NULL",
                (_now(), account_id, flag_id),
            )
        return self.flag(flag_id)
