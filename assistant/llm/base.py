"""The one interface every LLM backend offers: streamed text and JSON-schema constrained output.

The model only explains and extracts; clinical decisions stay in tools/. Callers treat any
LLMError as "no model this turn" and fall back to templated replies.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel

LLMErrorCode = Literal["model_missing", "model_corrupt", "timeout", "backend_error", "bad_output", "disabled"]
ERROR_CODES: frozenset[str] = frozenset(LLMErrorCode.__args__)  # type: ignore[attr-defined]

_MESSAGES: dict[str, tuple[str, str]] = {
    "model_missing": (
        "未找到本地模型文件，请运行 `daozhen models install`。",
        "The local model file is missing; run `daozhen models install`.",
    ),
    "model_corrupt": (
        "本地模型文件已损坏或无法加载，请重新运行 `daozhen models install`。",
        "The local model file is corrupt or cannot be loaded; rerun `daozhen models install`.",
    ),
    "timeout": ("语言模型响应超时。", "The language model timed out."),
    "backend_error": ("语言模型服务出错。", "The language model backend failed."),
    "bad_output": ("语言模型输出无法解析。", "The language model returned output that could not be parsed."),
    "disabled": ("语言模型未启用（仅规则模式）。", "The language model is disabled (rules-only mode)."),
}


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class LLMError(RuntimeError):
    """A backend failure with a stable `code` (see LLMErrorCode).

    `LLMError("timeout")` uses the code's standard zh/en message; `LLMError("timeout", "detail")`
    adds a detail; a first argument that is not a known code is taken as a backend_error message.
    """

    def __init__(self, code: str = "backend_error", detail: str | None = None) -> None:
        if code not in ERROR_CODES:
            code, detail = "backend_error", code if detail is None else f"{code}: {detail}"
        zh, en = _MESSAGES[code]
        self.code: str = code
        self.detail = detail
        self.zh, self.en = zh, en
        super().__init__(f"{zh} / {en}" + (f" ({detail})" if detail else ""))


@runtime_checkable
class LLMBackend(Protocol):
    name: str
    unavailable_reason: str | None

    def available(self) -> bool: ...

    def stream(
        self,
        messages: list[ChatMessage],
        *,
        max_tokens: int = 256,
        temperature: float = 0.2,
        stop: list[str] | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]: ...

    def complete_json(self, messages: list[ChatMessage], schema: dict, *, max_tokens: int = 256) -> dict: ...


def as_dicts(messages: list[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


class GenerationCounters:
    """Counters a backend updates after each call, read by /metrics and `make bench`.

    Times are wall-clock seconds; tokens are streamed pieces (one per sampled token for llama.cpp
    and for OpenAI-style servers, which send one token per SSE event).
    """

    def __init__(self) -> None:
        self.requests = 0
        self.tokens_generated = 0
        self.generation_seconds = 0.0
        self.last_ttft_s: float | None = None
        self.last_tokens: int = 0
        self.last_tokens_per_s: float | None = None
        self.last_generation_s: float | None = None

    def _finish(self, started: float, first_token_at: float | None, tokens: int) -> None:
        """Records one finished (or cancelled) call. tokens/s counts from the first token on."""
        now = time.perf_counter()
        self.requests += 1
        self.tokens_generated += tokens
        self.generation_seconds += now - started
        self.last_generation_s = now - started
        self.last_tokens = tokens
        self.last_ttft_s = None if first_token_at is None else first_token_at - started
        decode_s = None if first_token_at is None else now - first_token_at
        if decode_s:
            self.last_tokens_per_s = (tokens - 1) / decode_s if tokens > 1 else None
        else:  # not streamed (JSON calls): tokens over the whole call
            self.last_tokens_per_s = tokens / (now - started) if tokens else None

    def stats(self) -> dict[str, float | int | None]:
        return {
            "requests": self.requests,
            "tokens_generated": self.tokens_generated,
            "generation_seconds": self.generation_seconds,
            "last_ttft_s": self.last_ttft_s,
            "last_tokens": self.last_tokens,
            "last_tokens_per_s": self.last_tokens_per_s,
            "last_generation_s": self.last_generation_s,
        }


class FifoLock:
    """A mutex granted in arrival order, so one busy session cannot starve the others.

    threading.Lock makes no ordering promise; the shared model instance should serve
    waiting requests first come, first served.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._waiters: deque[threading.Event] = deque()
        self._held = False

    def acquire(self, timeout: float | None = None) -> bool:
        with self._guard:
            if not self._held and not self._waiters:
                self._held = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(timeout):
            return True  # ownership was handed to us by release()
        with self._guard:
            if turn.is_set():  # handed over just as we timed out: keep it
                return True
            self._waiters.remove(turn)
            return False

    def release(self) -> None:
        with self._guard:
            if self._waiters:
                self._waiters.popleft().set()  # hand over directly; _held stays True
            else:
                self._held = False

    @property
    def waiting(self) -> int:
        """Requests queued behind the current one (a queue-depth metric)."""
        return len(self._waiters)
