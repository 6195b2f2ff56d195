"""The LLM layer without a real model: factory fallbacks, the lock and stream logic of the
llama.cpp backend (with a fake Llama), and the OpenAI-compatible client (with a mock transport)."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant.llm.base import ChatMessage, FifoLock, LLMBackend, LLMError
from assistant.llm.factory import make_llm
from assistant.llm.none import NoLLM
from assistant.llm.openai_compat import OpenAICompatBackend
from assistant.settings import Settings

HELLO = [ChatMessage(role="user", content="你好")]
AGE_SCHEMA = {"type": "object", "properties": {"age_value": {"type": "number"}}, "required": ["age_value"]}


# ------------------------------------------------------------------ factory fallbacks


def test_backend_none_is_rules_only() -> None:
    llm = make_llm(Settings(llm_backend="none"))
    assert isinstance(llm, NoLLM) and isinstance(llm, LLMBackend)
    assert not llm.available() and llm.unavailable_reason == "disabled"
    with pytest.raises(LLMError) as info:
        list(llm.stream(HELLO))
    assert info.value.code == "disabled"
    with pytest.raises(LLMError):
        llm.complete_json(HELLO, AGE_SCHEMA)


def test_missing_model_file_falls_back_with_a_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    llm = make_llm(Settings(data_dir=tmp_path, llm_model="qwen2.5-coder-1.5b"))
    assert isinstance(llm, NoLLM) and llm.unavailable_reason == "model_missing"
    assert "daozhen models install" in llm.message
    assert "rules-only" in caplog.text

    explicit = make_llm(Settings(data_dir=tmp_path, llm_model_path=tmp_path / "nope.gguf"))
    assert explicit.unavailable_reason == "model_missing"


@pytest.mark.parametrize(
    "header", [b"", b"GGUF\x03\x00\x00\x00"], ids=["random-bytes", "gguf-header-then-junk"]
)
def test_corrupt_model_file_falls_back_without_crashing(tmp_path: Path, header: bytes) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(header + os.urandom(64 * 1024))
    llm = make_llm(Settings(data_dir=tmp_path, llm_model_path=junk))  # the second case reaches llama.cpp
    assert isinstance(llm, NoLLM)
    assert llm.unavailable_reason == "model_corrupt"
    assert not llm.available()


def test_known_model_with_wrong_size_is_corrupt_before_any_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "qwen2.5-coder-0.5b.gguf").write_bytes(b"GGUF" + b"\x00" * 100)

    def must_not_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("a file that fails its size check must not be loaded")

    monkeypatch.setattr("assistant.llm.llamacpp.LlamaCppBackend", must_not_load)
    llm = make_llm(Settings(data_dir=tmp_path, llm_model="qwen2.5-coder-0.5b"))
    assert llm.unavailable_reason == "model_corrupt"


def test_openai_backend_is_built_from_settings() -> None:
    llm = make_llm(Settings(llm_backend="openai", llm_base_url="http://127.0.0.1:9/v1/", llm_api_model="m"))
    assert isinstance(llm, OpenAICompatBackend)
    assert (llm.base_url, llm.model, llm.unavailable_reason) == ("http://127.0.0.1:9/v1", "m", None)


def test_llm_error_codes_and_messages() -> None:
    err = LLMError("timeout", "30 s")
    assert err.code == "timeout" and "超时" in str(err) and "timed out" in str(err) and "30 s" in str(err)
    free_text = LLMError("something odd happened")  # callers may wrap arbitrary messages
    assert free_text.code == "backend_error" and "something odd happened" in str(free_text)


# ------------------------------------------------------------------ FIFO lock


def test_fifo_lock_serves_waiters_in_arrival_order() -> None:
    lock = FifoLock()
    assert lock.acquire()
    order: list[int] = []

    def worker(i: int) -> None:
        lock.acquire()
        order.append(i)
        lock.release()

    threads = []
    for i in range(5):
        t = threading.Thread(target=worker, args=(i,))
        t.start()
        threads.append(t)
        while lock.waiting < i + 1:  # make arrival order deterministic
            time.sleep(0.001)
    lock.release()
    for t in threads:
        t.join(2)
    assert order == [0, 1, 2, 3, 4]


def test_fifo_lock_times_out_and_leaves_the_queue() -> None:
    lock = FifoLock()
    lock.acquire()
    assert lock.acquire(timeout=0.05) is False
    assert lock.waiting == 0
    lock.release()
    assert lock.acquire(timeout=0.05) is True


# ------------------------------------------------------------------ llama.cpp backend with a fake Llama


class FakeLlama:
    """Stands in for llama_cpp.Llama: streams numbered pieces and flags overlapping use."""

    active = 0
    overlaps = 0
    closed_streams = 0

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.cache: object = None

    def set_cache(self, cache: object) -> None:
        self.cache = cache

    def create_chat_completion(self, **kwargs: Any) -> Any:
        if kwargs.get("stream"):
            return self._chunks(kwargs["max_tokens"])
        content = json.dumps({"age_value": 2}) if kwargs.get("response_format") else "ok"
        return {"choices": [{"message": {"content": content}}], "usage": {"completion_tokens": 5}}

    def _chunks(self, n: int) -> Iterator[dict]:
        FakeLlama.active += 1
        FakeLlama.overlaps += FakeLlama.active > 1
        try:
            yield {"choices": [{"delta": {"role": "assistant"}}]}
            for i in range(n):
                time.sleep(0.002)
                yield {"choices": [{"delta": {"content": f"<{i}>"}}]}
        finally:
            FakeLlama.active -= 1
            FakeLlama.closed_streams += 1


@pytest.fixture()
def fake_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    import llama_cpp

    from assistant.llm.llamacpp import LlamaCppBackend

    FakeLlama.active = FakeLlama.overlaps = FakeLlama.closed_streams = 0
    monkeypatch.setattr(llama_cpp, "Llama", FakeLlama)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\x00" * 16)
    return LlamaCppBackend(model, n_ctx=2048, n_threads=1)


def test_llamacpp_passes_settings_and_sets_a_prefix_cache(fake_backend: Any) -> None:
    import llama_cpp

    kwargs = fake_backend._llm.kwargs
    assert (kwargs["n_ctx"], kwargs["n_threads"], kwargs["n_threads_batch"], kwargs["n_batch"]) == (
        2048,
        1,
        1,
        512,
    )
    assert "chat_format" not in kwargs and "rope_freq_base" not in kwargs  # both come from the GGUF
    assert isinstance(fake_backend._llm.cache, llama_cpp.LlamaRAMCache)


def test_llamacpp_stream_counts_tokens_and_cancel_stops_early(fake_backend: Any) -> None:
    assert "".join(fake_backend.stream(HELLO, max_tokens=4)) == "<0><1><2><3>"
    assert fake_backend.last_tokens == 4 and fake_backend.last_ttft_s is not None

    cancel = threading.Event()
    got = []
    for piece in fake_backend.stream(HELLO, max_tokens=1000, cancel=cancel):
        got.append(piece)
        cancel.set()
    assert got == ["<0>"]
    assert FakeLlama.active == 0 and FakeLlama.closed_streams == 2  # the underlying generator was closed
    assert fake_backend.tokens_generated == 5
    assert fake_backend.complete_json(HELLO, AGE_SCHEMA) == {"age_value": 2}  # the lock was released


def test_llamacpp_calls_from_many_threads_never_overlap(fake_backend: Any) -> None:
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append("".join(fake_backend.stream(HELLO, max_tokens=10))))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == ["".join(f"<{i}>" for i in range(10))] * 4
    assert FakeLlama.overlaps == 0


def test_llamacpp_busy_model_times_out_instead_of_waiting_forever(fake_backend: Any) -> None:
    fake_backend.timeout_s = 0.05
    holder = fake_backend.stream(HELLO, max_tokens=100)
    next(holder)  # a paused stream holds the model
    with pytest.raises(LLMError) as info:
        fake_backend.complete_json(HELLO, AGE_SCHEMA)
    assert info.value.code == "timeout"
    holder.close()
    assert fake_backend.complete_json(HELLO, AGE_SCHEMA) == {"age_value": 2}


def test_llamacpp_json_that_is_not_an_object_is_bad_output(
    fake_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        fake_backend._llm,
        "create_chat_completion",
        lambda **kw: {"choices": [{"message": {"content": '{"age_value": 2'}}], "usage": {}},
    )
    with pytest.raises(LLMError) as info:
        fake_backend.complete_json(HELLO, AGE_SCHEMA)
    assert info.value.code == "bad_output"


# ------------------------------------------------------------------ OpenAI-compatible client (mock transport)


def _sse(pieces: list[str]) -> bytes:
    events = [{"choices": [{"delta": {"role": "assistant"}}]}]
    events += [{"choices": [{"delta": {"content": p}}]} for p in pieces]
    lines = (
        [": keep-alive"] + [f"data: {json.dumps(e, ensure_ascii=False)}" for e in events] + ["data: [DONE]"]
    )
    return ("\n\n".join(lines) + "\n\n").encode()


def _client(handler: Any) -> OpenAICompatBackend:
    return OpenAICompatBackend("http://llm.test/v1", "m", 5.0, transport=httpx.MockTransport(handler))


def test_openai_stream_parses_sse_and_json_uses_the_schema() -> None:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        assert request.url.path == "/v1/chat/completions"
        if body.get("stream"):
            return httpx.Response(200, content=_sse(["你", "好", "！"]))
        return httpx.Response(200, json={"choices": [{"message": {"content": '{"age_value": 3}'}}]})

    llm = _client(handler)
    assert list(llm.stream(HELLO, max_tokens=8, stop=["\n"])) == ["你", "好", "！"]
    assert llm.last_tokens == 3
    assert llm.complete_json(HELLO, AGE_SCHEMA, max_tokens=16) == {"age_value": 3}
    assert (
        seen[0]["max_tokens"] == 8
        and seen[0]["stop"] == ["\n"]
        and seen[0]["messages"][0]["content"] == "你好"
    )
    assert seen[1]["response_format"] == {"type": "json_object", "schema": AGE_SCHEMA}


def test_openai_cancel_stops_reading() -> None:
    llm = _client(lambda request: httpx.Response(200, content=_sse([str(i) for i in range(50)])))
    cancel = threading.Event()
    got = []
    for piece in llm.stream(HELLO, cancel=cancel):
        got.append(piece)
        if len(got) == 2:
            cancel.set()
    assert got == ["0", "1"]


@pytest.mark.parametrize(
    ("exc", "code"),
    [(httpx.ReadTimeout("slow"), "timeout"), (httpx.ConnectError("refused"), "backend_error")],
)
def test_openai_transport_errors_become_llm_errors(exc: Exception, code: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    llm = _client(handler)
    with pytest.raises(LLMError) as info:
        list(llm.stream(HELLO))
    assert info.value.code == code
    with pytest.raises(LLMError) as info:
        llm.complete_json(HELLO, AGE_SCHEMA)
    assert info.value.code == code


def test_openai_http_errors_and_bad_bodies() -> None:
    llm = _client(lambda request: httpx.Response(500, text="model crashed"))
    with pytest.raises(LLMError) as info:
        list(llm.stream(HELLO))
    assert info.value.code == "backend_error" and "500" in str(info.value)

    llm = _client(
        lambda request: httpx.Response(200, json={"choices": [{"message": {"content": "not json"}}]})
    )
    with pytest.raises(LLMError) as info:
        llm.complete_json(HELLO, AGE_SCHEMA)
    assert info.value.code == "bad_output"


def test_openai_connection_refused_on_a_real_socket() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    llm = OpenAICompatBackend(f"http://127.0.0.1:{port}/v1", "m", 2.0)
    assert llm.available() is False
    with pytest.raises(LLMError) as info:
        list(llm.stream(HELLO))
    assert info.value.code == "backend_error"
