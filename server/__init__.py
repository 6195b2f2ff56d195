"""Daozhen server: FastAPI app (server.app.create_app) and `serve` to run it with uvicorn."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from assistant.settings import Settings


def serve(settings: Settings | None = None) -> None:
    """Runs the app on settings.server_host:server_port until interrupted (`daozhen serve`)."""
    import uvicorn

    from assistant.settings import get_settings
    from server.app import create_app

    settings = settings or get_settings()
    uvicorn.run(create_app(settings), **uvicorn_options(settings))


def uvicorn_options(settings: Settings) -> dict[str, object]:
    return {
        "host": settings.server_host,
        "port": settings.server_port,
        # Protocol-level cap well above the app's own limit, so a moderately oversized frame gets
        # a readable "too_large" error and only an absurd one drops the connection.
        "ws_max_size": max(1 << 20, settings.ws_max_message_bytes * 8),
        "log_level": "info",
    }
