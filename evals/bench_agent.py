"""Agent benchmarks for `make bench`: card latency, time-to-first-token at turn 1 and turn 8 with a
warm prefix, agent vs raw llama.cpp tokens/s on the same model and prompt, and peak RSS.

The model sections are skipped (with a note) when no local model is installed.
"""

from __future__ import annotations

import asyncio
import resource
import time
from dataclasses import replace

from evals.bench import BenchConfig, BenchRow, summarise, time_calls
from evals.triage_eval import load_cases

# A non-emergency conversation of 8 user turns (answers to the engine's questions, then more detail).
SCRIPT_ZH = [
    "孩子4岁，拉肚子两天了，还能玩",
    "没有",
    "没有",
    "没有",
    "尿也正常",
    "今天吃了点粥",
    "没有吐",
    "还要注意什么？孩子拉肚子",
]
REPEATS = 2


def _no_llm_service():  # noqa: ANN202 - local helper
    from assistant.agent.pipeline import ChatService
    from assistant.llm.none import NoLLM
    from assistant.settings import Settings

    return ChatService(Settings(), NoLLM(), kb=None)


def _first_card_ns(service, text: str) -> int:  # noqa: ANN001
    from assistant.session import ConversationSession

    async def run() -> int:
        started = time.perf_counter_ns()
        async for event in service.turn(ConversationSession(), text):
            if event.type == "card":
                return time.perf_counter_ns() - started
        return time.perf_counter_ns() - started

    return asyncio.run(run())


def bench_card_latency(config: BenchConfig) -> list[BenchRow]:
    service = _no_llm_service()
    texts = [c.text for c in load_cases(config.data).cases]
    iterations = min(config.iterations, 600)
    samples = [_first_card_ns(service, texts[i % len(texts)]) for i in range(iterations)]
    wall = sum(samples) / 1e9
    row = summarise("agent", "card latency (message->card)", samples, wall, budget_p95_ms=100.0)
    return [replace(row, note="rules-only path; the LLM never delays the card")]


def bench_llm(config: BenchConfig) -> list[BenchRow]:
    from assistant.llm.factory import make_llm
    from assistant.settings import Settings

    settings = Settings(llm_max_reply_tokens=48, llm_timeout_s=300)
    load_started = time.perf_counter()
    llm = make_llm(settings)
    load_s = time.perf_counter() - load_started
    if not llm.available():
        return [_note_row("llm", f"skipped: {getattr(llm, 'unavailable_reason', 'no model')}")]
    from assistant.agent.pipeline import ChatService
    from assistant.session import ConversationSession

    service = ChatService(settings, llm, kb=None)
    turn1, turn8 = [], []
    for _ in range(REPEATS):
        session = ConversationSession()
        for number, text in enumerate(SCRIPT_ZH, start=1):
            asyncio.run(_drain(service, session, text))
            stats = service.last_stats
            if stats.first_token_s is not None:
                (turn1 if number == 1 else turn8 if number == 8 else []).append(stats.first_token_s * 1e9)

    # decode rate through the agent vs raw llama.cpp, same model, same prompt, alternating
    raw_rates, agent_rates = _decode_rates(service, llm)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = []
    for name, samples in (("TTFT turn 1 (warm prefix)", turn1), ("TTFT turn 8 (warm prefix)", turn8)):
        if samples:
            rows.append(replace(summarise("llm", name, samples, sum(samples) / 1e9), note=llm.name))
    agent = sum(agent_rates) / len(agent_rates) if agent_rates else 0.0
    raw = sum(raw_rates) / len(raw_rates) if raw_rates else 0.0
    ratio = agent / raw if raw else 0.0
    rows.append(_note_row("llm", f"tokens/s agent {agent:.1f} / raw {raw:.1f} = {ratio:.2f} (target >= 0.9)"))
    info = f"model load {load_s:.1f} s; peak RSS {rss_mb:,.0f} MB; threads {settings.llm_threads}"
    rows.append(_note_row("llm", info))
    service.close()
    return rows


