"""Reminders (issue 6): medication, re-measure, revisit, exam preparation, chronic check-ups and
follow-up questions, fired by a persistent scheduler and pushed through server.notify.

    from server.reminders import ReminderRuntime, router
    app.state.reminders = ReminderRuntime(settings, hub)   # hub = server.notify.NotificationHub
    app.include_router(router)
"""

from server.reminders.routes import router
from server.reminders.runtime import ReminderApiError, ReminderRuntime, ReminderService

__all__ = ["ReminderApiError", "ReminderRuntime", "ReminderService", "router"]
