"""Reading eval datasets: one JSON object per line; a bad line is reported, never fatal."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def parsed_rows(path: Path, parse: Callable[[str, int], T]) -> Iterator[tuple[int, str, T | ValueError]]:
    """(line number, raw line, parsed row or the ValueError it raised) for every non-blank line."""
    with path.open(encoding="utf-8") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield line_no, raw, parse(raw, line_no)
            except ValueError as exc:
                yield line_no, raw, exc


def peek_id(raw: str) -> str | None:
    """The row's "id", when the line is JSON enough to have one (for error reports)."""
    try:
        row = json.loads(raw)
    except json.JSONDecodeError:
        return None
    if isinstance(row, dict) and row.get("id") is not None:
        return str(row["id"])
    return None
