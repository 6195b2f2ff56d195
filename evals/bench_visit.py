"""`make bench` sections of the visit features: booking throughput on SQLite (against a bare SQLite
insert transaction measured in the same run, since the machines are shared and noisy), route
computation on the demo hospital, and the reminder scheduler at 10,000 reminders."""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

from evals.bench import BenchConfig, BenchRow
from evals.bench_booking import bench_booking
from evals.bench_navigation import bench_navigation
from evals.bench_reminders import reminder_bench

BOOKINGS = 500


def bare_sqlite_transactions_per_s(n: int = BOOKINGS) -> float:
    """Baseline: one-row INSERT transactions per second on a WAL SQLite file, as the store opens it."""
    with tempfile.TemporaryDirectory(prefix="daozhen-bench-") as tmp:
        conn = sqlite3.connect(Path(tmp) / "bare.sqlite3", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, slot TEXT UNIQUE, patient TEXT)")
        started = time.perf_counter()
        for i in range(n):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (slot, patient) VALUES (?, ?)", (f"s{i}", f"p{i}"))
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - started
        conn.close()
    return n / elapsed


def booking_bench(config: BenchConfig) -> list[BenchRow]:
    baseline = bare_sqlite_transactions_per_s()
    result = bench_booking(BOOKINGS)
    ratio = result["bookings_per_s"] / baseline
    return [
        BenchRow(
            section="booking",
            name="book on SQLite, 1 client",
            samples=BOOKINGS,
            p50_ms=result["p50_ms"],
            p95_ms=result["p95_ms"],
            p99_ms=result["p95_ms"],
            max_ms=result["p95_ms"],
            throughput_per_s=result["bookings_per_s"],
            note=f"{ratio:.2f}x a bare SQLite insert txn ({baseline:,.0f}/s same run); p99/max cols = p95",
        ),
        BenchRow(
            section="booking",
            name="book on SQLite, 8 clients",
            samples=BOOKINGS,
            p50_ms=result["concurrent_p95_ms"],
            p95_ms=result["concurrent_p95_ms"],
            p99_ms=result["concurrent_p95_ms"],
            max_ms=result["concurrent_p95_ms"],
            throughput_per_s=result["concurrent_bookings_per_s"],
            note="8 threads on one service; only p95 measured",
        ),
    ]


VISIT_BENCHES = [booking_bench, bench_navigation, reminder_bench]
