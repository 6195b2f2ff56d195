"""JSON request bodies for the REST routes: size limit, valid JSON object, pydantic validation —
each failure raised as the feature's own error type (any `error(status, code, **params)`), so every
API answers bad input the same way: 413 body_too_large, 400 bad_json, 422 invalid_field."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ValidationError

ErrorFactory = Callable[..., Exception]


def first_field_error(exc: ValidationError) -> tuple[str, str]:
    """(dotted field path, message) of the first validation problem."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "body"
    return field, str(first.get("msg", ""))


async def parse_json_body(
    request: Request,
    model: type[BaseModel],
    *,
    limit: int,
    error: ErrorFactory,
    on_invalid: Callable[[ValidationError], Exception] | None = None,
) -> Any:
    raw = await request.body()
    if len(raw) > limit:
        raise error(413, "body_too_large", limit=limit)
    try:
        obj = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(400, "bad_json") from exc
    if not isinstance(obj, dict):
        raise error(400, "bad_json")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        if on_invalid is not None:
            raise on_invalid(exc) from exc
        field, detail = first_field_error(exc)
        raise error(422, "invalid_field", field=field, detail=detail) from exc
