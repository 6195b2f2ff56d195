"""The persistent reminder scheduler (server/reminders) with a fake clock: many reminders in one
minute, a restart between scheduling and due time, a crash during delivery, two processes
sharing one database — every occurrence reaches the outbox exactly once, late ones marked."""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from server.notify import NotificationHub, Outgoing
from server.reminders.scheduler import ReminderScheduler, dedupe_key
from server.reminders.store import ReminderStore
from tools.reminders import ReminderKind, ReminderSpec, first_occurrence, validate

T0 = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Node:
    """One server process's worth: store, hub and scheduler on the shared file."""

    def __init__(self, path: Path, clock: Clock, owner: str, **scheduler: Any) -> None:
        self.store = ReminderStore(path)
        self.hub = NotificationHub(path, clock=clock, hub_id=f"hub-{owner}")
        self.scheduler = ReminderScheduler(self.store, self.hub, clock=clock, owner=owner, **scheduler)

    def close(self) -> None:
        self.store.close()
        self.hub.close()


def schedule(store: ReminderStore, clock: Clock, patient: str, at: datetime, **extra: Any) -> str:
    spec = ReminderSpec(
        patient_id=patient, kind=ReminderKind.medication, title_zh="吃药", first_at=at, **extra
    )
    checked = validate(spec, clock())
    return store.create(spec, checked, first_occurrence(checked), clock())


def reminder_rows(hub: NotificationHub) -> list[dict[str, Any]]:
    return [row for row in hub.store.all_rows() if row["kind"] == "reminder"]


def test_thirty_reminders_at_one_minute_all_delivered_once(tmp_path: Path) -> None:
    clock = Clock()
    node = Node(tmp_path / "r.sqlite3", clock, "a", batch=8)  # small batches: several claim rounds
    due = T0 + timedelta(minutes=1)
    ids = [schedule(node.store, clock, f"p{i % 3}", due) for i in range(30)]
    assert node.scheduler.tick() == []  # not due yet
    clock.advance(minutes=1)
    fired = node.scheduler.tick()
    assert sorted(c.claimed.reminder_id for c in fired) == sorted(ids)
    assert node.scheduler.tick() == []
    clock.advance(hours=1)
    assert node.scheduler.tick() == []
    rows = reminder_rows(node.hub)
    assert sorted(r["payload"]["reminder_id"] for r in rows) == sorted(ids)
    assert not any(r["payload"]["late"] for r in rows)
    assert Counter(r["patient_id"] for r in rows) == {"p0": 10, "p1": 10, "p2": 10}
    node.close()


