"""GET /api/guidelines/{doc_id}/{section}: the guideline text behind a card's citation.

The chat page opens this when a citation is tapped. Uses the app's knowledge base when the app
already holds one (app.state.kb / app.state.knowledge_base), else opens one per settings once and
caches it. Errors use the server's REST shape {"error": {"code", "message"}} in zh/en.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from server.errors import error_body

router = APIRouter(tags=["guidelines"])

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
_APP_STATE_NAMES = ("kb", "knowledge_base")
_cache: dict[tuple[str, ...], Any] = {}
_cache_lock = threading.Lock()


def _settings(request: Request) -> Any:
    settings = getattr(request.app.state, "settings", None)
    if settings is None:
        from assistant.settings import get_settings

        settings = get_settings()
    return settings


def knowledge_base_for(request: Request) -> Any:
    """The app's KnowledgeBase, or one opened (and cached) from its settings."""
    for name in _APP_STATE_NAMES:
        kb = getattr(request.app.state, name, None)
        if kb is not None and hasattr(kb, "get_section"):
            return kb
    settings = _settings(request)
    key = (
        str(settings.knowledge_dir),
        str(settings.chroma_dir),
        settings.collection_name,
        settings.embedding_backend,
        settings.embedding_model,
    )
    with _cache_lock:  # the first call builds/syncs the index; later calls reuse it
        if key not in _cache:
            from knowledge.api import open_knowledge_base

            _cache[key] = open_knowledge_base(settings)
        return _cache[key]


def _error(status: int, code: str, lang: str | None, **params: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content=error_body(code, lang, **params))  # type: ignore[arg-type]


@router.get(
    "/api/guidelines/{doc_id}/{section}",
    summary="Text of one guideline section (for a citation) / 引用的指南原文",
    responses={404: {"description": "unknown document or section"}, 503: {"description": "not ready"}},
)
def get_guideline_section(
    request: Request,
    doc_id: Annotated[str, Path(pattern=_ID_PATTERN)],
    section: Annotated[str, Path(pattern=_ID_PATTERN)],
    lang: Annotated[Literal["zh", "en"] | None, Query()] = None,
) -> Any:
    """The section in `lang` (other language as fallback): titles, text and the public sources."""
    try:
        kb = knowledge_base_for(request)
    except Exception:  # an unusable index must not break the page, only this panel
        return _error(503, "not_ready", lang)
    found = kb.get_section(doc_id, section, lang)
    if found is None:
        return _error(404, "not_found", lang)
    return {
        "doc_id": found.doc_id,
        "section": found.section,
        "lang": found.lang,
        "title": found.title,
        "section_title": found.section_title,
        "text": found.text,
        "sources": [s.to_dict() for s in found.sources],
        "citation": found.citation(),
        "doc_version": found.doc_version,
    }
