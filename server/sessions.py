"""Live conversation sessions shared by websocket connections, backed by the SQLite store.

Two connections on one session id (a reconnect that overlaps the old socket, two tabs) share the
same ConversationSession object and take turns through its lock, so no update is lost. A session
leaves memory when its last connection closes; its state is already in the store.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field

from pydantic import ValidationError

from assistant.session import ConversationSession
from server.store import SessionStore
from tools.triage_models import Lang

log = logging.getLogger(__name__)

_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass
class LiveSession:
    session: ConversationSession
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one turn at a time
    users: int = 0

    @property
    def session_id(self) -> str:
        return self.session.session_id


class SessionManager:
    """All methods run on the event loop thread; none awaits, so they need no lock."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store
        self._live: dict[str, LiveSession] = {}

    @property
    def active(self) -> int:
        return len(self._live)

    def create(self, lang: Lang | None) -> LiveSession:
        session = ConversationSession(lang=lang)
        self.store.save_session(session.session_id, session.to_dict())
        return self._hold(LiveSession(session))

    def resume(self, session_id: str) -> LiveSession | None:
        """The live or stored session with this id; None when unknown (or unreadable)."""
        if not _SESSION_ID.match(session_id):
            return None
        live = self._live.get(session_id)
        if live is not None:
            return self._hold(live)
        state = self.store.load_session(session_id)
        if state is None:
            return None
        try:
            session = ConversationSession.from_dict(state)
        except ValidationError:
            log.warning("stored session %s is unreadable (older format?); starting afresh", session_id)
            return None
        return self._hold(LiveSession(session))

    def _hold(self, live: LiveSession) -> LiveSession:
        live.users += 1
        self._live[live.session_id] = live
        return live

    def release(self, live: LiveSession) -> None:
        live.users -= 1
        if live.users <= 0:
            self._live.pop(live.session_id, None)
