"""Shared by the booking service and its mixins: types, ids, the idempotency-key check and the
outcome of a transaction (response + notifications to send after commit)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from server.booking.db import RetryableError
from server.booking.errors import BookingError

Notify = Callable[[str, str, dict[str, Any]], None]  # notify(patient_id, kind, payload), as server/notify.py
Clock = Callable[[], datetime]
HALF_DAYS = ("am", "pm")
MAX_KEY_LENGTH = 100


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8)}"


@dataclass
class Outcome:
    """What a transaction produced: the response, and the notifications to send after commit."""

    data: dict[str, Any]
    notices: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


def check_key(key: str | None) -> str:
    if key is None or not str(key).strip():
        raise BookingError(400, "idempotency_key_required")
    key = str(key).strip()
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise BookingError(400, "bad_idempotency_key")
    return key


def retry() -> RetryableError:
    """A conditional update found the row changed by a concurrent transaction: run again."""
    return RetryableError("row changed under us")
