"""ReminderRuntime (what the app lifespan starts) and ReminderService (what the routes call).

    runtime = ReminderRuntime(settings, hub)   # hub: server.notify.NotificationHub (or a plain
                                               # Notify callable in tests: then at-least-once)
    await runtime.start(); ...; await runtime.stop()
    app.state.reminders = runtime

Without a hub the runtime makes its own NotificationHub on the same database file (start/stop
it too); the app should still expose one hub as app.state.notify for /ws/patient.
Tests may replace `runtime.clock` (read at every call) and call `await runtime.tick()`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from assistant.settings import Settings
from server.errors import REST_MESSAGES, FeatureApiError
from server.notify import NotificationHub, Notify, parse_iso, utc_now
from server.reminders.scheduler import ReminderScheduler
from server.reminders.store import ReminderStore
from tools.reminders import ReminderError, ReminderSpec, Schedule, first_occurrence, to_ical, validate, zone

log = logging.getLogger(__name__)

MESSAGES: dict[str, tuple[str, str]] = {
    **REST_MESSAGES,  # bad_json, body_too_large, invalid_field, internal
    "auth_required": ("请先登录（缺少令牌）。", "Please sign in first (no token)."),
    "bad_token": ("登录已失效，请重新登录。", "Your sign-in is not valid; please sign in again."),
    "reminder_not_found": ("找不到这个提醒。", "No such reminder."),
    "not_your_reminder": ("这个提醒不是您的。", "This reminder is not yours."),
    "nothing_to_ack": ("这个提醒还没有需要确认的提醒。", "This reminder has nothing to acknowledge yet."),
    "nothing_to_snooze": (
        "这个提醒还没有响过（或已确认），不能稍后再提醒。",
        "This reminder has not gone off (or was acknowledged); there is nothing to snooze.",
    ),
    "reminder_stopped": ("这个提醒已经停止。", "This reminder has been stopped."),
    "not_ready": ("服务尚未就绪，请稍后再试。", "The service is not ready yet; please try again shortly."),
}


class ReminderApiError(FeatureApiError):
    messages = MESSAGES


class ReminderService:
    def __init__(
        self, store: ReminderStore, notify: NotificationHub | Notify, clock: Callable[[], datetime], tz: str
    ) -> None:
        self.store, self.notify, self.clock, self.tz = store, notify, clock, tz

    def create(self, spec: ReminderSpec) -> dict[str, Any]:
        now = self.clock()
        try:
            schedule = validate(spec, now)
            first_due = first_occurrence(schedule)
        except ReminderError as exc:
            raise ReminderApiError.from_domain(exc) from exc
        view = self.store.get(self.store.create(spec, schedule, first_due, now))
        assert view is not None
        return view

    def create_many(self, specs: list[ReminderSpec]) -> list[dict[str, Any]]:
        """All or nothing: a plan (e.g. one rule per dose time) is checked whole, stored in one go."""
        now = self.clock()
        try:
            checked = [
                (spec, schedule, first_occurrence(schedule))
                for spec in specs
                for schedule in [validate(spec, now)]
            ]
        except ReminderError as exc:
            raise ReminderApiError.from_domain(exc) from exc
        views = [self.store.get(reminder_id) for reminder_id in self.store.create_many(checked, now)]
        return [view for view in views if view is not None]

    def owned(self, patient_id: str, reminder_id: str) -> dict[str, Any]:
        view = self.store.get(reminder_id)
        if view is None:
            raise ReminderApiError(404, "reminder_not_found")
        if view["patient_id"] != patient_id:
            raise ReminderApiError(403, "not_your_reminder")
        return view

    def list(self, patient_id: str) -> list[dict[str, Any]]:
        return self.store.list_for(patient_id)

    def ack(self, patient_id: str, reminder_id: str) -> dict[str, Any]:
        self.owned(patient_id, reminder_id)
        done = self.store.ack(reminder_id, self.clock())
        if done is None:
            raise ReminderApiError(409, "nothing_to_ack")
        if done["notification_id"] and isinstance(self.notify, NotificationHub):
            self.notify.ack(patient_id, [done["notification_id"]])  # seen, so not pushed again
        return {"reminder_id": reminder_id, "acked_due_at": done["due_at"]}

    def snooze(self, patient_id: str, reminder_id: str, minutes: int) -> dict[str, Any]:
        view = self.owned(patient_id, reminder_id)
        if view["status"] == "stopped":
            raise ReminderApiError(409, "reminder_stopped")
        until = self.clock() + timedelta(minutes=minutes)
        done = self.store.snooze(reminder_id, until)
        if done is None:
            raise ReminderApiError(409, "nothing_to_snooze")
        if done["notification_id"] and isinstance(self.notify, NotificationHub):
            self.notify.ack(patient_id, [done["notification_id"]])
        return {
            "reminder_id": reminder_id,
            "due_at": done["due_at"],
            "fire_at": until.astimezone(zone(view["tz"])).isoformat(),
        }

    def stop(self, patient_id: str, reminder_id: str) -> dict[str, Any]:
        self.owned(patient_id, reminder_id)
        cancelled = self.store.stop(reminder_id, self.clock())
        return {"reminder_id": reminder_id, "status": "stopped", "cancelled_occurrences": cancelled}

    def ical(self, patient_id: str, lang: str | None) -> str:
        items = []
        for view in self.store.list_for(patient_id, include_ended=False):
            spec = ReminderSpec.model_validate(view["spec"])
            schedule = Schedule(first_at=parse_iso(view["first_at"]), rrule=view["rrule"], tz=view["tz"])
            body = (spec.body_zh if lang == "zh" else spec.body_en) or spec.body_zh or spec.body_en
            items.append((view["reminder_id"], schedule, spec.title(lang), body))
        return to_ical(items, tz=self.tz, stamp=self.clock())


class ReminderRuntime:
    def __init__(
        self,
        settings: Settings,
        notify: NotificationHub | Notify | None = None,
        *,
        db_path: Path | None = None,
    ) -> None:
        self.settings = settings
        self.db_path = db_path or settings.data_dir / "reminders.sqlite3"
        self.clock: Callable[[], datetime] = utc_now
        self.notify = notify
        self.poll_s = settings.reminder_poll_s
        self._own_hub: NotificationHub | None = None
        self.store: ReminderStore | None = None
        self.scheduler: ReminderScheduler | None = None
        self._service: ReminderService | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def service(self) -> ReminderService:
        if self._service is None:
            raise ReminderApiError(503, "not_ready")
        return self._service

    async def start(self) -> None:
        if self.notify is None:
            self._own_hub = NotificationHub(self.db_path, clock=lambda: self.clock(), poll_s=self.poll_s)
            await self._own_hub.start()
            self.notify = self._own_hub
        self.store = ReminderStore(self.db_path)
        clock = lambda: self.clock()  # noqa: E731  (reads self.clock at each call: tests swap it)
        self.scheduler = ReminderScheduler(self.store, self.notify, clock=clock)
        self._service = ReminderService(self.store, self.notify, clock, self.settings.timezone)
        self._task = asyncio.create_task(self._run(), name="reminder-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.scheduler is not None:  # a tick still running in its thread finishes first
            await asyncio.to_thread(self.scheduler.wait_idle)
        self._service = None
        if self.store is not None:
            self.store.close()
            self.store = None
        if self._own_hub is not None:
            await self._own_hub.stop()
            self._own_hub.close()
            self._own_hub = None
            self.notify = None

    async def tick(self) -> int:
        """One scheduler pass now; returns how many occurrences fired."""
        assert self.scheduler is not None, "start() first"
        return len(await asyncio.to_thread(self.scheduler.tick))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.tick()
            except Exception:  # a locked database or a bad row must not end reminders for good
                log.exception("reminder scheduler tick failed")
