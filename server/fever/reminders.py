"""Re-measure reminders: when, from the grade (pure planning), and the asyncio loop in the app
lifespan that pushes due ones over /ws/fever.

Policy (the grade's own `remeasure.in_hours`, from tools/data/fever_rules.yaml):
  green 4 h, orange 2 h, red 1 h after the latest reading (or now when already overdue);
  orange adds a night check (02:00 server-local time); every logged dose adds a check 1 h later
  ("see whether the child perks up"); call 120 plans nothing — the red alert already said what to do.
A red colour change is not a reminder: it is pushed as an alert at once by the service.
A due reminder stays pending until the family has a /ws/fever connection, then goes out once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.fever.runtime import FeverRuntime

log = logging.getLogger(__name__)

GRADE_KINDS = ("remeasure", "night_check")  # re-planned after every grade
DOSE_KIND = "after_dose"  # re-planned after every dose
AFTER_DOSE = timedelta(hours=1)
MIN_GAP = timedelta(hours=1)  # a night check this close to another reminder is not added

_TEXT = {
    "remeasure": ("该给孩子量体温了。", "Time to measure the temperature again."),
    "night_check": (
        "夜间查看：看看孩子的精神、呼吸和面色，量一次体温。",
        "Night check: look at the child's alertness, breathing and colour, and measure the temperature.",
    ),
    DOSE_KIND: (
        "用退烧药约1小时了：再量一次体温，看看孩子精神有没有好转。",
        "About an hour since the fever medicine: measure again and see whether the child perks up.",
    ),
}


@dataclass(frozen=True)
class PlannedReminder:
    kind: str  # remeasure | night_check | after_dose
    due_at: datetime
    message: str


def _text(kind: str, lang: str | None) -> str:
    zh, en = _TEXT[kind]
    return zh if lang == "zh" else en if lang == "en" else f"{zh} / {en}"


def next_night_check(now: datetime, hour: int) -> datetime:
    """The next `hour`:00 in the server's local time, after `now`."""
    local = now.astimezone()
    candidate = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if candidate <= local:
        candidate += timedelta(days=1)
    return candidate


def plan_after_grade(
    grade: dict[str, Any], latest_reading_at: datetime | None, now: datetime, night_hour: int
) -> list[PlannedReminder]:
    hours = grade["remeasure"]["in_hours"]
    if grade["call_120"] or hours is None:
        return []
    lang = grade["lang"]
    base = latest_reading_at or now
    due = max(base + timedelta(hours=hours), now)
    advice = grade["remeasure"]["advice"]
    plan = [PlannedReminder("remeasure", due, f"{_text('remeasure', lang)} {advice}")]
    if grade["colour"] == "orange":
        night = next_night_check(now, night_hour)
        if abs(night - due) > MIN_GAP:
            plan.append(PlannedReminder("night_check", night, _text("night_check", lang)))
    return plan


def plan_after_dose(given_at: datetime, now: datetime, lang: str | None) -> PlannedReminder:
    return PlannedReminder(DOSE_KIND, max(given_at + AFTER_DOSE, now), _text(DOSE_KIND, lang))


class ReminderLoop:
    """Every `config.reminder_check_s`: push due reminders to connected families, mark them sent."""

    def __init__(self, fever: FeverRuntime) -> None:
        self.fever = fever
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="fever-reminders")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.fever.config.reminder_check_s)
            try:
                await self.tick()
            except Exception:  # a bad row or a full disk must not stop future reminders
                log.exception("pushing fever reminders failed")

    async def tick(self) -> int:
        """One check; returns how many reminders went out."""
        service, hub = self.fever.service, self.fever.hub
        now = self.fever.clock()
        due = await asyncio.to_thread(service.due_reminders, now)
        deliverable = [row for row in due if hub.connected(row["account_id"])]
        if not deliverable:
            return 0
        hub.publish([service.reminder_event(row) for row in deliverable])
        await asyncio.to_thread(service.mark_reminders_sent, [r["reminder_id"] for r in deliverable], now)
        return len(deliverable)
