"""Push to a patient: a persistent outbox (SQLite) plus websocket /ws/patient?token=<patient token>.

    Notify = Callable[[str, str, dict[str, Any]], None]     # notify(patient_id, kind, payload)
    hub = NotificationHub.from_settings(settings)           # data_dir/reminders.sqlite3
    hub.publish(patient_id, "reminder", {...}, dedupe_key=None) -> notification id  (hub(...) too)

Wiring (server/app.py): app.state.notify = hub; app.include_router(server.notify.router);
lifespan: await hub.start() (the cross-process poll) ... await hub.stop(); hub.close().
Other features get `hub` (or hub.publish) as their Notify.

publish() is synchronous and thread-safe (request handlers, threads, the reminder loop). It always
writes the outbox row first, then pushes to this process's open sockets of that patient; a patient
who is away gets it when they connect again (to this or any process sharing the database).

Protocol of /ws/patient (notify.v1; AsyncAPI document: server/asyncapi_patient.yaml)
-----------------------------------------------------------------------------------
server -> client
  {"type": "ready", "protocol": "notify.v1", "patient_id"}                 first frame
  {"type": "notification", "id", "seq", "kind", "payload", "created_at", "redelivered"}
        undelivered ones first, oldest first (by seq), then live ones as they happen
  {"type": "acked", "ids": [...], "count"}     answer to an ack (count = newly marked delivered)
  {"type": "ping"} every heartbeat; {"type": "pong"}; {"type": "error", "code", "message"}
client -> server
  {"type": "ack", "id": "<notification id>"} or {"type": "ack", "ids": [...]}
  {"type": "ping"}
Guarantees
  * Never lost: a notification is "delivered" only when the client acks its id. Until then it is
    sent again on the next connection (same id, "redelivered": true).
  * Never shown twice: the server does not send an id twice on one connection; across
    connections (a reconnect before the ack, or a second device) the client must show an id at
    most once — keep the ids already shown (e.g. localStorage) and ack duplicates silently.
  * Two server processes on one database: each process claims undelivered rows of the patients
    connected to it with one atomic UPDATE (claimed_by = this hub, claim_expires_at = now +
    claim_s, only where unclaimed or the claim expired), so a row is pushed by one process at a
    time; a process polls every poll_s for rows another process published. Claims are released
    when the patient's last socket on the process closes, and expire if the process dies.
  * publish(..., dedupe_key=k) inserts at most one row per key (INSERT OR IGNORE on a UNIQUE
    column): a publisher that crashed after publishing and retries does not notify twice.
REST (same bearer token): GET /api/notifications (undelivered, oldest first),
POST /api/notifications/ack {"ids": [...]}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, WebSocket
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from server.connection import bearer_token, origin_allowed, request_lang
from server.rate_limit import TokenBucket
from server.sqlite_base import SqliteStore

log = logging.getLogger(__name__)

PROTOCOL = "notify.v1"
Notify = Callable[[str, str, dict[str, Any]], None]
KINDS = (
    "waitlist_promoted",
    "appointment_cancelled",
    "visit_step",
    "reminder",
    "followup_question",
    "report_ready",
)
CLOSE_BAD_TOKEN = 4401

MESSAGES: dict[str, tuple[str, str]] = {
    "auth_required": ("请先登录（缺少令牌）。", "Please sign in first (no token)."),
    "bad_token": ("登录已失效，请重新登录。", "Your sign-in is not valid; please sign in again."),
    "bad_json": ("消息不是有效的 JSON 对象。", "The message is not a valid JSON object."),
    "bad_message": ("消息格式不正确：{detail}", "The message is malformed: {detail}"),
    "unknown_type": ("不认识的消息类型：{type}", "Unknown message type: {type}"),
    "too_large": ("消息太大（上限 {limit} 字节）。", "The message is too large (limit {limit} bytes)."),
    "rate_limited": ("消息太频繁，请稍等再发。", "Too many messages; please wait a moment."),
    "not_ready": ("服务尚未就绪，请稍后再试。", "The service is not ready yet; please try again shortly."),
}


def message_for(code: str, lang: str | None, **params: Any) -> str:
    zh, en = MESSAGES[code]
    zh, en = zh.format(**params), en.format(**params)
    return zh if lang == "zh" else en if lang == "en" else f"{zh} / {en}"


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """Fixed-width UTC text, so SQL string comparison is time order."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)  # 3.11 reads the trailing Z as UTC


SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id TEXT NOT NULL UNIQUE,
    dedupe_key TEXT UNIQUE,
    patient_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    claimed_by TEXT,
    claim_expires_at TEXT,
    sent_count INTEGER NOT NULL DEFAULT 0,
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS notifications_pending
    ON notifications (patient_id, seq) WHERE delivered_at IS NULL;
"""
_COLUMNS = "seq, notification_id, patient_id, kind, payload, created_at, sent_count"


@dataclass(frozen=True)
class Outgoing:
    patient_id: str
    kind: str
    payload: dict[str, Any]
    dedupe_key: str | None = None


def _message(row: tuple[Any, ...]) -> dict[str, Any]:
    seq, notification_id, _patient, kind, payload, created_at, sent_count = row
    return {
        "type": "notification",
        "id": notification_id,
        "seq": seq,
        "kind": kind,
        "payload": json.loads(payload),
        "created_at": created_at,
        "redelivered": sent_count > 1,
    }


class OutboxStore(SqliteStore):
    def __init__(self, path: Path | str) -> None:
        super().__init__(path, SCHEMA, 1)

    def insert(
        self, items: Sequence[Outgoing], now: datetime, claim: Callable[[str], str | None], claim_s: float
    ) -> list[tuple[str, dict[str, Any] | None]]:
        """One transaction. Returns (notification id, message or None when a dedupe_key already
        existed); rows for patients `claim` names an owner for are inserted claimed by it."""
        out: list[tuple[str, dict[str, Any] | None]] = []
        expires = iso(now + timedelta(seconds=claim_s))
        with self._transaction() as conn:
            for item in items:
                notification_id = uuid.uuid4().hex
                owner = claim(item.patient_id)
                created_at = iso(now)
                row = conn.execute(
                    "INSERT INTO notifications (notification_id, dedupe_key, patient_id, kind, payload,"
                    " created_at, claimed_by, claim_expires_at, sent_count) VALUES (?,?,?,?,?,?,?,?,?)"
                    " ON CONFLICT (dedupe_key) DO NOTHING RETURNING seq",
                    (
                        notification_id,
                        item.dedupe_key,
                        item.patient_id,
                        item.kind,
                        json.dumps(item.payload, ensure_ascii=False, default=str),
                        created_at,
                        owner,
                        expires if owner else None,
                        1 if owner else 0,
                    ),
                ).fetchone()
                if row is None:  # this dedupe key was published before
                    existing = conn.execute(
                        "SELECT notification_id FROM notifications WHERE dedupe_key = ?", (item.dedupe_key,)
                    ).fetchone()
                    out.append((existing[0], None))
                else:
                    message = {
                        "type": "notification",
                        "id": notification_id,
                        "seq": row[0],
                        "kind": item.kind,
                        "payload": item.payload,
                        "created_at": created_at,
                        "redelivered": False,
                    }
                    out.append((notification_id, message))
        return out

    def claim(
        self, patient_id: str, owner: str, now: datetime, claim_s: float, *, include_own: bool
    ) -> list[dict[str, Any]]:
        """Atomically claim the patient's undelivered rows nobody holds or whose claim expired
        (and, include_own, the ones this owner holds: a new socket of an already connected patient)."""
        with self._transaction() as conn:
            rows = conn.execute(
                "UPDATE notifications SET claimed_by = ?, claim_expires_at = ?, sent_count = sent_count + 1"
                " WHERE patient_id = ? AND delivered_at IS NULL"
                " AND (claimed_by IS NULL OR claim_expires_at < ? OR claimed_by = ?)"
                f" RETURNING {_COLUMNS}",
                (
                    owner,
                    iso(now + timedelta(seconds=claim_s)),
                    patient_id,
                    iso(now),
                    owner if include_own else "",
                ),
            ).fetchall()
        return [_message(row) for row in sorted(rows)]

    def claimable(self, patient_ids: Sequence[str], now: datetime) -> set[str]:
        """Which of these patients have undelivered rows nobody holds (one query per 500)."""
        found: set[str] = set()
        ids = list(patient_ids)
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = self._conn.execute(
                    "SELECT DISTINCT patient_id FROM notifications WHERE delivered_at IS NULL"
                    f" AND patient_id IN ({','.join('?' * len(chunk))})"
                    " AND (claimed_by IS NULL OR claim_expires_at < ?)",
                    (*chunk, iso(now)),
                ).fetchall()
                found.update(row[0] for row in rows)
        return found

    def release(self, patient_id: str, owner: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE notifications SET claimed_by = NULL, claim_expires_at = NULL"
                " WHERE patient_id = ? AND claimed_by = ? AND delivered_at IS NULL",
                (patient_id, owner),
            )

    def ack(self, patient_id: str, ids: Sequence[str], now: datetime) -> int:
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE notifications SET delivered_at = ?, claimed_by = NULL, claim_expires_at = NULL"
                f" WHERE patient_id = ? AND delivered_at IS NULL AND notification_id IN ({marks})",
                (iso(now), patient_id, *ids),
            )
            return cursor.rowcount

    def pending(self, patient_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM notifications WHERE patient_id = ? AND delivered_at IS NULL"
                " ORDER BY seq",
                (patient_id,),
            ).fetchall()
        return [_message(row) for row in rows]

    def all_rows(self) -> list[dict[str, Any]]:
        """Every row (tests and benchmarks)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, notification_id, dedupe_key, patient_id, kind, payload, created_at,"
                " sent_count, delivered_at FROM notifications ORDER BY seq"
            ).fetchall()
        keys = ("seq", "id", "dedupe_key", "patient_id", "kind", "payload", "created_at", "sent_count")
        return [
            {**dict(zip(keys, row[:8], strict=True)), "payload": json.loads(row[5]), "delivered_at": row[8]}
            for row in rows
        ]


