"""What the app lifespan starts and stops for the handoff feature: the flag/follow-up store, and a
reader of the chat session store when the app's Runtime does not lend its own."""

from __future__ import annotations

import asyncio
import threading

from assistant.settings import Settings
from server.handoff.store import HandoffStore
from server.store import SessionStore

try:  # the reminders helper's Notify type; a plain callable works the same
    from server.notify import Notify
except ImportError:  # pragma: no cover
    from collections.abc import Callable
    from typing import Any

    Notify = Callable[[str, str, dict[str, Any]], None]  # type: ignore[misc]


class HandoffRuntime:
    def __init__(self, settings: Settings, notify: Notify | None = None) -> None:
        self.settings = settings
        self.notify = notify
        self.db_path = settings.data_dir / "handoff.sqlite3"
        self.store: HandoffStore | None = None
        self._chat_store: SessionStore | None = None
        self._chat_store_lock = threading.Lock()  # opened lazily from request threads
        # One follow-up answer at a time: load -> answer -> save must not interleave (lost update).
        self.answer_lock = asyncio.Lock()

    async def start(self) -> None:
        self.store = HandoffStore(self.db_path)

    async def stop(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        if self._chat_store is not None:
            self._chat_store.close()
            self._chat_store = None

    def chat_store(self) -> SessionStore:
        """The chat sessions (server/store.py) in settings.db_path, opened on first use."""
        with self._chat_store_lock:
            if self._chat_store is None:
                self._chat_store = SessionStore(self.settings.db_path)
            return self._chat_store