async def _drain(service, session, text: str) -> None:  # noqa: ANN001
    async for _event in service.turn(session, text):
        pass


def _decode_rates(service, llm) -> tuple[list[float], list[float]]:  # noqa: ANN001
    from assistant.agent.compose import card_messages
    from assistant.agent.pipeline import TurnStats
    from tools.triage_models import Level

    card = {
        "level_label": "近期门诊就诊",
        "care_setting_label": "医院门诊",
        "departments": [{"name": "儿科"}],
        "red_flags": [],
        "question": None,
    }
    messages = card_messages(card, "孩子拉肚子两天了还能玩，要注意什么？", [], "zh")

    def raw() -> float:
        pieces, first = 0, None
        for _piece in llm.stream(messages, max_tokens=64):
            pieces += 1
            first = first or time.perf_counter()
        return (pieces - 1) / (time.perf_counter() - first) if first and pieces > 1 else 0.0

    async def agent() -> float:
        stats = TurnStats()
        async for _event in service._stream_checked(
            "bench",
            messages,
            Level.routine,
            fallback="-",
            prefix="",
            suffix="",
            cancel=None,
            stats=stats,
            started=time.perf_counter(),
        ):
            pass
        return stats.tokens / stats.generation_s if stats.generation_s else 0.0

    raw_rates, agent_rates = [], []
    for _ in range(3):
        raw_rates.append(raw())
        agent_rates.append(asyncio.run(agent()))
    return raw_rates, agent_rates


def _note_row(section: str, note: str) -> BenchRow:
    return BenchRow(section, "(info)", 0, 0.0, 0.0, 0.0, 0.0, 0.0, note=note)


def bench_peak_rss_engine(config: BenchConfig) -> list[BenchRow]:
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return [_note_row("process", f"peak RSS so far {rss_mb:,.0f} MB")]


AGENT_BENCHES = [bench_card_latency, bench_llm]

__all__ = ["AGENT_BENCHES", "time_calls"]


# --------------------------------------------------------------------------- websocket load

WS_SESSIONS = 50
WS_SCRIPTS = [
    ["孩子3岁，发烧两天了", "不知道", "没有"],
    ["I have had an itchy rash on my arm for a week", "no", "don't know"],
    ["我胸口剧痛，出冷汗", "还是很痛", "怎么办"],
    ["my 70 year old mother has a cough and a fever of 38.5", "no", "yes"],
    ["头痛两天了，有点恶心", "没有", "不知道"],
]


