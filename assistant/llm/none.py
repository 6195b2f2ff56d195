"""Rules-only mode: no model. Every call raises LLMError("disabled") so callers use templates."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from assistant.llm.base import ChatMessage, LLMError


class NoLLM:
    name = "none"

    def __init__(self, reason: str = "disabled", detail: str | None = None) -> None:
        # reason is an LLMError code: disabled (chosen), model_missing, model_corrupt, ...
        self.unavailable_reason: str | None = reason
        self.detail = detail

    def available(self) -> bool:
        return False

    @property
    def message(self) -> str:
        """The zh / en explanation for logs, /readyz and the CLI."""
        return str(LLMError(self.unavailable_reason or "disabled", self.detail))

    def stream(
        self,
        messages: list[ChatMessage],
        *,
        max_tokens: int = 256,
        temperature: float = 0.2,
        stop: list[str] | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        raise LLMError("disabled", self.unavailable_reason)

    def complete_json(self, messages: list[ChatMessage], schema: dict, *, max_tokens: int = 256) -> dict:
        raise LLMError("disabled", self.unavailable_reason)
