"""What the app lifespan starts and stops for booking: the clinic directory, the database (SQLite in
data_dir by default, PostgreSQL when settings.booking_db_url says so) and the service. Tests may
replace `clock` (read at every call) and `notify` before or after start."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from assistant.settings import Settings
from server.booking.service import BookingService, Directory, Notify, utc_now

log = logging.getLogger(__name__)


class BookingRuntime:
    def __init__(
        self,
        settings: Settings,
        notify: Notify | None = None,
        *,
        directory: Directory | None = None,
        db_url: str | None = None,
        warm_up: bool = True,
        report_poll_s: float | None = 15.0,
    ) -> None:
        self.settings = settings
        self.notify = notify
        self.clock: Callable[[], datetime] = utc_now
        self.default_clinic_id: str = getattr(settings, "default_clinic_id", "demo-general-hospital")
        self._directory = directory
        self._db_url = db_url
        self._warm_up = warm_up
        self._warming: asyncio.Task[None] | None = None
        self.report_poll_s = report_poll_s
        self._polling: asyncio.Task[None] | None = None
        self._service: BookingService | None = None

    @property
    def db_url(self) -> str:
        configured = self._db_url or getattr(self.settings, "booking_db_url", None)
        return configured or str(self.settings.data_dir / "booking.sqlite3")

    @property
    def service(self) -> BookingService:
        if self._service is None:
            from server.booking.errors import BookingError

            raise BookingError(503, "busy")
        return self._service

    def _push(self, patient_id: str, kind: str, payload: dict[str, Any]) -> None:
        if self.notify is not None:
            self.notify(patient_id, kind, payload)

    def _open(self) -> BookingService:
        directory = self._directory
        if directory is None:
            from tools.booking.catalogue import load_directory

            directory = load_directory(getattr(self.settings, "clinics_dir", None))
        return BookingService(
            self.db_url,
            directory,
            notify=self._push,
            clock=lambda: self.clock(),
            tz=getattr(self.settings, "timezone", "Asia/Shanghai"),
        )

    async def start(self) -> None:
        self._service = await asyncio.to_thread(self._open)
        if self._warm_up:
            # Materialise the open days in the background; requests meanwhile sync lazily.
            self._warming = asyncio.create_task(asyncio.to_thread(self._warm))
        if self.report_poll_s:
            self._polling = asyncio.create_task(self._poll_reports(self.report_poll_s))

    async def _poll_reports(self, every_s: float) -> None:
        """Announces exam reports as they become ready (report_ready with a follow-up offer)."""
        while True:
            await asyncio.sleep(every_s)
            service = self._service
            if service is None:
                return
            try:
                await asyncio.to_thread(service.due_reports)
            except Exception:  # keep polling; one bad row must not stop the announcements
                log.exception("announcing ready exam reports failed")

    def _warm(self) -> None:
        try:
            assert self._service is not None
            self._service.warm_up()
        except Exception:  # lazy materialisation still works; a bad day surfaces per request
            log.exception("materialising booking slots failed")

    async def stop(self) -> None:
        if self._polling is not None:
            self._polling.cancel()
            await asyncio.gather(self._polling, return_exceptions=True)
            self._polling = None
        if self._warming is not None:
            await asyncio.gather(self._warming, return_exceptions=True)
            self._warming = None
        if self._service is not None:
            service, self._service = self._service, None
            await asyncio.to_thread(service.close)
