"""Websocket /ws/fever?token=... and the hub that pushes fever events to connected people.

Server -> family:    ready, grade, alert (red: at once, with the nearest emergency), reminder, saved, error
Server -> clinician: ready, form (a sent pre-consultation form), callback (new or handled), error
Family -> server:    {"type": "ble", "child_id", "payload_hex", "received_at"?, "site"?}
                     {"type": "reading", "child_id", "value", "unit"?, "site"?, "time"?, "source"?}
                     {"type": "ping"}  (answered with pong; the server sends ping every ws_heartbeat_s)
Each inbound ble/reading is answered with {"type": "saved", "kind", "child_id", "duplicate", "reading",
"client_msg_id"} or {"type": "error", "code", "message", ...}; its grade/alert events follow.

Every connection has an outbox queue and one writer task, so publishing never waits on a slow
client (the hub is called from request handlers and the reminder loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, WebSocket
from pydantic import ValidationError

from server.connection import origin_allowed
from server.fever.errors import FeverError, wrong_role
from server.fever.models import BleIn, ReadingIn
from server.fever.service import Account, Event, fields_error
from server.rate_limit import TokenBucket

if TYPE_CHECKING:
    from server.fever.runtime import FeverRuntime

log = logging.getLogger(__name__)

router = APIRouter()

CLOSE_BAD_TOKEN = 4401


class FeverConnection:
    def __init__(self, websocket: WebSocket, account: Account, queue_size: int) -> None:
        self.ws = websocket
        self.account = account
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=queue_size)
        self.closed = False

    def offer(self, message: dict[str, Any]) -> bool:
        """Queue a message; False when the connection is gone or too far behind (dropped)."""
        if self.closed:
            return False
        try:
            self.outbox.put_nowait(message)
        except asyncio.QueueFull:
            log.warning(
                "fever socket of %s is not reading; dropped a %s", self.account.account_id, message["type"]
            )
            return False
        return True

    async def write(self) -> None:
        while True:
            message = await self.outbox.get()
            try:
                await self.ws.send_text(json.dumps(message, ensure_ascii=False))
            except Exception:  # closed under us
                self.closed = True
                return


class FeverHub:
    def __init__(self) -> None:
        self._by_account: dict[str, set[FeverConnection]] = defaultdict(set)
        self._by_clinic: dict[str, set[FeverConnection]] = defaultdict(set)

    def add(self, conn: FeverConnection) -> None:
        self._by_account[conn.account.account_id].add(conn)
        if conn.account.role == "clinician":
            self._by_clinic[conn.account.clinic_id].add(conn)

    def remove(self, conn: FeverConnection) -> None:
        for index, key in (
            (self._by_account, conn.account.account_id),
            (self._by_clinic, conn.account.clinic_id),
        ):
            members = index.get(key)
            if members is not None:
                members.discard(conn)
                if not members:
                    del index[key]

    def connected(self, account_id: str) -> bool:
        return any(not c.closed for c in self._by_account.get(account_id, ()))

    def publish(self, events: Iterable[Event]) -> int:
        """Queue each event for its audience; returns how many connections it was queued for."""
        delivered = 0
        for event in events:
            index = self._by_account if event.audience == "account" else self._by_clinic
            for conn in list(index.get(event.key, ())):
                delivered += conn.offer(event.message)
        return delivered


def _error(exc: FeverError, **context: Any) -> dict[str, Any]:
    body = exc.body()["error"]
    return {"type": "error", **body, **{k: v for k, v in context.items() if v is not None}}


@router.websocket("/ws/fever")
async def fever_socket(websocket: WebSocket) -> None:
    fever: FeverRuntime = websocket.app.state.fever
    if not origin_allowed(websocket.headers):
        await websocket.close(code=1008)
        return
    await websocket.accept()
    try:
        account = await asyncio.to_thread(fever.service.authenticate, websocket.query_params.get("token"))
    except FeverError as exc:
        # Accept first, then explain: a browser cannot read the reason of a refused handshake.
        with contextlib.suppress(Exception):
            await websocket.send_text(json.dumps(_error(exc), ensure_ascii=False))
            await websocket.close(code=CLOSE_BAD_TOKEN)
        return
    await FeverSocket(websocket, account, fever).run()


class FeverSocket:
    def __init__(self, websocket: WebSocket, account: Account, fever: FeverRuntime) -> None:
        self.ws, self.account, self.fever = websocket, account, fever
        self.conn = FeverConnection(websocket, account, fever.config.ws_queue)
        self.bucket = TokenBucket.per_minute(fever.config.ws_rate_per_minute)

    async def run(self) -> None:
        hub = self.fever.hub
        self.conn.offer({"type": "ready", **self.account.public()})
        hub.add(self.conn)  # no await in between: anything published from now on follows "ready"
        writer = asyncio.create_task(self.conn.write(), name="fever-ws-writer")
        heartbeat = asyncio.create_task(self._heartbeat(), name="fever-ws-heartbeat")
        try:
            await self._read()
        finally:
            self.conn.closed = True
            hub.remove(self.conn)
            writer.cancel()
            heartbeat.cancel()
            await asyncio.gather(writer, heartbeat, return_exceptions=True)

    async def _heartbeat(self) -> None:
        while not self.conn.closed:
            await asyncio.sleep(self.fever.settings.ws_heartbeat_s)
            self.conn.offer({"type": "ping"})

    async def _read(self) -> None:
        while not self.conn.closed:
            frame = await self.ws.receive()
            if frame["type"] == "websocket.disconnect":
                return
            if frame["type"] != "websocket.receive":
                continue
            try:
                await self._on_frame(frame.get("text"))
            except FeverError as exc:
                self.conn.offer(_error(exc))
            except Exception:
                log.exception("fever socket message failed")
                self.conn.offer(_error(FeverError(500, "internal")))

    async def _on_frame(self, text: str | None) -> None:
        if not self.bucket.take():
            raise FeverError(429, "rate_limited")
        limit = self.fever.settings.ws_max_message_bytes
        if text is None or len(text.encode("utf-8")) > limit:
            raise (
                FeverError(413, "too_large", limit=limit) if text is not None else FeverError(400, "bad_json")
            )
        try:
            message = json.loads(text)
        except ValueError as exc:
            raise FeverError(400, "bad_json") from exc
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise FeverError(400, "bad_json")
        kind = message.pop("type")
        if kind == "ping":
            self.conn.offer({"type": "pong"})
        elif kind == "pong":
            pass
        elif kind in ("ble", "reading"):
            await self._entry(kind, message)
        else:
            raise FeverError(400, "unknown_type", type=kind[:40])

    async def _entry(self, kind: str, message: dict[str, Any]) -> None:
        child_id = message.pop("child_id", None)
        client_msg_id = message.pop("client_msg_id", None)
        context = {"child_id": child_id, "client_msg_id": client_msg_id}
        try:
            if self.account.role != "family":
                raise wrong_role("family")
            if not isinstance(child_id, str) or not child_id:
                raise FeverError(422, "invalid_field", field="child_id", detail="required")
            service = self.fever.service
            try:
                if kind == "ble":
                    outcome = await asyncio.to_thread(
                        service.add_ble, self.account, child_id, BleIn.model_validate(message)
                    )
                else:
                    outcome = await asyncio.to_thread(
                        service.add_reading, self.account, child_id, ReadingIn.model_validate(message)
                    )
            except ValidationError as exc:
                raise fields_error(exc) from exc
        except FeverError as exc:
            self.conn.offer(_error(exc, **context))
            return
        data = outcome.data
        self.conn.offer(
            {
                "type": "saved",
                "kind": kind,
                "child_id": child_id,
                "client_msg_id": client_msg_id,
                "duplicate": data["duplicate"],
                "reading": data["reading"],
            }
        )
        self.fever.hub.publish(outcome.events)
