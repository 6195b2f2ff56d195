"""Tiered care on the server: REST /api/tiered/... (routes.py) over tools/tiered_care.py — areas,
nearest community/township centres and family doctor teams, and the next mobile clinic visit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.tiered_care import DATA_FILE, load_tiered_care

if TYPE_CHECKING:
    from assistant.settings import Settings


def utc_now() -> datetime:
    return datetime.now(UTC)


class TieredRuntime:
    """Tests may replace `clock` (an aware datetime) or `data_path` before requests."""

    def __init__(
        self,
        settings: Settings | None = None,
        notify: Callable[[str, str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.data_path: Path = DATA_FILE
        self.clock: Callable[[], datetime] = utc_now
        self.notify = notify  # unused: nothing is pushed; kept for the runtime contract

    async def start(self) -> None:
        load_tiered_care(self.data_path)  # validate now: a broken data file fails at start, not per request

    async def stop(self) -> None:
        return None