class PatientConnection:
    """One open /ws/patient socket: an outbox queue drained by one writer task, and the ids it
    has carried (an id is never sent twice on one connection)."""

    def __init__(self, websocket: WebSocket | None, patient_id: str, queue_size: int = 1024) -> None:
        self.ws = websocket
        self.patient_id = patient_id
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=queue_size)
        self.sent_ids: set[str] = set()
        self.closed = False

    def offer(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        is_notification = message.get("type") == "notification"
        if is_notification and message["id"] in self.sent_ids:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            # Not acked, so not lost: sent again once this process's claim expires, or on reconnect.
            log.warning("patient socket of %s is not reading; dropped a %s", self.patient_id, message["type"])
            return
        if is_notification:
            self.sent_ids.add(message["id"])

    async def write(self) -> None:
        assert self.ws is not None
        while True:
            message = await self.queue.get()
            try:
                await self.ws.send_text(json.dumps(message, ensure_ascii=False, default=str))
            except Exception:  # closed under us
                self.closed = True
                return


class NotificationHub:
    """The outbox + this process's open patient sockets. `hub(patient_id, kind, payload)` is the
    Notify callable other features are given."""

    def __init__(
        self,
        path: Path | str,
        *,
        clock: Callable[[], datetime] = utc_now,
        claim_s: float = 60.0,
        poll_s: float = 1.0,
        heartbeat_s: float = 20.0,
        hub_id: str | None = None,
    ) -> None:
        self.store = OutboxStore(path)
        self.clock = clock
        self.claim_s, self.poll_s, self.heartbeat_s = claim_s, poll_s, heartbeat_s
        self.hub_id = hub_id or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._lock = threading.RLock()  # orders publish() against a socket's backlog
        self._connections: dict[str, set[PatientConnection]] = defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Any, **options: Any) -> NotificationHub:
        """The app's hub: data_dir/reminders.sqlite3, polled every reminder_poll_s, pinging every
        ws_heartbeat_s (settings: assistant.settings.Settings)."""
        options.setdefault("poll_s", settings.reminder_poll_s)
        options.setdefault("heartbeat_s", settings.ws_heartbeat_s)
        return cls(settings.data_dir / "reminders.sqlite3", **options)

    # ---------------------------------------------------------------- publishing (any thread)

    def publish(
        self, patient_id: str, kind: str, payload: dict[str, Any], *, dedupe_key: str | None = None
    ) -> str:
        return self.publish_many([Outgoing(patient_id, kind, payload, dedupe_key)])[0]

    __call__ = publish

    def publish_many(self, items: Sequence[Outgoing]) -> list[str]:
        """Persist all in one transaction, then push the new ones to connected patients."""
        if not items:
            return []
        with self._lock:
            results = self.store.insert(items, self.clock(), self._owner_if_connected, self.claim_s)
            for (_, message), item in zip(results, items, strict=True):
                if message is not None:
                    self._push(item.patient_id, [message])
        return [notification_id for notification_id, _ in results]

    def _owner_if_connected(self, patient_id: str) -> str | None:
        return self.hub_id if self._connections.get(patient_id) else None

    def _push(self, patient_id: str, messages: list[dict[str, Any]]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        for conn in list(self._connections.get(patient_id, ())):
            for message in messages:
                loop.call_soon_threadsafe(conn.offer, message)  # FIFO: keeps outbox order

    # ---------------------------------------------------------------- connections

    def attach(self, conn: PatientConnection, loop: asyncio.AbstractEventLoop) -> int:
        """Register a socket and queue its backlog (blocking: call in a thread). Returns the backlog size."""
        self._loop = loop
        with self._lock:
            self._connections[conn.patient_id].add(conn)
            backlog = self.store.claim(
                conn.patient_id, self.hub_id, self.clock(), self.claim_s, include_own=True
            )
            for message in backlog:
                loop.call_soon_threadsafe(conn.offer, message)
        return len(backlog)

    def detach(self, conn: PatientConnection) -> None:
        with self._lock:
            members = self._connections.get(conn.patient_id)
            if members is not None:
                members.discard(conn)
                if not members:
                    del self._connections[conn.patient_id]
            if conn.patient_id not in self._connections:
                # the last socket here: let another process (or the next socket) take the unacked ones now
                self.store.release(conn.patient_id, self.hub_id)

    def connected(self, patient_id: str) -> bool:
        return bool(self._connections.get(patient_id))

    def ack(self, patient_id: str, ids: Sequence[str]) -> int:
        return self.store.ack(patient_id, list(ids), self.clock())

    def pending(self, patient_id: str) -> list[dict[str, Any]]:
        return self.store.pending(patient_id)

    def poll_once(self) -> int:
        """Claim and push rows other processes published (or whose claim expired) for patients
        connected here. Blocking; returns how many were pushed."""
        pushed = 0
        now = self.clock()
        with self._lock:
            here = list(self._connections)
        for patient_id in sorted(self.store.claimable(here, now)):
            with self._lock:
                if not self._connections.get(patient_id):
                    continue
                messages = self.store.claim(patient_id, self.hub_id, now, self.claim_s, include_own=False)
                self._push(patient_id, messages)
            pushed += len(messages)
        return pushed

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._poll(), name="notify-poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def close(self) -> None:
        self.store.close()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await asyncio.to_thread(self.poll_once)
            except Exception:  # a locked or full database must not end delivery for good
                log.exception("notification poll failed")


# ------------------------------------------------------------------------------ auth


def authenticate_patient(app_state: Any, token: str | None) -> str | None:
    """patient_id for a patient token (request.app.state.patients, server/patients.py)."""
    if not token:
        return None
    patients = getattr(app_state, "patients", None)
    if patients is None:
        return None
    result = patients.authenticate(token)
    return result if isinstance(result, str) and result else None


def error_response(status: int, code: str, lang: str, **params: Any) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message_for(code, lang, **params)}}, status_code=status
    )


