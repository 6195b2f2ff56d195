"""Booking throughput on SQLite: `bench_booking(n)` books n distinct slots of the demo hospital in a
fresh database in a temp dir — one client after another, then 8 clients at once — and reports
bookings per second and latency percentiles of BookingService.book (transaction, constraint checks,
idempotency record; no HTTP). Run alone: `python -m evals.bench_booking [n]`."""

from __future__ import annotations

import math
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from server.booking.service import BookingService
from tools.booking.catalogue import load_directory

CONCURRENT_CLIENTS = 8
# A fixed Monday 06:00 Beijing time, so every run sees the same open slots.
BENCH_NOW = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)


def _percentile(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return 0.0
    rank = (len(sorted_ms) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return sorted_ms[low] + (sorted_ms[high] - sorted_ms[low]) * (rank - low)


def _free_slots(service: BookingService, clinic_id: str, needed: int) -> list[str]:
    clinic = service.clinic(clinic_id)
    found: list[str] = []
    for dept in clinic.departments:
        for day in service.open_days(clinic):
            slots = service.search_slots(clinic_id, dept.id, day=day, limit=200)
            found.extend(s["slot_id"] for s in slots)
            if len(found) >= needed:
                return found[:needed]
    if len(found) < needed:
        raise ValueError(f"the demo catalogue has only {len(found)} open slots; asked for {needed}")
    return found


def bench_booking(n: int = 500) -> dict[str, float]:
    """{bookings_per_s, p50_ms, p95_ms (one client), concurrent_bookings_per_s, concurrent_p95_ms
    (8 clients), n}. Slot materialisation is done before timing."""
    directory = load_directory()
    clinic_id = "demo-general-hospital"
    with tempfile.TemporaryDirectory(prefix="daozhen-bench-") as tmp:
        service = BookingService(Path(tmp) / "booking.sqlite3", directory, clock=lambda: BENCH_NOW)
        try:
            service.ensure_days(service.clinic(clinic_id), service.open_days(service.clinic(clinic_id)))
            slots = _free_slots(service, clinic_id, 2 * n)
            sequential, concurrent = slots[:n], slots[n:]

            latencies: list[float] = []
            started = time.perf_counter()
            for i, slot_id in enumerate(sequential):
                t0 = time.perf_counter()
                service.book(f"bench-{i}", slot_id, f"key-{i}")
                latencies.append((time.perf_counter() - t0) * 1000)
            sequential_s = time.perf_counter() - started

            def book(i: int) -> float:
                t0 = time.perf_counter()
                service.book(f"bench-c{i}", concurrent[i], f"key-c{i}")
                return (time.perf_counter() - t0) * 1000

            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=CONCURRENT_CLIENTS) as pool:
                concurrent_ms = sorted(pool.map(book, range(len(concurrent))))
            concurrent_s = time.perf_counter() - started
        finally:
            service.close()
    latencies.sort()
    return {
        "n": float(n),
        "bookings_per_s": n / sequential_s,
        "p50_ms": _percentile(latencies, 50),
        "p95_ms": _percentile(latencies, 95),
        "concurrent_bookings_per_s": len(concurrent) / concurrent_s,
        "concurrent_p95_ms": _percentile(concurrent_ms, 95),
    }


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    for key, value in bench_booking(count).items():
        print(f"{key:28s} {value:10.2f}")
