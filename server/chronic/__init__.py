"""Chronic-care follow-up on the server (hypertension, type 2 diabetes): registration, readings with
units, and the clinic's overdue / worsening / urgent worklist.

    store.py    SQLite (chronic.sqlite3 in settings.data_dir)
    service.py  the rules: parsing and classifying readings, ownership, the worklist
    routes.py   REST /api/chronic/... (clinicians via the fever accounts)

The domain rules are pure and live in tools/chronic.py and tools/readings.py."""

from __future__ import annotations

from assistant.settings import Settings
from server.chronic.service import ChronicService
from server.chronic.store import ChronicStore
from server.notify import Notify


class ChronicRuntime:
    """What the app lifespan starts and stops; routes read it from request.app.state.chronic."""

    def __init__(self, settings: Settings, notify: Notify | None = None) -> None:
        self.settings = settings
        self.notify = notify  # not used yet: urgent readings go to the clinician's list, not a push
        self.store: ChronicStore | None = None
        self._service: ChronicService | None = None

    @property
    def service(self) -> ChronicService:
        assert self._service is not None, "the app lifespan starts the chronic runtime"
        return self._service

    async def start(self) -> None:
        self.store = ChronicStore(self.settings.data_dir / "chronic.sqlite3")
        self._service = ChronicService(self.store, self.settings.tz)

    async def stop(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
            self._service = None


__all__ = ["ChronicRuntime", "ChronicService", "ChronicStore"]
