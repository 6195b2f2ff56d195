"""The FastAPI app: REST routes, the chat websocket and the web page (server/static).

app = create_app()                                   # what `daozhen serve` runs
app = create_app(settings, chat_service=fake)        # tests inject the chat service
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.settings import Settings, get_settings
from server import rest, ws_chat
from server.errors import install_error_handlers
from server.features import Features
from server.fever import routes as fever_routes
from server.fever import ws as fever_ws
from server.fever.runtime import FeverRuntime
from server.guidelines import GuidelineLibrary
from server.metrics import ServerMetrics
from server.protocol import PROTOCOL
from server.runtime import KnowledgeLoader, Runtime

STATIC_DIR = Path(__file__).resolve().parent / "static"
INDEX_FILES = ("index.html", "chat.html")
DOCS_ASSETS_URL = "/docs-assets"

_PLACEHOLDER = """<!doctype html>
<html lang="zh"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>导诊 Daozhen</title></head>
<body style="font-family: sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem">
<h1>导诊 Daozhen</h1>
<p>聊天页面尚未安装。接口：websocket <code>/ws/chat</code>（协议 {protocol}），<a href="/docs">/docs</a>。</p>
<p>The chat page is not installed yet. API: websocket <code>/ws/chat</code> (protocol {protocol}),
<a href="/docs">/docs</a>.</p>
<p><strong>本服务仅提供就医指引，不是诊断。紧急情况请立即拨打 120。
This is guidance, not a diagnosis. In an emergency call 120 now.</strong></p>
</body></html>
"""


class RequestMetricsMiddleware:
    """Counts HTTP requests by route template (not the raw path, so ids cannot explode labels)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics, routes: Callable[[], list[Any]]) -> None:
        self.app, self.metrics, self.routes = app, metrics, routes

    def _route_label(self, path: str) -> str:
        for route in _flat_routes(self.routes()):
            regex = getattr(route, "path_regex", None)
            if regex is not None and regex.match(path):
                return "static" if isinstance(route, Mount) else str(route.path)
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.http_requests.inc(
                route=self._route_label(scope["path"]), method=scope.get("method", "?"), status=str(status)
            )


def _flat_routes(routes: list[Any]) -> Iterator[Any]:
    """Routes in match order, looking inside included routers (FastAPI keeps them nested;
    the server includes its routers without a prefix)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _flat_routes(inner.routes)
        else:
            yield route


class _HttpOnly:
    """Static files answer HTTP only; a websocket to an unknown path is refused, not crashed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await self.app(scope, receive, send)


def offline_docs_assets() -> Path | None:
    """Swagger UI / ReDoc files shipped by the fastapi-offline package: /docs must work on a
    machine without internet, and FastAPI's default pages load them from a CDN."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = Path(fastapi_offline.__file__).resolve().parent / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def _add_offline_docs(app: FastAPI, assets: Path) -> None:
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url=f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_URL}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            redoc_js_url=f"{DOCS_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )


def create_app(
    settings: Settings | None = None,
    chat_service: Any | None = None,
    llm: Any | None = None,
    *,
    knowledge_loader: KnowledgeLoader | None = None,
    turn_idle_timeout_s: float | None = None,
    static_dir: Path = STATIC_DIR,
) -> FastAPI:
    """The app. chat_service: any object with the ChatService `turn` (see server/chat_types.py);
    default: rules-only at once, the agent pipeline once the model and knowledge base are loaded.
    knowledge_loader(settings) -> object with `knowledge_version` (default: open_knowledge_base).
    turn_idle_timeout_s: give up on a turn when the service is silent this long."""
    settings = settings or get_settings()
    runtime = Runtime(
        settings,
        chat_service=chat_service,
        llm=llm,
        knowledge_loader=knowledge_loader,
        turn_idle_timeout_s=turn_idle_timeout_s,
    )

    fever = FeverRuntime(settings)  # child fever diary: /api/fever, /ws/fever, reminder loop

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()  # fast: the knowledge base and the model load in the background
        await fever.start()
        await features.start()
        runtime.desk = features.service_desk()
        try:
            yield
        finally:
            runtime.desk = None
            await features.stop()
            await fever.stop()
            await runtime.stop()

    docs_assets = offline_docs_assets()
    app = FastAPI(
        docs_url=None if docs_assets else "/docs",  # the offline pages are added below
        redoc_url=None if docs_assets else "/redoc",
        title="Daozhen 导诊",
        version="0.1.0",
        summary="Offline triage assistant: guidance, not diagnosis. Emergencies: call 120.",
        description=(
            f"REST API and chat websocket `/ws/chat` (protocol `{PROTOCOL}`, see server/asyncapi.yaml)."
        ),
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.fever = fever
    app.state.guidelines = GuidelineLibrary(settings.knowledge_dir)
    app.add_middleware(RequestMetricsMiddleware, metrics=runtime.metrics, routes=lambda: app.routes)
    app.include_router(rest.router)
    app.include_router(ws_chat.router)
    app.include_router(fever_routes.router)
    app.include_router(fever_ws.router)
    install_error_handlers(app)
    # patients, pushes, booking, escort, navigation, tiered care, kiosk, reminders, chronic, handoff
    features = Features(app, settings)

    if docs_assets is not None:
        _add_offline_docs(app, docs_assets)

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        for name in INDEX_FILES:
            page = static_dir / name
            if page.is_file():
                return FileResponse(page, media_type="text/html")
        return HTMLResponse(_PLACEHOLDER.replace("{protocol}", PROTOCOL))

    if static_dir.is_dir():
        # The page links its assets as /static/...; "/" also serves them for root-relative links.
        files = _HttpOnly(StaticFiles(directory=static_dir))
        app.mount("/static", files, name="static")  # type: ignore[arg-type]
        app.mount("/", files, name="static-root")  # type: ignore[arg-type]
    return app
