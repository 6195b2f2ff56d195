"""make_llm(settings): the configured backend, or NoLLM with a reason — never an exception.

A missing or corrupt model means rules-only mode with a logged, bilingual explanation;
`backend.unavailable_reason` carries the code (None when the backend is usable).
"""

from __future__ import annotations

import logging

from assistant.llm.base import LLMBackend, LLMError
from assistant.llm.none import NoLLM
from assistant.models import MODELS, configured_model_path, verify_model
from assistant.settings import Settings

log = logging.getLogger(__name__)


def make_llm(settings: Settings) -> LLMBackend:
    if settings.llm_backend == "none":
        return NoLLM("disabled")
    if settings.llm_backend == "openai":
        from assistant.llm.openai_compat import OpenAICompatBackend

        # no probe here: the server may start after us; calls fail with LLMError until it is up
        return OpenAICompatBackend(settings.llm_base_url, settings.llm_api_model, settings.llm_timeout_s)
    return _make_llamacpp(settings)


def _make_llamacpp(settings: Settings) -> LLMBackend:
    path = configured_model_path(settings)
    if not path.is_file():
        return _fallback(LLMError("model_missing", str(path)))
    spec = MODELS.get(settings.llm_model) if settings.llm_model_path is None else None
    if spec is not None:
        # a known model is checked against its size and sha256 (hashed once, then cached)
        check = verify_model(path, spec)
        if check != "ok":
            return _fallback(LLMError("model_corrupt", f"{path}: {check}"))
    from assistant.llm.llamacpp import LlamaCppBackend

    try:
        return LlamaCppBackend(
            path,
            n_ctx=settings.llm_ctx,
            n_threads=settings.llm_threads,
            timeout_s=settings.llm_timeout_s,
        )
    except LLMError as exc:
        return _fallback(exc)


def _fallback(error: LLMError) -> NoLLM:
    log.warning("LLM unavailable, rules-only mode: %s", error)
    return NoLLM(error.code, error.detail)
