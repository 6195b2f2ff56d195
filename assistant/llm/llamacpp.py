"""In-process llama-cpp-python backend: one Llama instance shared by every session.

Measured facts this design follows (../shared/REFERENCE.md): the Llama object is not
thread-safe (two threads abort the process), so every call holds one FIFO lock for its whole
duration, including a stream until it ends, is cancelled or is closed; a stream must never be
paused while another call runs. Breaking out of a stream and reusing the instance is safe.
The RAM cache keeps prompt prefixes across interleaved sessions.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from assistant.llm.base import ChatMessage, FifoLock, GenerationCounters, LLMError, as_dicts

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
DEFAULT_CACHE_BYTES = 512 << 20  # ≈ 38 cached 600-token prefixes of the 1.5B model


def looks_like_gguf(path: Path) -> bool:
    """Cheap header check before handing a file to llama.cpp."""
    try:
        with path.open("rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False


class LlamaCppBackend(GenerationCounters):
    name = "llamacpp"

    def __init__(
        self,
        model_path: Path | str,
        *,
        n_ctx: int = 4096,
        n_threads: int = 2,
        n_batch: int = 512,
        timeout_s: float = 60.0,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        """Loads the GGUF now; raises LLMError("model_missing" | "model_corrupt"), never crashes."""
        super().__init__()
        self.model_path = Path(model_path)
        self.timeout_s = timeout_s
        self.unavailable_reason: str | None = None
        if not self.model_path.is_file():
            raise LLMError("model_missing", str(self.model_path))
        if not looks_like_gguf(self.model_path):
            raise LLMError("model_corrupt", f"{self.model_path}: not a GGUF file")
        import llama_cpp  # deferred: importing loads the native library

        started = time.perf_counter()
        try:
            # chat template and rope_freq_base come from the GGUF metadata (defaults None / 0.0)
            self._llm = llama_cpp.Llama(
                model_path=str(self.model_path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                n_batch=n_batch,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise LLMError("model_corrupt", f"{self.model_path}: {exc}") from exc
        self._llm.set_cache(llama_cpp.LlamaRAMCache(capacity_bytes=cache_bytes))
        self.load_s = time.perf_counter() - started
        self._lock = FifoLock()
        log.info(
            "loaded %s in %.1f s (n_ctx=%d, threads=%d)", self.model_path.name, self.load_s, n_ctx, n_threads
        )

    def available(self) -> bool:
        return True

    @property
    def queue_depth(self) -> int:
        return self._lock.waiting

    def _acquire(self) -> None:
        if not self._lock.acquire(timeout=self.timeout_s):
            raise LLMError("timeout", f"model busy for more than {self.timeout_s:.0f} s")

    def stream(
        self,
        messages: list[ChatMessage],
        *,
        max_tokens: int = 256,
        temperature: float = 0.2,
        stop: list[str] | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """Yields text pieces. Holds the model until the generator ends: consume it or close() it."""
        self._acquire()
        try:
            yield from self._stream_locked(messages, max_tokens, temperature, stop, cancel)
        finally:
            self._lock.release()

    def _stream_locked(
        self,
        messages: list[ChatMessage],
        max_tokens: int,
        temperature: float,
        stop: list[str] | None,
        cancel: threading.Event | None,
    ) -> Iterator[str]:
        started = time.perf_counter()
        first_at: float | None = None
        tokens = 0
        chunks: Any = None
        try:
            chunks = self._llm.create_chat_completion(
                messages=as_dicts(messages),  # type: ignore[arg-type]
                max_tokens=max_tokens,
                temperature=temperature,
                stop=stop or [],
                stream=True,
            )
            for chunk in chunks:
                if cancel is not None and cancel.is_set():
                    break
                piece = chunk["choices"][0].get("delta", {}).get("content")  # type: ignore[index]
                if not piece:
                    continue
                tokens += 1
                if first_at is None:
                    first_at = time.perf_counter()
                if time.perf_counter() - started > self.timeout_s:
                    raise LLMError("timeout", f"generation ran past {self.timeout_s:.0f} s")
                yield piece
        except LLMError:
            raise
        except Exception as exc:  # llama.cpp errors (e.g. prompt longer than n_ctx) become LLMError
            raise LLMError("backend_error", f"{type(exc).__name__}: {exc}") from exc
        finally:
            if chunks is not None and hasattr(chunks, "close"):
                chunks.close()  # stops generation now; the instance stays reusable
            self._finish(started, first_at, tokens)

    def complete_json(self, messages: list[ChatMessage], schema: dict, *, max_tokens: int = 256) -> dict:
        """One JSON object constrained by `schema` (llama.cpp grammar); raises LLMError."""
        self._acquire()
        started = time.perf_counter()
        tokens = 0
        try:
            response: Any = self._llm.create_chat_completion(
                messages=as_dicts(messages),  # type: ignore[arg-type]
                max_tokens=max_tokens,
                temperature=0.0,
                response_format={"type": "json_object", "schema": schema},
            )
            tokens = int(response.get("usage", {}).get("completion_tokens", 0))
            text = response["choices"][0]["message"]["content"] or ""
        except Exception as exc:
            raise LLMError("backend_error", f"{type(exc).__name__}: {exc}") from exc
        finally:
            self._lock.release()
            # no streaming here, so TTFT is the whole call
            self._finish(started, None, tokens)
        return parse_json_object(text)

    def close(self) -> None:
        self._llm.close()


def parse_json_object(text: str) -> dict:
    """Parses a model's JSON answer; cut-off or non-object output is LLMError("bad_output")."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LLMError("bad_output", f"invalid JSON ({exc.msg}): {text[:80]!r}") from exc
    if not isinstance(value, dict):
        raise LLMError("bad_output", f"expected a JSON object, got {type(value).__name__}")
    return value
