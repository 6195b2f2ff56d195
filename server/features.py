"""The visit features beside the chat: patients, push notifications, booking, visit escort,
navigation, tiered care, kiosk, reminders, chronic care and clinician handoff.

Each feature is a runtime (start/stop) on app.state.<name> plus a router; they share one
notification hub (server/notify.py) for pushes to patients. The chat's service desk
(assistant/visit_flow.py) is built on the booking, escort, reminder and patient runtimes once they
run.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI

from assistant.settings import Settings
from server import notify, patients
from server.booking.routes import router as booking_router
from server.booking.runtime import BookingRuntime
from server.chronic import ChronicRuntime
from server.chronic.routes import router as chronic_router
from server.escort import EscortRuntime
from server.escort.routes import router as escort_router
from server.handoff import HandoffRuntime
from server.handoff import router as handoff_router
from server.kiosk import KioskRuntime
from server.kiosk import router as kiosk_router
from server.navigation import NavigationRuntime
from server.navigation.routes import router as navigation_router
from server.reminders import ReminderRuntime
from server.reminders import router as reminders_router
from server.tiered import TieredRuntime
from server.tiered.routes import router as tiered_router

log = logging.getLogger(__name__)

# app.state name -> (runtime class, router); started in this order, stopped in reverse.
FEATURES: list[tuple[str, Any, Any]] = [
    ("booking", BookingRuntime, booking_router),
    ("escort", EscortRuntime, escort_router),
    ("navigation", NavigationRuntime, navigation_router),
    ("tiered", TieredRuntime, tiered_router),
    ("kiosk", KioskRuntime, kiosk_router),
    ("reminders", ReminderRuntime, reminders_router),
    ("chronic", ChronicRuntime, chronic_router),
    ("handoff", HandoffRuntime, handoff_router),
]


class Features:
    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.hub = notify.NotificationHub.from_settings(settings)
        self.patients = patients.PatientDirectory(settings.data_dir / "patients.sqlite3")
        app.state.notify = self.hub
        app.state.patients = self.patients
        app.include_router(patients.router)
        app.include_router(notify.router)
        self.runtimes: dict[str, Any] = {}
        for name, runtime_class, router in FEATURES:
            runtime = runtime_class(settings, self.hub)
            setattr(app.state, name, runtime)
            self.runtimes[name] = runtime
            app.include_router(router)

    async def start(self) -> None:
        await self.hub.start()
        for runtime in self.runtimes.values():
            await runtime.start()

    async def stop(self) -> None:
        for name, runtime in reversed(self.runtimes.items()):
            try:
                await runtime.stop()
            except Exception:  # stop the others regardless
                log.exception("stopping %s failed", name)
        await self.hub.stop()
        self.hub.close()
        self.patients.close()

    def service_desk(self) -> Any:
        """The chat's desk over the running booking, escort and reminder services."""
        from assistant.visit_flow import ServiceDesk

        return ServiceDesk(
            clinic_id=self.settings.default_clinic_id,
            tz=self.settings.tz,
            booking=self.runtimes["booking"].service,
            patients=self.patients,
            escort=self.runtimes["escort"].service,
            reminders=self.runtimes["reminders"].service,
        )
