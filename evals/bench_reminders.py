"""Reminder scheduler throughput: n one-off reminders due within a short window, fired by the real
scheduler (claim -> publish to the outbox -> complete) on a SQLite file, real clock.

    python -m evals.bench_reminders [--n 10000] [--window 2.0]
    bench_scheduler(n=10_000) -> {"scheduled", "delivered", "delivered_per_s", "p50_lateness_ms",
                                  "p95_lateness_ms", "max_lateness_ms", "schedule_per_s", ...}
Lateness = when the notification was committed to the outbox minus the reminder's due time
(includes the poll interval). delivered_per_s = delivered / time spent inside scheduler ticks.
For `make bench`: reminder_bench(config) -> list[BenchRow] (section "reminders").
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from server.notify import NotificationHub
from server.reminders.scheduler import ReminderScheduler
from server.reminders.store import ReminderStore
from tools.reminders import ReminderKind, ReminderSpec, first_occurrence, validate

if TYPE_CHECKING:
    from evals.bench import BenchConfig, BenchRow


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def bench_scheduler(
    n: int = 10_000, *, window_s: float = 2.0, lead_s: float = 1.0, poll_s: float = 0.05, patients: int = 500
) -> dict[str, float]:
    """Schedule n reminders due evenly over `window_s` starting `lead_s` from now, poll every
    `poll_s` until all fired."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reminders.sqlite3"
        store = ReminderStore(path)
        hub = NotificationHub(path)
        scheduler = ReminderScheduler(store, hub, clock=lambda: datetime.now(UTC), batch=500)
        try:
            started = time.perf_counter()
            now = datetime.now(UTC)
            base = now + timedelta(seconds=lead_s + n * 0.0002)  # room for scheduling itself
            items = []
            for i in range(n):
                due = base + timedelta(seconds=window_s * i / max(n, 1))
                spec = ReminderSpec(
                    patient_id=f"p{i % patients}", kind=ReminderKind.medication, title_zh="吃药", first_at=due
                )
                checked = validate(spec, now)
                items.append((spec, checked, first_occurrence(checked)))
            store.create_many(items, now)
            schedule_s = time.perf_counter() - started
            if datetime.now(UTC) > base:
                raise RuntimeError("scheduling took longer than the lead time; raise lead_s")

            lateness_ms: list[float] = []
            busy_s = 0.0
            deadline = time.monotonic() + 120 + n / 100
            while len(lateness_ms) < n and time.monotonic() < deadline:
                tick_start = time.perf_counter()
                fired = scheduler.tick(max_batches=1)  # one batch: its commit time is known
                busy_s += time.perf_counter() - tick_start
                done_at = datetime.now(UTC)  # committed by now
                lateness_ms += [(done_at - c.claimed.due_at).total_seconds() * 1000 for c in fired]
                if not fired:
                    time.sleep(poll_s)
            outbox = len(hub.store.all_rows())
        finally:
            store.close()
            hub.close()
    delivered = len(lateness_ms)
    return {
        "scheduled": float(n),
        "delivered": float(delivered),
        "outbox_rows": float(outbox),
        "schedule_per_s": n / schedule_s if schedule_s else float("inf"),
        "delivered_per_s": delivered / busy_s if busy_s else float("inf"),
        "due_per_s": n / window_s,
        "p50_lateness_ms": _percentile(lateness_ms, 50) if lateness_ms else float("nan"),
        "p95_lateness_ms": _percentile(lateness_ms, 95) if lateness_ms else float("nan"),
        "max_lateness_ms": max(lateness_ms, default=float("nan")),
    }


def reminder_bench(config: BenchConfig) -> list[BenchRow]:
    """Row for evals/bench.py: lateness percentiles as the latency columns, delivered/s as throughput."""
    from evals.bench import BenchRow

    result = bench_scheduler()
    return [
        BenchRow(
            section="reminders",
            name="scheduler 10k due in 2 s",
            samples=int(result["delivered"]),
            p50_ms=result["p50_lateness_ms"],
            p95_ms=result["p95_lateness_ms"],
            p99_ms=result["p95_lateness_ms"],
            max_ms=result["max_lateness_ms"],
            throughput_per_s=result["delivered_per_s"],
            note=(
                f"lateness after due (poll 50 ms; p99 col = p95); scheduled {result['schedule_per_s']:,.0f}/s"
            ),
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description="reminder scheduler throughput")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=2.0, help="seconds over which the n fall due")
    args = parser.parse_args()
    print(json.dumps(bench_scheduler(args.n, window_s=args.window), indent=2))


if __name__ == "__main__":
    main()
