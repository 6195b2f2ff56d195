"""What the app lifespan starts and stops for the fever feature: the store, the service, the push
hub and the reminder loop. Tests may replace `clock` and change `config` (e.g. reminder_check_s)
on app.state.fever before the app starts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from assistant.settings import Settings
from server.fever.reminders import ReminderLoop
from server.fever.service import FeverConfig, FeverService, utc_now
from server.fever.store import FeverStore
from server.fever.ws import FeverHub


def config_from_settings(settings: Settings) -> FeverConfig:
    """Clinic code and emergency text come from Settings (DAOZHEN_CLINIC_CODE,
    DAOZHEN_FEVER_NEAREST_EMERGENCY); unset keeps the demo defaults."""
    config = FeverConfig(db_path=settings.data_dir / "fever.sqlite3")
    if settings.clinic_code:
        config.clinic_code = settings.clinic_code
    emergency = settings.fever_nearest_emergency
    if emergency:
        config.nearest_emergency = emergency
    return config


class FeverRuntime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = config_from_settings(settings)
        self.clock: Callable[[], datetime] = utc_now
        self.hub = FeverHub()
        self.store: FeverStore | None = None
        self._service: FeverService | None = None
        self.reminders = ReminderLoop(self)

    @property
    def service(self) -> FeverService:
        assert self._service is not None, "the app lifespan starts the fever runtime"
        return self._service

    async def start(self) -> None:
        self.store = FeverStore(self.config.db_path)
        # The lambda reads self.clock at every call, so a clock swapped in later is used.
        self._service = FeverService(self.store, self.config, clock=lambda: self.clock())
        self.reminders.start()

    async def stop(self) -> None:
        await self.reminders.stop()
        if self.store is not None:
            self.store.close()
            self.store = None
