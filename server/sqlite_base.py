"""The SQLite plumbing both server stores share: one WAL-mode connection behind a lock, the
schema applied at open, explicit BEGIN IMMEDIATE transactions."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class SqliteStore:
    def __init__(
        self,
        path: Path | str,
        schema: str,
        schema_version: int,
        *,
        rows_by_name: bool = False,
        foreign_keys: bool = False,
    ) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._lock = threading.Lock()
        # Autocommit mode; transactions are explicit (BEGIN IMMEDIATE) in _transaction.
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        if rows_by_name:
            self._conn.row_factory = sqlite3.Row
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=5000")
            if foreign_keys:
                self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(schema)
            self._conn.execute(f"PRAGMA user_version={schema_version}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
