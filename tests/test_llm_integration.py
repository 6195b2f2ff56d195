"""The LLM backends on the real small model (Qwen2.5-Coder-0.5B), in process and behind
llama.cpp's OpenAI-compatible server. Marked `llm`; skipped with a reason when the model is
not installed (`daozhen models install qwen2.5-coder-0.5b`). Every generation is ≤ 32 tokens.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from assistant.llm.base import ChatMessage, LLMError
from assistant.models import MODELS
from assistant.settings import Settings

pytestmark = pytest.mark.llm

SMALL = MODELS["qwen2.5-coder-0.5b"]
CJK = re.compile(r"[\u4e00-\u9fff]")
AGE_SCHEMA = {
    "type": "object",
    "properties": {
        "age_value": {"type": "number"},
        "age_unit": {"type": "string", "enum": ["days", "weeks", "months", "years"]},
    },
    "required": ["age_value", "age_unit"],
}
ZH_QUESTION = [
    ChatMessage(role="system", content="你是医院导诊助手，请用中文简短回答。"),
    ChatMessage(role="user", content="孩子发烧了，应该挂哪个科？"),
]
AGE_MESSAGES = [
    ChatMessage(role="system", content="Extract the patient's age as a value and a unit."),
    ChatMessage(role="user", content="我儿子三岁，昨天开始咳嗽"),
]


def _small_model_path() -> Path:
    override = os.environ.get("DAOZHEN_TEST_SMALL_MODEL")
    path = Path(override) if override else Settings().models_dir / SMALL.filename()
    if not path.is_file() or path.stat().st_size != SMALL.size:
        pytest.skip(f"small model not installed at {path}: run `daozhen models install {SMALL.name}`")
    return path


@pytest.fixture(scope="module")
def small_llm() -> Iterator[object]:
    from assistant.llm.llamacpp import LlamaCppBackend

    llm = LlamaCppBackend(_small_model_path(), n_ctx=2048, n_threads=1, timeout_s=120)
    yield llm
    llm.close()


def _check_age(answer: dict) -> None:
    assert isinstance(answer["age_value"], int | float)
    assert answer["age_unit"] in {"days", "weeks", "months", "years"}


def test_stream_answers_a_chinese_question_in_chinese(small_llm) -> None:
    text = "".join(small_llm.stream(ZH_QUESTION, max_tokens=24))
    assert CJK.search(text), text
    assert small_llm.last_tokens > 0 and small_llm.last_ttft_s is not None


def test_complete_json_fills_the_schema(small_llm) -> None:
    _check_age(small_llm.complete_json(AGE_MESSAGES, AGE_SCHEMA, max_tokens=32))


def test_cancel_stops_a_stream_early_and_the_model_stays_usable(small_llm) -> None:
    cancel = threading.Event()
    pieces = []
    for piece in small_llm.stream(ZH_QUESTION, max_tokens=32, cancel=cancel):
        pieces.append(piece)
        cancel.set()
    assert len(pieces) == 1 and small_llm.last_tokens == 1
    assert CJK.search("".join(small_llm.stream(ZH_QUESTION, max_tokens=8)))


def test_concurrent_calls_are_serialized(small_llm) -> None:
    spans: list[tuple[float, float]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            stamps = [time.perf_counter() for _ in small_llm.stream(ZH_QUESTION, max_tokens=12)]
            spans.append((stamps[0], stamps[-1]))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(spans) == 2
    first, second = sorted(spans)
    assert first[1] <= second[0], "two streams ran on the model at the same time"


# ------------------------------------------------------------------ OpenAI-compatible server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = _small_model_path()
    try:
        import llama_cpp.server.app  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"llama_cpp.server needs extra packages (sse-starlette, starlette-context): {exc}")
    port = _free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--n_ctx", "2048", "--n_threads", "1", "--n_threads_batch", "1"]
    # the server logs a lot: a file, not a pipe, so it can never block on a full pipe
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-500:]
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {tail}")
            try:
                if httpx.get(f"{base_url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer /v1/models within 90 s: {log_path}")
            time.sleep(0.3)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_openai_backend_against_a_real_llama_cpp_server(llama_server: str) -> None:
    from assistant.llm.openai_compat import OpenAICompatBackend

    llm = OpenAICompatBackend(llama_server, "local", timeout=120)
    try:
        assert llm.available()
        text = "".join(llm.stream(ZH_QUESTION, max_tokens=24))
        assert CJK.search(text), text
        assert llm.last_tokens > 1
        _check_age(llm.complete_json(AGE_MESSAGES, AGE_SCHEMA, max_tokens=32))

        cancel = threading.Event()
        pieces = []
        for piece in llm.stream(ZH_QUESTION, max_tokens=32, cancel=cancel):
            pieces.append(piece)
            cancel.set()
        assert len(pieces) == 1
    finally:
        llm.close()


def test_openai_backend_reports_a_server_that_is_gone() -> None:
    from assistant.llm.openai_compat import OpenAICompatBackend

    llm = OpenAICompatBackend(f"http://127.0.0.1:{_free_port()}/v1", "local", timeout=2)
    with pytest.raises(LLMError) as info:
        llm.complete_json(AGE_MESSAGES, AGE_SCHEMA)
    assert info.value.code == "backend_error"


def test_factory_loads_the_installed_small_model(tmp_path: Path) -> None:
    from assistant.llm.factory import make_llm
    from assistant.llm.llamacpp import LlamaCppBackend

    path = _small_model_path()
    llm = make_llm(Settings(llm_model_path=path, llm_ctx=512, llm_threads=1))
    try:
        assert isinstance(llm, LlamaCppBackend) and llm.available() and llm.unavailable_reason is None
    finally:
        llm.close()