# ------------------------------------------------------------------------------ routes

router = APIRouter(tags=["notifications"])


@router.get("/api/notifications")
async def list_pending(request: Request) -> JSONResponse:
    """The patient's undelivered notifications, oldest first (for clients without a socket)."""
    lang = request_lang(request)
    token = bearer_token(request)
    patient_id = await run_in_threadpool(authenticate_patient, request.app.state, token)
    if patient_id is None:
        return error_response(401, "bad_token" if token else "auth_required", lang)
    hub: NotificationHub = request.app.state.notify
    return JSONResponse({"notifications": await run_in_threadpool(hub.pending, patient_id)})


@router.post("/api/notifications/ack")
async def ack_notifications(request: Request) -> JSONResponse:
    """{"ids": [...]} -> {"count"} newly marked delivered (ids of other patients are ignored)."""
    lang = request_lang(request)
    token = bearer_token(request)
    patient_id = await run_in_threadpool(authenticate_patient, request.app.state, token)
    if patient_id is None:
        return error_response(401, "bad_token" if token else "auth_required", lang)
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return error_response(400, "bad_json", lang)
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(ids) > 500:
        return error_response(422, "bad_message", lang, detail="ids: a list of at most 500 strings")
    hub: NotificationHub = request.app.state.notify
    return JSONResponse({"count": await run_in_threadpool(hub.ack, patient_id, ids)})


