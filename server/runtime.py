"""Everything one running app holds: settings, store, sessions, metrics, the chat service, the
knowledge base and the model — and the start-up that loads the slow parts in the background.

The server accepts chats from the first second: until the knowledge base and the model are
loaded, the rules-only service answers (cards and templated replies). When loading ends, the
agent pipeline (assistant.agent.pipeline.ChatService) takes over if it is installed and builds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from assistant.settings import Settings
from server.metrics import ServerMetrics
from server.rules_chat import RulesOnlyChatService, warm_up_rules
from server.sessions import SessionManager
from server.store import SessionStore

log = logging.getLogger(__name__)

KnowledgeLoader = Callable[[Settings], Any]


def open_knowledge(settings: Settings) -> Any:
    from knowledge.api import open_knowledge_base

    return open_knowledge_base(settings)


def make_llm_or_none(settings: Settings) -> Any | None:
    """The configured model backend; None when the LLM layer is not installed (rules-only)."""
    try:
        from assistant.llm.factory import make_llm
    except ImportError:
        log.info("assistant.llm is not installed: rules-only mode")
        return None
    return make_llm(settings)


def make_agent_service(settings: Settings, llm: Any, kb: Any) -> Any | None:
    """The agent pipeline's ChatService; None when it is not installed or cannot be built."""
    try:
        from assistant.agent.pipeline import ChatService
    except ImportError:
        log.info("assistant.agent.pipeline is not installed: rules-only chat")
        return None
    try:
        return ChatService(settings, llm, kb)
    except Exception:
        log.exception("building the agent chat service failed: rules-only chat")
        return None


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        chat_service: Any | None = None,
        llm: Any | None = None,
        knowledge_loader: KnowledgeLoader | None = None,
        turn_idle_timeout_s: float | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = ServerMetrics()
        self.injected_service = chat_service is not None
        self.chat_service: Any = chat_service or RulesOnlyChatService()
        self.chat_mode = "injected" if chat_service is not None else "rules"
        self.chat_ready = chat_service is not None
        self.llm = llm
        self.llm_loaded = llm is not None or chat_service is not None
        self.knowledge: Any | None = None
        self.knowledge_error: str | None = None
        self.knowledge_loader = knowledge_loader or open_knowledge
        # The server gives up on a turn when the service yields nothing for this long. The
        # service's own model timeout (llm_timeout_s) should fire first and fall back to rules.
        self.turn_idle_timeout_s = turn_idle_timeout_s or settings.llm_timeout_s + 10.0
        self.store: SessionStore | None = None
        self.sessions: SessionManager | None = None
        self.open_connections = 0
        self._loading: asyncio.Task[None] | None = None
        # The service desk (booking, routes, next steps) in front of the chat service; set by the app.
        self.desk: Any | None = None

    # ---- lifecycle

    async def start(self) -> None:
        self.store = SessionStore(self.settings.db_path)
        self.sessions = SessionManager(self.store)
        sessions = self.sessions
        self.metrics.active_sessions.source = lambda: sessions.active
        # The chat service may keep its own count of generations waiting for the model.
        self.metrics.queue_depth.source = lambda: getattr(self.chat_service, "queue_depth", 0)
        self._loading = asyncio.create_task(self._load(), name="daozhen-startup")

    def turn_service(self) -> Any:
        """The service a chat turn goes to: the desk wrapper when a desk is set, else the chat service."""
        if self.desk is None:
            return self.chat_service
        from assistant.desk_chat import DeskChatService

        return DeskChatService(self.chat_service, self.desk)

    async def wait_loaded(self) -> None:
        if self._loading is not None:
            await asyncio.shield(self._loading)

    async def stop(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
            await asyncio.gather(self._loading, return_exceptions=True)
        close = getattr(self.chat_service, "close", None)  # e.g. the agent's model thread
        if callable(close):
            try:
                close()
            except Exception:
                log.exception("closing the chat service failed")
        if self.store is not None:
            self.store.close()

    async def _load(self) -> None:
        await asyncio.gather(self._load_knowledge(), self._load_rules())
        if self.injected_service:
            return
        if self.llm is None:
            try:
                self.llm = await asyncio.to_thread(make_llm_or_none, self.settings)
            except Exception:
                log.exception("loading the language model failed: rules-only mode")
        self.llm_loaded = True
        if self.llm is not None:
            service = await asyncio.to_thread(make_agent_service, self.settings, self.llm, self.knowledge)
            if service is not None:
                self.chat_service, self.chat_mode = service, "agent"
        self.chat_ready = True

    async def _load_rules(self) -> None:
        try:
            await asyncio.to_thread(warm_up_rules)
        except Exception:  # the first real turn reports the problem to its user
            log.exception("warming up the triage rules failed")

    async def _load_knowledge(self) -> None:
        try:
            self.knowledge = await asyncio.to_thread(self.knowledge_loader, self.settings)
        except Exception as exc:
            log.exception("opening the knowledge base failed")
            self.knowledge_error = f"{type(exc).__name__}: {exc}"

    # ---- status

    @property
    def knowledge_version(self) -> str | None:
        return getattr(self.knowledge, "knowledge_version", None) if self.knowledge is not None else None

    def llm_status(self) -> dict[str, Any]:
        llm = self.llm
        if llm is None:
            reason = "loading" if not self.llm_loaded else "no language model: rules-only replies"
            return {"name": "none", "available": False, "reason": reason}
        try:
            available = bool(llm.available())
        except Exception as exc:
            available, reason = False, f"{type(exc).__name__}: {exc}"
        else:
            reason = None if available else getattr(llm, "unavailable_reason", None) or "unavailable"
        return {
            "name": str(getattr(llm, "name", type(llm).__name__)),
            "available": available,
            "reason": reason,
        }

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        knowledge_ready = self.knowledge is not None
        ready = knowledge_ready and self.chat_ready
        status = "ready" if ready else ("failed" if self.knowledge_error else "starting")
        return ready, {
            "status": status,
            "knowledge": {
                "ready": knowledge_ready,
                "version": self.knowledge_version,
                "error": self.knowledge_error,
            },
            "llm": self.llm_status(),
            "chat": {
                "ready": self.chat_ready,
                "mode": self.chat_mode,
                "service": type(self.chat_service).__name__,
            },
        }
