"""Websocket /ws/chat: protocol "daozhen.chat.v1" (see server/protocol.py and server/asyncapi.yaml).

Per connection three tasks: the reader (checks every frame: rate, type, size, JSON, schema, and
answers pings at once), the worker (runs hello/locale/turns in arrival order) and the heartbeat.
When the client goes away the reader returns, the current turn's cancel event is set, the worker
and heartbeat are cancelled and awaited, the session is released: nothing keeps running.

Every turn ends with exactly one terminal message for its message_id: "done" or "error".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, WebSocket

from server.connection import origin_allowed
from server.errors import error_message
from server.protocol import (
    PING,
    PONG,
    PROTOCOL,
    Answer,
    Hello,
    Locale,
    Ping,
    Pong,
    ProtocolError,
    UserText,
    answer_as_text,
    card_message,
    done_message,
    error_event,
    parse_client_message,
    question_message,
    session_message,
    token_message,
)
from server.rate_limit import TokenBucket
from server.runtime import Runtime
from server.sessions import LiveSession
from server.store import Decision
from tools.triage_models import Lang, MissingFact

log = logging.getLogger(__name__)

router = APIRouter()

MAX_PENDING_JOBS = 4  # messages waiting behind a running turn; more gets "busy"
MAX_REFUSED_IN_ROW = 50  # a client that keeps flooding after this many refusals is disconnected
HISTORY_LINES = 100  # transcript lines sent back on resume
CLOSE_TIMEOUT_S = 2.0  # how long a cancelled chat service may take to clean up


class ConnectionGone(Exception):
    """The client is gone; stop whatever this connection was doing."""


@dataclass
class _Job:
    message: Hello | UserText | Answer | Locale
    received: float  # loop time the frame arrived (card latency is measured from here)


@router.websocket("/ws/chat")
async def chat_socket(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    if not origin_allowed(websocket.headers):
        await websocket.close(code=1008)
        return
    await websocket.accept()
    await ChatConnection(websocket, runtime).run()


class ChatConnection:
    def __init__(self, websocket: WebSocket, runtime: Runtime) -> None:
        self.ws = websocket
        self.rt = runtime
        self.settings = runtime.settings
        self.metrics = runtime.metrics
        assert runtime.sessions is not None, "the app lifespan opens the session store"
        self.sessions = runtime.sessions
        self.bucket = TokenBucket.per_minute(self.settings.ws_rate_per_minute)
        self.jobs: asyncio.Queue[_Job] = asyncio.Queue(maxsize=MAX_PENDING_JOBS)
        self.send_lock = asyncio.Lock()
        self.live: LiveSession | None = None
        self.lang: Lang | None = None
        self.closed = False
        self.turn_cancel: asyncio.Event | None = None
        self.refused_in_row = 0

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        self.metrics.ws_connections.inc()
        self.rt.open_connections += 1
        worker = asyncio.create_task(self._work(), name="ws-chat-worker")
        heartbeat = asyncio.create_task(self._heartbeat(), name="ws-chat-heartbeat")
        try:
            await self._read()
        finally:
            # Synchronous clean-up first: when the server itself is shutting down, this task is
            # being cancelled and every await below may be interrupted.
            self.closed = True
            if self.turn_cancel is not None:
                self.turn_cancel.set()
            worker.cancel()
            heartbeat.cancel()
            if self.live is not None:
                self.sessions.release(self.live)
                self.live = None
            self.metrics.ws_connections.dec()
            self.rt.open_connections -= 1
            await asyncio.gather(worker, heartbeat, return_exceptions=True)

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            frame = await self.ws.receive()
            if frame["type"] == "websocket.disconnect":
                return
            if frame["type"] != "websocket.receive":
                continue
            try:
                await self._on_frame(frame.get("text"), frame.get("bytes"), loop.time())
            except ConnectionGone:
                return
            if self.refused_in_row >= MAX_REFUSED_IN_ROW:
                with contextlib.suppress(Exception):
                    await self.ws.close(code=1008, reason="rate limit exceeded")
                return

    async def _heartbeat(self) -> None:
        with contextlib.suppress(ConnectionGone):
            while True:
                await asyncio.sleep(self.settings.ws_heartbeat_s)
                await self._send(PING)

    # ------------------------------------------------------------------ reading frames

    async def _on_frame(self, text: str | None, data: bytes | None, received: float) -> None:
        if not self.bucket.take():
            self.refused_in_row += 1
            self.metrics.ws_messages.inc(direction="in", type="refused")
            await self._error("rate_limited")
            return
        self.refused_in_row = 0
        if text is None:
            self.metrics.ws_messages.inc(direction="in", type="binary")
            await self._error("binary_not_supported")
            return
        limit = self.settings.ws_max_message_bytes
        size = len(text.encode("utf-8")) if len(text) * 4 > limit else len(text)
        if size > limit:
            self.metrics.ws_messages.inc(direction="in", type="too_large")
            await self._error("too_large", size=size, limit=limit)
            return
        try:
            message = parse_client_message(text)
        except ProtocolError as exc:
            self.metrics.ws_messages.inc(direction="in", type="invalid")
            await self._error(exc.code, **exc.params)
            return
        self.metrics.ws_messages.inc(direction="in", type=message.type)
        if isinstance(message, Ping):
            await self._send(PONG)
        elif isinstance(message, Pong):
            pass  # the client answering our heartbeat
        elif isinstance(message, UserText) and not message.text.strip():
            await self._error("empty_text", client_msg_id=message.client_msg_id)
        else:
            try:
                self.jobs.put_nowait(_Job(message, received))
            except asyncio.QueueFull:
                await self._error("busy", client_msg_id=getattr(message, "client_msg_id", None))

    # ------------------------------------------------------------------ sending

    async def _send(self, message: dict[str, Any]) -> None:
        if self.closed:
            raise ConnectionGone
        async with self.send_lock:
            try:
                await self.ws.send_text(json.dumps(message, ensure_ascii=False))
            except Exception as exc:  # the socket closed under us (disconnect, shutdown)
                self.closed = True
                raise ConnectionGone from exc
        self.metrics.ws_messages.inc(direction="out", type=message["type"])

    async def _error(self, code: str, **params: Any) -> None:
        self.metrics.errors.inc(code=code)
        await self._send(error_event(code, self._lang(), **params))

    def _lang(self) -> Lang | None:
        if self.live is not None and self.live.session.lang is not None:
            return self.live.session.lang
        return self.lang

    # ------------------------------------------------------------------ jobs, in order

    async def _work(self) -> None:
        while True:
            job = await self.jobs.get()
            try:
                await self._handle(job)
            except ConnectionGone:
                return
            except Exception:
                log.exception("chat job failed")
                try:
                    await self._error("internal")
                except ConnectionGone:
                    return

    async def _handle(self, job: _Job) -> None:
        message = job.message
        if isinstance(message, Hello):
            await self._hello(message)
        elif isinstance(message, Locale):
            await self._locale(message)
        elif isinstance(message, UserText):
            await self._turn(message.text, message.text, message.client_msg_id, job.received)
        else:
            await self._answer(message, job.received)

    async def _hello(self, hello: Hello) -> None:
        if hello.protocol is not None and hello.protocol != PROTOCOL:
            await self._error("unsupported_protocol", got=hello.protocol[:40], expected=PROTOCOL)
            return
        if hello.lang is not None:
            self.lang = hello.lang
        live: LiveSession | None = None
        if hello.session_id:
            live = self.sessions.resume(hello.session_id)
            if live is None:
                await self._error("unknown_session")
        resumed = live is not None
        if live is None:
            live = self.sessions.create(self.lang)
        if self.live is not None:
            self.sessions.release(self.live)
        self.live = live
        session = live.session
        if resumed and hello.lang is not None and session.lang != hello.lang:
            async with live.lock:
                session.set_lang(hello.lang)
                self._save(live)
        history = (
            [
                {"role": m.role, "text": m.text}
                for m in self.sessions.store.messages(session.session_id, HISTORY_LINES)
            ]
            if resumed
            else []
        )
        await self._send(
            session_message(
                session.session_id,
                session.lang or self.lang,
                resumed=resumed,
                history=history,
                pending_question=_current_question(live),
            )
        )

    async def _locale(self, locale: Locale) -> None:
        self.lang = locale.lang
        question = None
        if self.live is not None:
            async with self.live.lock:
                self.live.session.set_lang(locale.lang)
                self._save(self.live)
            question = _current_question(self.live)
        await self._send(
            {
                "type": "locale",
                "lang": locale.lang,
                "pending_question": question.model_dump(mode="json") if question else None,
            }
        )

    async def _ensure_session(self) -> LiveSession:
        if self.live is None:
            self.live = self.sessions.create(self.lang)
            await self._send(session_message(self.live.session_id, self.lang, resumed=False))
        return self.live

    async def _answer(self, answer: Answer, received: float) -> None:
        live = await self._ensure_session()
        question = _current_question(live)
        if question is None or question.id != answer.question_id:
            await self._error("stale_question", client_msg_id=answer.client_msg_id)
            return
        try:
            session_text, shown_text = answer_as_text(
                question, answer.value, live.session.lang or self.lang or "zh"
            )
        except ProtocolError as exc:
            await self._error(exc.code, client_msg_id=answer.client_msg_id, **exc.params)
            return
        await self._turn(session_text, shown_text, answer.client_msg_id, received)

    # ------------------------------------------------------------------ one turn

    async def _turn(
        self, session_text: str, shown_text: str, client_msg_id: str | None, received: float
    ) -> None:
        live = await self._ensure_session()
        async with live.lock:
            await self._stream_turn(live, session_text, shown_text, client_msg_id, received)

    async def _stream_turn(
        self,
        live: LiveSession,
        session_text: str,
        shown_text: str,
        client_msg_id: str | None,
        received: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        message_id = uuid.uuid4().hex[:16]
        cancel = asyncio.Event()
        self.turn_cancel = cancel
        events = self.rt.turn_service().turn(live.session, session_text, cancel=cancel)
        pieces: list[str] = []
        final_text: str | None = None
        error_line: str | None = None
        llm_used = card_sent = ended = False
        done_stats: dict[str, Any] = {}
        outcome = "done"
        first_token_at: float | None = None
        try:
            while True:
                try:
                    async with asyncio.timeout(self.rt.turn_idle_timeout_s):
                        event = await anext(events)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    cancel.set()
                    outcome, ended = "timeout", True
                    error_line = error_message("timeout", self._lang())
                    await self._error("timeout", message_id=message_id, client_msg_id=client_msg_id)
                    break
                kind, data = getattr(event, "type", None), getattr(event, "data", None) or {}
                if kind == "card":
                    card, extra = _card_parts(data)
                    await self._send(card_message(message_id, card, client_msg_id, **extra))
                    if card is not None:
                        card_sent = True
                        self.metrics.card_latency.observe(loop.time() - received)
                elif kind == "token":
                    piece = str(data.get("text", ""))
                    if piece:
                        first_token_at = first_token_at or loop.time()
                        pieces.append(piece)
                        await self._send(token_message(message_id, piece))
                elif kind == "question":
                    await self._send(question_message(message_id, data))
                elif kind == "done":
                    final_text = str(data.get("text") or "".join(pieces))
                    llm_used = bool(data.get("llm_used", False))
                    done_stats = {k: data[k] for k in ("tokens", "generation_s") if k in data}
                    ended = True
                    await self._send(done_message(message_id, final_text, llm_used, client_msg_id))
                    break
                elif kind == "error":
                    code = str(data.get("code") or "internal")
                    outcome, ended = "error", True
                    error_line = str(data.get("message") or error_message(code, self._lang()))
                    self.metrics.errors.inc(code=code)
                    await self._send(
                        error_event(
                            code,
                            self._lang(),
                            message=error_line,
                            message_id=message_id,
                            client_msg_id=client_msg_id,
                        )
                    )
                    break
                # other event types ("session", future ones) are not for the client
        except (asyncio.CancelledError, ConnectionGone):
            cancel.set()
            outcome = "cancelled"
            raise
        except Exception:
            log.exception("chat service failed mid-turn")
            cancel.set()
            code = "llm_failed" if card_sent else "internal"
            outcome, ended = code, True
            error_line = error_message(code, self._lang())
            await self._error(code, message_id=message_id, client_msg_id=client_msg_id)
        finally:
            # Record before awaiting anything: a cancelled task may not get past the next await.
            self.turn_cancel = None
            reply = final_text if final_text is not None else "".join(pieces)
            self._record(live, shown_text, reply, error_line, card_sent)
            self._observe(outcome, received, first_token_at, len(pieces), llm_used, done_stats, loop.time())
            await _close_quietly(events)
        if not ended:  # the service stopped without "done": close the turn for the client
            await self._send(done_message(message_id, "".join(pieces), llm_used, client_msg_id))

    def _observe(
        self,
        outcome: str,
        received: float,
        first_token_at: float | None,
        pieces: int,
        llm_used: bool,
        done_stats: dict[str, Any],
        now: float,
    ) -> None:
        self.metrics.turns.inc(outcome=outcome)
        if outcome != "done":
            return
        self.metrics.generation.observe(now - received)
        if not llm_used:
            return  # templated text streams at memory speed: not a model speed
        # The service may report exact model figures in "done" ({"tokens", "generation_s"});
        # otherwise stream pieces over the streaming time stand in for them.
        tokens = done_stats.get("tokens", pieces)
        seconds = done_stats.get("generation_s", now - first_token_at if first_token_at else 0.0)
        if (
            isinstance(tokens, int | float)
            and isinstance(seconds, int | float)
            and tokens > 1
            and seconds > 0
        ):
            self.metrics.tokens_per_second.set(tokens / seconds)

    # ------------------------------------------------------------------ persistence

    def _record(
        self, live: LiveSession, user_text: str, reply: str, error_line: str | None, card_sent: bool
    ) -> None:
        session = live.session
        lines = [("user", user_text)]
        if reply:
            lines.append(("assistant", reply))
        if error_line:
            lines.append(("error", error_line))
        # The decision the user saw is the card; it rests on the session's latest engine result.
        decision = Decision(session.last_result, user_text) if card_sent and session.last_result else None
        try:
            self.sessions.store.record_turn(session.session_id, session.to_dict(), lines, decision)
        except Exception:  # a full disk must not end the conversation
            log.exception("persisting turn of session %s failed", session.session_id)

    def _save(self, live: LiveSession) -> None:
        try:
            self.sessions.store.save_session(live.session_id, live.session.to_dict())
        except Exception:
            log.exception("saving session %s failed", live.session_id)


def _card_parts(data: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(card, extra fields) from a "card" event: {"card": {...} | None, "citations"?, "updated"?}
    as the agent pipeline sends it, or the card's fields directly."""
    if "card" not in data:
        return data, {}
    card = data["card"] if isinstance(data["card"], dict) else None
    extra = {k: data[k] for k in ("citations", "updated", "desk") if k in data}
    return card, extra


def _current_question(live: LiveSession) -> MissingFact | None:
    """The question the session waits for: a fact to confirm first, else the pending question."""
    session = live.session
    if session.pending_conflicts:
        # The same question (id "confirm.<field>", kind "choice") the session asked in its reply.
        return session._conflict_question(session.pending_conflicts[0])
    return session.pending_question


async def _close_quietly(events: Any) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is None:
        return
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await aclose()
    except Exception:
        log.warning("chat service did not close its turn cleanly", exc_info=True)