def test_restart_between_scheduling_and_due_time_delivers_each_once_marked_late(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    clock = Clock()
    first = Node(path, clock, "before")
    one_offs = [schedule(first.store, clock, "p1", T0 + timedelta(minutes=10 + i)) for i in range(5)]
    hourly = schedule(first.store, clock, "p2", T0 + timedelta(minutes=10), rrule="FREQ=HOURLY", count=5)
    first.close()  # the server goes down before anything is due

    clock.advance(hours=3, minutes=20)  # down through 4 hourly occurrences (00:10, 01:10, 02:10, 03:10)
    second = Node(path, clock, "after")
    fired = second.scheduler.tick()
    assert second.scheduler.tick() == []
    rows = reminder_rows(second.hub)
    by_reminder = Counter(r["payload"]["reminder_id"] for r in rows)
    assert by_reminder == {**{rid: 1 for rid in one_offs}, hourly: 1}
    assert all(r["payload"]["late"] and r["payload"]["lateness_s"] > 60 for r in rows)
    (hourly_row,) = [r for r in rows if r["payload"]["reminder_id"] == hourly]
    assert len(hourly_row["payload"]["missed_due_at"]) == 3  # 01:10, 02:10, 03:10 listed, not dropped
    assert hourly_row["payload"]["advice_zh"]  # medication: do not double up
    assert len(fired) == 6

    # the rest of the hourly course comes on time, once each
    clock.advance(minutes=50)  # 04:10
    (on_time,) = second.scheduler.tick()
    assert on_time.claimed.reminder_id == hourly and not on_time.late
    clock.advance(hours=5)
    assert second.scheduler.tick() == []  # COUNT=5: 00:10 fired, 3 missed, 04:10 fired
    statuses = Counter(o["status"] for o in second.store.occurrence_rows() if o["reminder_id"] == hourly)
    assert statuses == {"fired": 2, "missed": 3}
    second.close()


def test_crash_between_claim_and_publish_is_recovered_once(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    clock = Clock()
    crashed = Node(path, clock, "crashed", lease_s=30)
    rid = schedule(crashed.store, clock, "p1", T0 + timedelta(minutes=1))
    clock.advance(minutes=1)
    assert len(crashed.store.claim_due(clock(), "crashed", 30, 10)) == 1  # ... and the process dies
    crashed.close()

    survivor = Node(path, clock, "survivor", lease_s=30)
    assert survivor.scheduler.tick() == []  # the dead process's lease still holds
    clock.advance(seconds=31)
    (fired,) = survivor.scheduler.tick()
    assert fired.claimed.reminder_id == rid and fired.late is False  # 31 s: within the grace
    assert survivor.scheduler.tick() == []
    assert len(reminder_rows(survivor.hub)) == 1
    survivor.close()


def test_crash_after_publish_before_completion_is_not_published_twice(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    clock = Clock()
    crashed = Node(path, clock, "crashed", lease_s=30)
    rid = schedule(crashed.store, clock, "p1", T0 + timedelta(minutes=1))
    clock.advance(minutes=1)
    claimed = crashed.store.claim_due(clock(), "crashed", 30, 10)
    plans = [crashed.scheduler._plan(c, clock()) for c in claimed]
    crashed.hub.publish_many([Outgoing(c.patient_id, "reminder", p, dedupe_key(c)) for c, p, _, _ in plans])
    crashed.close()  # died before marking the occurrence fired

    survivor = Node(path, clock, "survivor", lease_s=30)
    clock.advance(minutes=5)
    (fired,) = survivor.scheduler.tick()
    assert fired.claimed.reminder_id == rid
    rows = reminder_rows(survivor.hub)
    assert len(rows) == 1 and fired.notification_id == rows[0]["id"]
    assert survivor.scheduler.tick() == []
    survivor.close()


def test_snoozed_occurrence_fires_again_once_with_its_own_key(tmp_path: Path) -> None:
    clock = Clock()
    node = Node(tmp_path / "r.sqlite3", clock, "a")
    rid = schedule(node.store, clock, "p1", T0 + timedelta(minutes=1))
    clock.advance(minutes=1)
    assert len(node.scheduler.tick()) == 1
    assert node.store.snooze(rid, clock() + timedelta(minutes=10)) is not None
    clock.advance(minutes=9)
    assert node.scheduler.tick() == []
    clock.advance(minutes=1)
    (again,) = node.scheduler.tick()
    assert again.claimed.snoozes == 1 and not again.late
    rows = reminder_rows(node.hub)
    assert [r["payload"]["snoozed"] for r in rows] == [False, True]
    assert node.store.ack(rid, clock()) is not None
    assert node.store.snooze(rid, clock()) is None  # acknowledged: nothing left to snooze
    node.close()


def test_stopped_reminder_never_fires(tmp_path: Path) -> None:
    clock = Clock()
    node = Node(tmp_path / "r.sqlite3", clock, "a")
    rid = schedule(node.store, clock, "p1", T0 + timedelta(minutes=1), rrule="FREQ=DAILY")
    assert node.store.stop(rid, clock()) == 1
    clock.advance(days=3)
    assert node.scheduler.tick() == []
    node.close()


def test_plain_notify_callable_works_without_the_hub(tmp_path: Path) -> None:
    """Other features' tests pass a list-appending function; the scheduler accepts one too."""
    clock = Clock()
    store = ReminderStore(tmp_path / "r.sqlite3")
    calls: list[tuple[str, str, dict[str, Any]]] = []
    scheduler = ReminderScheduler(store, lambda p, k, payload: calls.append((p, k, payload)), clock=clock)
    spec = ReminderSpec(
        patient_id="p1",
        kind=ReminderKind.followup_question,
        title_zh="现在感觉怎么样？",
        first_at=T0 + timedelta(hours=1),
        data={"question_id": "q1"},
    )
    checked = validate(spec, clock())
    store.create(spec, checked, first_occurrence(checked), clock())
    clock.advance(hours=1)
    assert len(scheduler.tick()) == 1 and scheduler.tick() == []
    ((patient, kind, payload),) = calls
    assert (patient, kind, payload["data"]) == ("p1", "followup_question", {"question_id": "q1"})
    store.close()


def _worker(path: str, now_iso: str, owner: str, barrier: Any, results: Any) -> None:
    clock = Clock(datetime.fromisoformat(now_iso))
    node = Node(Path(path), clock, owner, batch=5)
    barrier.wait()
    fired = 0
    idle_rounds = 0
    while idle_rounds < 3:
        got = node.scheduler.tick(max_batches=1)
        fired += len(got)
        idle_rounds = 0 if got else idle_rounds + 1
        time.sleep(0.002)  # let the other process in between batches
    node.close()
    results.put((owner, fired))


def test_two_processes_on_one_database_deliver_each_reminder_once(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    clock = Clock()
    setup = Node(path, clock, "setup")
    ids = [schedule(setup.store, clock, f"p{i % 7}", T0 + timedelta(minutes=1)) for i in range(120)]
    setup.close()

    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    now = (T0 + timedelta(minutes=2)).isoformat()
    workers = [ctx.Process(target=_worker, args=(str(path), now, name, barrier, results)) for name in "AB"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    counts = dict(results.get(timeout=5) for _ in workers)
    assert sum(counts.values()) == len(ids), counts

    check = Node(path, clock, "check")
    rows = reminder_rows(check.hub)
    assert sorted(r["payload"]["reminder_id"] for r in rows) == sorted(ids)  # each exactly once
    assert len({r["dedupe_key"] for r in rows}) == len(ids)
    assert Counter(o["status"] for o in check.store.occurrence_rows()) == {"fired": len(ids)}
    check.close()
