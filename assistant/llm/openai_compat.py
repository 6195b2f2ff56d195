"""Backend for any OpenAI-compatible chat server (llama.cpp server, vLLM, Ollama).

This is how a deployment scales out: the server process owns the model and its queue, so
this client holds no lock. JSON output uses llama.cpp's `response_format`
{"type": "json_object", "schema": ...} by default; servers that follow OpenAI's newer
{"type": "json_schema", ...} form (vLLM, Ollama) get it with json_format="json_schema".
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

import httpx

from assistant.llm.base import ChatMessage, GenerationCounters, LLMError, as_dicts
from assistant.llm.llamacpp import parse_json_object

AVAILABILITY_TTL_S = 10.0


class OpenAICompatBackend(GenerationCounters):
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str = "local",
        timeout: float = 60.0,
        *,
        api_key: str | None = None,
        json_format: Literal["json_object", "json_schema"] = "json_object",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.json_format = json_format
        self.unavailable_reason: str | None = None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # connect fails fast; read is the longest silence allowed between streamed tokens
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)), headers=headers, transport=transport
        )
        self._checked_at = 0.0
        self._reachable = False

    def available(self) -> bool:
        """Whether the server answers GET /models (cached for a few seconds)."""
        now = time.monotonic()
        if now - self._checked_at > AVAILABILITY_TTL_S:
            try:
                self._reachable = self._client.get(f"{self.base_url}/models", timeout=2.0).status_code == 200
            except httpx.HTTPError:
                self._reachable = False
            self._checked_at = now
        return self._reachable

    def _payload(self, messages: list[ChatMessage], **extra: Any) -> dict[str, Any]:
        return {"model": self.model, "messages": as_dicts(messages), **extra}

    def stream(
        self,
        messages: list[ChatMessage],
        *,
        max_tokens: int = 256,
        temperature: float = 0.2,
        stop: list[str] | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        payload = self._payload(messages, max_tokens=max_tokens, temperature=temperature, stream=True)
        if stop:
            payload["stop"] = stop
        started = time.perf_counter()
        first_at: float | None = None
        tokens = 0
        try:
            with self._client.stream("POST", f"{self.base_url}/chat/completions", json=payload) as response:
                _raise_for_status(response)
                for data in _sse_data(response):
                    if cancel is not None and cancel.is_set():
                        break  # leaving the block closes the connection; the server stops generating
                    if data == "[DONE]":
                        break
                    piece = _delta_content(data)
                    if not piece:
                        continue
                    tokens += 1
                    if first_at is None:
                        first_at = time.perf_counter()
                    yield piece
        except httpx.HTTPError as exc:
            raise _translate(exc) from exc
        finally:
            self._finish(started, first_at, tokens)

    def complete_json(self, messages: list[ChatMessage], schema: dict, *, max_tokens: int = 256) -> dict:
        if self.json_format == "json_schema":
            fmt: dict[str, Any] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
        else:
            fmt = {"type": "json_object", "schema": schema}
        payload = self._payload(messages, max_tokens=max_tokens, temperature=0.0, response_format=fmt)
        started = time.perf_counter()
        tokens = 0
        try:
            response = self._client.post(f"{self.base_url}/chat/completions", json=payload)
            _raise_for_status(response)
            body = response.json()
            tokens = int((body.get("usage") or {}).get("completion_tokens") or 0)
            text = body["choices"][0]["message"]["content"] or ""
        except httpx.HTTPError as exc:
            raise _translate(exc) from exc
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMError("bad_output", f"unexpected response shape: {exc}") from exc
        finally:
            self._finish(started, None, tokens)
        return parse_json_object(text)

    def close(self) -> None:
        self._client.close()


def _sse_data(response: httpx.Response) -> Iterator[str]:
    """The payloads of `data:` lines of a server-sent-event stream (comments and other fields skipped)."""
    for line in response.iter_lines():
        if line.startswith("data:"):
            yield line[5:].strip()


def _delta_content(data: str) -> str | None:
    try:
        event = json.loads(data)
        if "error" in event:
            raise LLMError("backend_error", str(event["error"])[:200])
        choices = event.get("choices") or []
        return (choices[0].get("delta") or {}).get("content") if choices else None
    except (ValueError, AttributeError, IndexError) as exc:
        raise LLMError("bad_output", f"bad stream event: {data[:80]!r}") from exc


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code >= 400:
        response.read()
        raise LLMError("backend_error", f"HTTP {response.status_code}: {response.text[:200]}")


def _translate(exc: httpx.HTTPError) -> LLMError:
    if isinstance(exc, httpx.TimeoutException):
        return LLMError("timeout", f"{type(exc).__name__}")
    return LLMError("backend_error", f"{type(exc).__name__}: {exc}")