@router.websocket("/ws/patient")
async def patient_socket(websocket: WebSocket) -> None:
    if not origin_allowed(websocket.headers):
        await websocket.close(code=1008)
        return
    await websocket.accept()
    lang = request_lang(websocket)
    token = websocket.query_params.get("token")
    patient_id = await asyncio.to_thread(authenticate_patient, websocket.app.state, token)
    if patient_id is None:
        # Accept first, then explain: a browser cannot read the reason of a refused handshake.
        code = "bad_token" if token else "auth_required"
        with contextlib.suppress(Exception):
            await websocket.send_text(
                json.dumps({"type": "error", "code": code, "message": message_for(code, lang)})
            )
            await websocket.close(code=CLOSE_BAD_TOKEN)
        return
    await PatientSocket(websocket, patient_id, websocket.app.state.notify, lang).run()


class PatientSocket:
    MAX_BYTES = 8192

    def __init__(self, websocket: WebSocket, patient_id: str, hub: NotificationHub, lang: str) -> None:
        self.ws, self.patient_id, self.hub, self.lang = websocket, patient_id, hub, lang
        self.conn = PatientConnection(websocket, patient_id)
        self.bucket = TokenBucket.per_minute(600)  # acks one by one after a long absence

    def _error(self, code: str, **params: Any) -> dict[str, Any]:
        return {"type": "error", "code": code, "message": message_for(code, self.lang, **params)}

    async def run(self) -> None:
        self.conn.offer({"type": "ready", "protocol": PROTOCOL, "patient_id": self.patient_id})
        writer = asyncio.create_task(self.conn.write(), name="notify-ws-writer")
        heartbeat = asyncio.create_task(self._heartbeat(), name="notify-ws-heartbeat")
        try:
            await asyncio.to_thread(self.hub.attach, self.conn, asyncio.get_running_loop())
            await self._read()
        finally:
            self.conn.closed = True
            writer.cancel()
            heartbeat.cancel()
            await asyncio.gather(writer, heartbeat, return_exceptions=True)
            await asyncio.to_thread(self.hub.detach, self.conn)

    async def _heartbeat(self) -> None:
        while not self.conn.closed:
            await asyncio.sleep(self.hub.heartbeat_s)
            self.conn.offer({"type": "ping"})

    async def _read(self) -> None:
        while not self.conn.closed:
            frame = await self.ws.receive()
            if frame["type"] == "websocket.disconnect":
                return
            if frame["type"] != "websocket.receive":
                continue
            try:
                reply = await self._on_text(frame.get("text"))
            except Exception:
                log.exception("patient socket message failed")
                reply = self._error("bad_message", detail="internal")
            if reply is not None:
                self.conn.offer(reply)

    async def _on_text(self, text: str | None) -> dict[str, Any] | None:
        if not self.bucket.take():
            return self._error("rate_limited")
        if text is None:
            return self._error("bad_json")
        if len(text.encode("utf-8")) > self.MAX_BYTES:
            return self._error("too_large", limit=self.MAX_BYTES)
        try:
            message = json.loads(text)
        except ValueError:
            return self._error("bad_json")
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            return self._error("bad_json")
        kind = message["type"]
        if kind == "ping":
            return {"type": "pong"}
        if kind == "pong":
            return None
        if kind != "ack":
            return self._error("unknown_type", type=kind[:40])
        ids = message.get("ids", [message["id"]] if "id" in message else None)
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids) or len(ids) > 500:
            return self._error("bad_message", detail="ack needs id (string) or ids (list of strings)")
        count = await asyncio.to_thread(self.hub.ack, self.patient_id, ids)
        return {"type": "acked", "ids": ids, "count": count}
