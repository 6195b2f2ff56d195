"""What a request or websocket tells about its caller: the language asked for, the bearer token,
whether a browser page may connect (same origin)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from tools.triage_models import Lang


def request_lang(request: HTTPConnection) -> Lang:
    """The language of an HTTP request or websocket: ?lang= (zh… or en…) wins, then the
    Accept-Language header; Chinese by default."""
    asked = (request.query_params.get("lang") or "").lower()
    if asked.startswith(("zh", "en")):
        return "en" if asked.startswith("en") else "zh"
    return "en" if request.headers.get("accept-language", "").lower().startswith("en") else "zh"


def bearer_token(request: HTTPConnection) -> str | None:
    """The token of an "Authorization: Bearer <token>" header, if any."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def origin_allowed(headers: Any) -> bool:
    """Browsers send Origin: only pages served by this server may open a websocket (stops another
    site from using a user's local server). Non-browser clients send no Origin."""
    origin = headers.get("origin")
    if not origin:
        return True
    return urlsplit(origin).netloc.lower() == str(headers.get("host", "")).lower()