def bench_ws_concurrency(config: BenchConfig) -> list[BenchRow]:
    """50 websocket sessions at once against a real uvicorn on loopback; every turn must come back
    whole (card, tokens, done) and in order. Rules-only chat service, so this measures the server."""
    import json
    import socket
    import tempfile
    import threading
    from types import SimpleNamespace

    import uvicorn
    import websockets

    from assistant.settings import Settings
    from server import uvicorn_options
    from server.app import create_app
    from server.rules_chat import RulesOnlyChatService

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=tmp, ws_rate_per_minute=600, ws_heartbeat_s=30.0)
        app = create_app(
            settings,
            chat_service=RulesOnlyChatService(),
            knowledge_loader=lambda s: SimpleNamespace(knowledge_version="bench"),
        )
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(app, **{**uvicorn_options(settings), "port": port, "log_level": "warning"})
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        card_ns: list[int] = []
        problems: list[str] = []

        async def next_message(ws) -> dict:  # noqa: ANN001
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if message["type"] not in ("ping", "pong"):
                    return message

        async def one(index: int) -> int:
            script = WS_SCRIPTS[index % len(WS_SCRIPTS)]
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws/chat") as ws:
                await ws.send(json.dumps({"type": "hello", "protocol": "daozhen.chat.v1"}))
                await next_message(ws)
                received = 0
                for n, text in enumerate(script):
                    sent = time.perf_counter_ns()
                    await ws.send(
                        json.dumps({"type": "user_text", "text": text, "client_msg_id": f"{index}-{n}"})
                    )
                    turn = []
                    while not turn or turn[-1]["type"] not in ("done", "error"):
                        turn.append(await next_message(ws))
                        if len(turn) == 1:
                            card_ns.append(time.perf_counter_ns() - sent)
                    kinds = [m["type"] for m in turn]
                    ordered = kinds[0] == "card" and kinds[-1] == "done" and set(kinds[1:-1]) <= {"token"}
                    whole = "".join(m.get("text", "") for m in turn if m["type"] == "token") == turn[-1].get(
                        "text"
                    )
                    if not (ordered and whole and turn[-1].get("client_msg_id") == f"{index}-{n}"):
                        problems.append(f"session {index} turn {n}: {kinds}")
                    received += len(turn)
                return received

        async def run_all() -> list[int]:
            return await asyncio.gather(*(one(i) for i in range(WS_SESSIONS)))

        started = time.perf_counter()
        try:
            counts = asyncio.run(run_all())
        finally:
            server.should_exit = True
            thread.join(15)
        wall = time.perf_counter() - started
    row = summarise("websocket", f"{WS_SESSIONS} sessions: send->card", card_ns, wall)
    note = (
        f"{sum(counts)} messages, {len(problems)} lost/misordered turns of {WS_SESSIONS * 3}; "
        f"all done in {wall:.1f} s"
    )
    return [replace(row, note=note)]


AGENT_BENCHES.insert(1, bench_ws_concurrency)


# --------------------------------------------------------------------------- fever: form push


def bench_fever_form_push(config: BenchConfig) -> list[BenchRow]:
    """A parent sends a pre-consultation form; time until the clinician's websocket receives it."""
    import tempfile
    from datetime import date, timedelta
    from types import SimpleNamespace

    from fastapi.testclient import TestClient

    from assistant.settings import Settings
    from server.app import create_app
    from server.rules_chat import RulesOnlyChatService

    api = "/api/fever"
    samples: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            Settings(data_dir=tmp, clinic_code="bench-code"),
            chat_service=RulesOnlyChatService(),
            knowledge_loader=lambda s: SimpleNamespace(knowledge_version="bench"),
        )
        with TestClient(app) as client:

            def account(name: str, role: str) -> dict:
                body = {"role": role, "username": name, "password": "bench password"}
                if role == "clinician":
                    body["clinic_code"] = "bench-code"
                return client.post(f"{api}/accounts", json=body).json()

            doctor, family = account("dr.bench", "clinician"), account("parent.bench", "family")
            headers = {"Authorization": f"Bearer {family['token']}"}
            born = (date.today() - timedelta(days=730)).isoformat()
            child = client.post(
                f"{api}/children", json={"name": "b", "birth_date": born}, headers=headers
            ).json()
            client.post(f"{api}/children/{child['child_id']}/readings", json={"value": 39.0}, headers=headers)
            with client.websocket_connect(f"/ws/fever?token={doctor['token']}") as ws:
                ws.receive_json()  # ready
                for _ in range(20):
                    form = client.post(
                        f"{api}/children/{child['child_id']}/form", json={}, headers=headers
                    ).json()
                    started = time.perf_counter_ns()
                    client.post(f"{api}/forms/{form['form_id']}/send", json={}, headers=headers)
                    while ws.receive_json()["type"] != "form":
                        pass
                    samples.append(time.perf_counter_ns() - started)
    row = summarise("fever", "form send -> clinician push", samples, sum(samples) / 1e9, budget_p95_ms=1000.0)
    return [replace(row, note="in-process app, websocket push to the clinic's clinicians")]


AGENT_BENCHES.insert(2, bench_fever_form_push)
