"""The kiosk REST routes (server/kiosk/routes.py) on a small app: config, speech in and out with the
real engines, the visit-plan QR code, and bad input answered with coded zh/en errors."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import segno
from fastapi import FastAPI
from fastapi.testclient import TestClient

from assistant.settings import Settings
from server.kiosk import KioskRuntime, router
from server.kiosk.qr import MAX_QR_CHARS, parse_plan_text
from server.kiosk.routes import MAX_AUDIO_BYTES

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

PLAN = {
    "clinic_id": "demo-general-hospital",
    "department_id": "dermatology",
    "slot_start": "2026-11-24T09:30:00+08:00",
    "room_id": "clinic_dermatology",
    "appointment_id": "a-7f3k",
    "visit_id": "v-19xq",
    "steps": ["registered", "waiting", "consultation", "pharmacy"],
}


def make_client(settings: Settings) -> TestClient:
    app = FastAPI()
    app.state.kiosk = KioskRuntime(settings)
    app.include_router(router)
    return TestClient(app)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("kiosk-api"), kiosk_idle_s=42, llm_backend="none")
    with make_client(settings) as c:
        yield c


def svg_matrix(svg: str) -> list[list[bool]]:
    """The dark modules of a segno SVG path ("M4 4.5h7m5 0h1..."): rows of booleans incl. the border."""
    size = int(re.search(r'width="(\d+)"', svg).group(1)) // 8  # type: ignore[union-attr]
    grid = [[False] * size for _ in range(size)]
    path = re.search(r' d="([^"]+)"', svg.split("qrline", 1)[1]).group(1)  # type: ignore[union-attr]
    x = y = 0.0
    for command, numbers in re.findall(r"([MmHhVv])([-\d. ]+)", path):
        values = [float(v) for v in numbers.split()]
        if command == "M":
            x, y = values
        elif command == "m":
            x, y = x + values[0], y + values[1]
        elif command == "h":
            for column in range(int(x), int(x + values[0])):
                grid[int(y)][column] = True
            x += values[0]
    return grid


# ---------------------------------------------------------------------------- config


def test_config_tells_the_page_its_timers_clinic_and_voice_features(client: TestClient) -> None:
    config = client.get("/api/kiosk/config").json()
    assert config["idle_s"] == 42
    assert 2 <= config["warn_s"] < config["idle_s"]
    assert config["clinic"]["id"] == "demo-general-hospital"
    assert config["entrance"] == "entrance_main" and config["emergency_room"] == "emergency_room"
    assert config["stt"]["backend"] == "faster-whisper" and config["stt"]["languages"] == ["en"]
    assert config["tts"]["available"] is (shutil.which("espeak-ng") is not None)


def test_opening_the_kiosk_page_warms_the_speech_model_in_the_background(tmp_path: Path) -> None:
    with make_client(Settings(data_dir=tmp_path)) as c:
        runtime: KioskRuntime = c.app.state.kiosk  # type: ignore[attr-defined]
        assert runtime.stt.status()["state"] == "not_loaded"  # app start alone loads nothing
        first = c.get("/api/kiosk/config").json()
        assert first["stt"]["state"] in ("not_loaded", "loading", "ready")
        deadline = time.monotonic() + 60
        while runtime.stt.status()["state"] != "ready" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert c.get("/api/kiosk/config").json()["stt"]["state"] == "ready"


def test_config_with_voice_switched_off(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, stt_backend="none", tts_backend="none")
    with make_client(settings) as c:
        config = c.get("/api/kiosk/config").json()
        assert config["stt"]["available"] is False and config["tts"]["available"] is False
        answer = c.post("/api/kiosk/stt", content=b"RIFF....")
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "stt_unavailable"
        assert "请直接打字" in answer.json()["error"]["message"]
        spoken = c.post("/api/kiosk/tts?lang=en", json={"text": "hello", "lang": "en"})
        assert spoken.status_code == 503 and spoken.json()["error"]["code"] == "tts_unavailable"
        assert "switched off" in spoken.json()["error"]["message"]


# ---------------------------------------------------------------------------- speech


@needs_espeak
def test_speech_out_then_in_through_the_api(client: TestClient) -> None:
    spoken = client.post(
        "/api/kiosk/tts", json={"text": "I have a headache and a fever since yesterday.", "lang": "en"}
    )
    assert spoken.status_code == 200
    assert spoken.headers["content-type"] == "audio/wav"
    assert spoken.headers["cache-control"] == "no-store"
    assert spoken.content[:4] == b"RIFF"
    heard = client.post(
        "/api/kiosk/stt?lang=en", content=spoken.content, headers={"Content-Type": "audio/wav"}
    )
    assert heard.status_code == 200, heard.text
    body = heard.json()
    assert "headache" in body["text"].lower() and "fever" in body["text"].lower()
    assert body["language"] == "en" and body["seconds"] > 1


@needs_espeak
def test_mandarin_tts_over_the_api(client: TestClient) -> None:
    spoken = client.post("/api/kiosk/tts", json={"text": "请到三楼皮肤科。", "lang": "zh"})
    assert spoken.status_code == 200 and len(spoken.content) > 10_000


@pytest.mark.parametrize("audio", [b"", b"definitely not audio", bytes(range(256)) * 8])
def test_empty_or_garbage_audio_is_422_bad_audio(client: TestClient, audio: bytes) -> None:
    answer = client.post("/api/kiosk/stt?lang=en", content=audio)
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "bad_audio"
    assert "recording" in answer.json()["error"]["message"]


def test_error_language_follows_accept_language(client: TestClient) -> None:
    zh = client.post("/api/kiosk/stt", content=b"xx").json()["error"]["message"]
    en = client.post("/api/kiosk/stt", content=b"xx", headers={"Accept-Language": "en-GB"}).json()["error"][
        "message"
    ]
    assert "录音" in zh and "recording" in en


def test_oversized_audio_is_413(client: TestClient) -> None:
    answer = client.post("/api/kiosk/stt", content=b"\0" * (MAX_AUDIO_BYTES + 1))
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "body_too_large"


@needs_espeak
def test_chinese_speech_with_the_english_only_model_says_so(client: TestClient) -> None:
    spoken = client.post("/api/kiosk/tts", json={"text": "hello there, I feel sick", "lang": "en"}).content
    answer = client.post("/api/kiosk/stt?lang=zh", content=spoken)
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "stt_language"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"text": "x" * 700, "lang": "en"}, 422, "text_too_long"),
        ({"text": "  ", "lang": "zh"}, 422, "empty_text"),
        ({"text": 5, "lang": "zh"}, 422, "invalid_field"),
        ({"text": "hi", "lang": "fr"}, 422, "invalid_field"),
        ([1, 2], 400, "bad_json"),
    ],
)
def test_tts_bad_input(client: TestClient, body: object, status: int, code: str) -> None:
    answer = client.post("/api/kiosk/tts", json=body)
    assert answer.status_code == status and answer.json()["error"]["code"] == code


def test_tts_body_that_is_not_json(client: TestClient) -> None:
    answer = client.post("/api/kiosk/tts", content=b"{not json")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_json"


# ---------------------------------------------------------------------------- QR


def test_qr_svg_encodes_the_plan_ids(client: TestClient) -> None:
    answer = client.post("/api/kiosk/qr?lang=en", json={"plan": PLAN})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("image/svg+xml")
    text = answer.headers["x-plan-text"]
    assert parse_plan_text(text) == {
        "clinic_id": "demo-general-hospital",
        "department_id": "dermatology",
        "slot_start": "2026-11-24T09:30+08:00",
        "room_id": "clinic_dermatology",
        "appointment_id": "a-7f3k",
        "visit_id": "v-19xq",
        "steps": ["registered", "waiting", "consultation", "pharmacy"],
    }
    # The drawn modules are exactly the QR symbol of that text (so any phone reads the plan back).
    expected = segno.make(text, error="m", micro=False)
    drawn = svg_matrix(answer.text)
    want = [[bool(v) for v in row] for row in expected.matrix_iter(scale=1, border=4)]
    assert drawn == want
    assert "Daozhen visit plan" in answer.text


@pytest.mark.parametrize(
    ("plan", "code"),
    [
        ({"department_id": "dermatology"}, "bad_plan"),
        ({**PLAN, "room_id": "room;DROP"}, "bad_plan"),
        ({**PLAN, "steps": "registered"}, "bad_plan"),
        ({**PLAN, "slot_start": "next tuesday"}, "bad_plan"),
        ({**PLAN, "steps": [f"step_{n:02d}_" + "x" * 70 for n in range(12)]}, "plan_too_long"),
    ],
)
def test_qr_bad_plans_are_422(client: TestClient, plan: dict[str, object], code: str) -> None:
    answer = client.post("/api/kiosk/qr", json={"plan": plan})
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == code
    assert len("".join(plan.get("steps", []))) < 2000 or code == "plan_too_long"  # type: ignore[arg-type]


def test_qr_text_stays_within_the_limit(client: TestClient) -> None:
    plan = {**PLAN, "steps": [f"s{n}" for n in range(30)]}
    answer = client.post("/api/kiosk/qr", json={"plan": plan})
    assert answer.status_code == 200
    assert len(answer.headers["x-plan-text"]) <= MAX_QR_CHARS
