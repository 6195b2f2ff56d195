"""A tiny database layer for the booking store: SQLite (default) or PostgreSQL, chosen by URL.

The same SQL runs on both: statements use `?` placeholders (translated to `%s` for psycopg), ISO-8601
UTC text for times, 0/1 for booleans, partial unique indexes and INSERT ... ON CONFLICT DO NOTHING.
Races are settled by the database, not by Python: a unique index rejects the second active booking
of a slot, and the caller retries the whole transaction on a conflict (`run` does this).

SQLite: WAL, a small connection pool, write transactions are BEGIN IMMEDIATE behind a process lock
(so threads queue instead of spinning in SQLite's busy handler; other processes still wait on the
database lock via busy_timeout). PostgreSQL: psycopg 3, a small pool, READ COMMITTED transactions.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

Dialect = Literal["sqlite", "postgresql"]
Row = dict[str, Any]
T = TypeVar("T")


class UniqueViolation(Exception):
    """A unique constraint rejected a write (e.g. a second active booking of the same slot)."""


class RetryableError(Exception):
    """A transient failure (deadlock, serialization failure, busy database): run it again."""


class Tx:
    """One open transaction: execute / one / all with `?` placeholders."""

    def __init__(self, conn: Any, dialect: Dialect) -> None:
        self._conn = conn
        self.dialect = dialect

    def _sql(self, sql: str) -> str:
        return _pg_sql(sql) if self.dialect == "postgresql" else sql

    def execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> int:
        """Runs a statement; returns the number of rows it changed."""
        cur = self._conn.execute(self._sql(sql), tuple(params))
        return int(cur.rowcount or 0)

    def one(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Row | None:
        cur = self._conn.execute(self._sql(sql), tuple(params))
        row = cur.fetchone()
        return None if row is None else dict(row)

    def all(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[Row]:
        cur = self._conn.execute(self._sql(sql), tuple(params))
        return [dict(r) for r in cur.fetchall()]


_PG_CACHE: dict[str, str] = {}


def _pg_sql(sql: str) -> str:
    translated = _PG_CACHE.get(sql)
    if translated is None:
        # Our SQL has no literal '?' or '%' in strings; escape '%' for psycopg's format style.
        translated = sql.replace("%", "%%").replace("?", "%s")
        _PG_CACHE[sql] = translated
    return translated


class _Pool:
    """Connections made lazily up to max_size, handed out one per transaction."""

    def __init__(self, factory: Callable[[], Any], max_size: int) -> None:
        self._factory = factory
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(max_size)
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[Any]:
        self._slots.acquire()
        conn = None
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = self._factory()
                with self._lock:
                    self._all.append(conn)
            yield conn
        except BaseException:
            if conn is not None and _broken(conn):
                self._discard(conn)
                conn = None
            raise
        finally:
            if conn is not None:
                if self._closed:
                    _close_quietly(conn)
                else:
                    self._idle.put(conn)
            self._slots.release()

    def _discard(self, conn: Any) -> None:
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        _close_quietly(conn)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            _close_quietly(conn)


def _broken(conn: Any) -> bool:
    return bool(getattr(conn, "broken", False) or getattr(conn, "closed", False))


def _close_quietly(conn: Any) -> None:
    # Closing a dead connection must not mask the real error.
    with contextlib.suppress(Exception):
        conn.close()


class Database:
    """Transactions over a pool. `serial_pk` is the dialect's auto-increment primary key type."""

    dialect: Dialect
    serial_pk: str

    def transaction(self, *, write: bool = True) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def apply_schema(self, schema: str) -> None:
        statements = [s.strip() for s in schema.format(serial_pk=self.serial_pk).split(";") if s.strip()]
        with self.transaction() as tx:
            for statement in statements:
                tx.execute(statement)

    def run(self, work: Callable[[Tx], T], *, write: bool = True, attempts: int = 5) -> T:
        """work(tx) in a transaction; on a unique-constraint conflict or a transient failure the
        transaction is rolled back and work runs again, now seeing what the winner committed (so it
        can answer slot_taken, or replay an idempotent request)."""
        for attempt in range(attempts):
            try:
                with self.transaction(write=write) as tx:
                    return work(tx)
            except (UniqueViolation, RetryableError):
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")


class SqliteDatabase(Database):
    dialect: Dialect = "sqlite"
    serial_pk = "INTEGER PRIMARY KEY AUTOINCREMENT"

    def __init__(self, path: Path | str, *, pool_size: int = 4) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()
        # Every ":memory:" connection is its own database, so it gets exactly one.
        self._pool = _Pool(self._connect, 1 if self.path == ":memory:" else pool_size)

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode; transactions are explicit below.
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Tx]:
        lock = self._write_lock if write else _NO_LOCK
        with lock, self._pool.connection() as conn:
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.OperationalError as exc:  # database locked by another process
                raise RetryableError(str(exc)) from exc
            try:
                yield Tx(conn, "sqlite")
            except sqlite3.IntegrityError as exc:
                conn.execute("ROLLBACK")
                if "UNIQUE" in str(exc):
                    raise UniqueViolation(str(exc)) from exc
                raise
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                conn.execute("ROLLBACK")
                raise RetryableError(str(exc)) from exc

    def close(self) -> None:
        self._pool.close()


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_LOCK = _NoLock()


class PostgresDatabase(Database):
    dialect: Dialect = "postgresql"
    serial_pk = "BIGSERIAL PRIMARY KEY"

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        import psycopg  # imported here so SQLite-only installs never need it

        self._psycopg = psycopg
        self.url = url
        self._pool = _Pool(self._connect, pool_size)

    def _connect(self) -> Any:
        from psycopg.rows import dict_row

        return self._psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=10)

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Tx]:
        errors = self._psycopg.errors
        with self._pool.connection() as conn:
            try:
                with conn.transaction():
                    yield Tx(conn, "postgresql")
            except errors.UniqueViolation as exc:
                raise UniqueViolation(str(exc)) from exc
            except (errors.SerializationFailure, errors.DeadlockDetected) as exc:
                raise RetryableError(str(exc)) from exc

    def close(self) -> None:
        self._pool.close()


def open_database(url: str | Path) -> Database:
    """ "postgresql://..." / "postgres://..." -> PostgreSQL; "sqlite:///path", a path or ":memory:"
    -> SQLite."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(text)
    if text.startswith("sqlite:///"):
        return SqliteDatabase(text.removeprefix("sqlite:///"))
    if "://" in text:
        raise ValueError(f"unsupported database URL scheme: {text.split('://', 1)[0]}")
    return SqliteDatabase(text)
