"""LLM layer: one interface (base.LLMBackend), three backends, chosen by make_llm(settings)."""

from assistant.llm.base import ChatMessage, LLMBackend, LLMError
from assistant.llm.factory import make_llm
from assistant.llm.none import NoLLM

__all__ = ["ChatMessage", "LLMBackend", "LLMError", "NoLLM", "make_llm"]
