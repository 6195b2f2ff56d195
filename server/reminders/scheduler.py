"""The persistent reminder scheduler: one tick claims due occurrences atomically, publishes them
through the notify hub, then marks them fired and queues the next occurrence from the RRULE.

Exactly once, across restarts and processes:
  * claim: one UPDATE ... WHERE status='pending' AND fire_at <= now AND (unclaimed OR lease
    expired) — two processes on one database never hold the same occurrence;
  * publish with dedupe_key "reminder:<id>:<due_at>:<snoozes>" — the outbox keeps one row per key,
    so a process that died after publishing and before completing is not published twice when
    the lease expires and another tick (here or elsewhere) fires the occurrence again;
  * complete only rows still claimed by this owner.
Late: fired more than `grace` after its time -> payload late=true with lateness_s. A recurring
reminder that missed several occurrences while the server was down fires once for the oldest,
listing the later overdue ones in `missed_due_at` (recorded as 'missed'; a medication reminder
then says not to double up) and continues with the first future occurrence.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from server.notify import NotificationHub, Notify, Outgoing
from server.reminders.store import Claimed, Completion, ReminderStore
from tools.reminders import ReminderKind, next_occurrence, zone

log = logging.getLogger(__name__)

DEFAULT_GRACE = timedelta(seconds=60)
MAX_MISSED_LISTED = 50

_MISSED_DOSE = (
    "错过的剂量不要一次补两份；如不确定，请问医生或药师。",
    "Do not take a double dose to make up for a missed one; ask a doctor or pharmacist if unsure.",
)


def notify_kind(kind: str) -> str:
    return "followup_question" if kind == ReminderKind.followup_question else "reminder"


def dedupe_key(claimed: Claimed) -> str:
    return f"reminder:{claimed.reminder_id}:{claimed.due_at.isoformat()}:{claimed.snoozes}"


def reminder_payload(
    claimed: Claimed, fired_at: datetime, late: bool, missed: list[datetime]
) -> dict[str, Any]:
    spec = claimed.spec
    tz = zone(claimed.schedule.tz)
    payload: dict[str, Any] = {
        "reminder_id": claimed.reminder_id,
        "kind": spec.kind.value,
        "title_zh": spec.title_zh or spec.title_en,
        "title_en": spec.title_en or spec.title_zh,
        "body_zh": spec.body_zh,
        "body_en": spec.body_en,
        "due_at": claimed.due_at.astimezone(tz).isoformat(),
        "fire_at": claimed.fire_at.astimezone(tz).isoformat(),
        "fired_at": fired_at.astimezone(tz).isoformat(),
        "late": late,
        "lateness_s": round(max((fired_at - claimed.fire_at).total_seconds(), 0.0), 3),
        "snoozed": claimed.snoozes > 0,
        "missed_due_at": [m.astimezone(tz).isoformat() for m in missed],
        "data": spec.data,
        "actions": ["ack", "snooze", "stop"],
    }
    if missed and spec.kind == ReminderKind.medication:
        payload["advice_zh"], payload["advice_en"] = _MISSED_DOSE
    return payload


class ReminderScheduler:
    def __init__(
        self,
        store: ReminderStore,
        notify: NotificationHub | Notify,
        *,
        clock: Callable[[], datetime],
        owner: str | None = None,
        lease_s: float = 30.0,
        grace: timedelta = DEFAULT_GRACE,
        batch: int = 500,
    ) -> None:
        self.store, self.notify, self.clock = store, notify, clock
        self.owner = owner or f"scheduler-{uuid.uuid4().hex[:10]}"
        self.lease_s, self.grace, self.batch = lease_s, grace, batch
        self._busy = threading.Lock()

    def wait_idle(self) -> None:
        """Block until a running tick has finished (before closing the store)."""
        with self._busy:
            pass

    def tick(self, *, max_batches: int = 100) -> list[Completion]:
        """Fire everything due now (in batches). Blocking; returns what this call fired."""
        with self._busy:
            return self._tick(max_batches)

    def _tick(self, max_batches: int) -> list[Completion]:
        fired: list[Completion] = []
        for _ in range(max_batches):
            claimed = self.store.claim_due(self.clock(), self.owner, self.lease_s, self.batch)
            if not claimed:
                break
            fired.extend(self.fire(claimed))
            if len(claimed) < self.batch:
                break
        return fired

    def fire(self, claimed: list[Claimed]) -> list[Completion]:
        now = self.clock()
        plans = [self._plan(c, now) for c in claimed]
        outgoing = [
            Outgoing(c.patient_id, notify_kind(c.spec.kind), payload, dedupe_key(c))
            for c, payload, _, _ in plans
        ]
        ids = self._publish(outgoing)
        completions = [
            Completion(c, now, payload["late"], notification_id, next_due, missed)
            for (c, payload, next_due, missed), notification_id in zip(plans, ids, strict=True)
        ]
        self.store.complete(self.owner, completions)
        return completions

    def _publish(self, outgoing: list[Outgoing]) -> list[str | None]:
        if isinstance(self.notify, NotificationHub):
            return list(self.notify.publish_many(outgoing))
        for item in outgoing:  # a plain callable: no dedupe, so at-least-once
            self.notify(item.patient_id, item.kind, item.payload)
        return [None] * len(outgoing)

    def _plan(
        self, claimed: Claimed, now: datetime
    ) -> tuple[Claimed, dict[str, Any], datetime | None, list[datetime]]:
        late = now - claimed.fire_at > self.grace
        missed: list[datetime] = []
        truncated = False
        next_due: datetime | None = None
        if claimed.snoozes == 0:  # a snoozed re-fire: its successor was queued the first time
            next_due = next_occurrence(claimed.schedule, claimed.due_at)
            while next_due is not None and next_due <= now - self.grace:
                if len(missed) < MAX_MISSED_LISTED:
                    missed.append(next_due)
                else:  # down for very long: skip ahead, and say the list is not complete
                    truncated = True
                    next_due = next_occurrence(claimed.schedule, now - self.grace)
                    break
                next_due = next_occurrence(claimed.schedule, next_due)
        payload = reminder_payload(claimed, now, late, missed)
        payload["missed_truncated"] = truncated
        return claimed, payload, next_due, missed
