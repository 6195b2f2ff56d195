"""Text to speech for the kiosk: espeak-ng on the server (Mandarin and English, offline) or none.

The text goes to espeak-ng on stdin, never as an argument, so a visitor's words cannot become
command-line options. Robotic but understandable; a kiosk may use the browser's voice instead.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from typing import TYPE_CHECKING, Any, Protocol

from server.kiosk.errors import KioskError

if TYPE_CHECKING:
    from assistant.settings import Settings

MAX_TTS_CHARS = 600
TTS_TIMEOUT_S = 15.0
# espeak-ng voices: "cmn" speaks Mandarin (latin letters as English), "en" English.
VOICES = {"zh": "cmn", "en": "en"}
# Words per minute: a little slower than espeak's 175 default, for a noisy lobby.
SPEED_WPM = {"zh": 150, "en": 150}


class TextToSpeech(Protocol):
    name: str

    def status(self) -> dict[str, Any]: ...

    def synthesize(self, text: str, lang: str) -> bytes:
        """-> WAV bytes; raises KioskError (empty_text, text_too_long, tts_unavailable, tts_failed)."""
        ...


def check_text(text: str, limit: int = MAX_TTS_CHARS) -> str:
    cleaned = " ".join(text.split())
    if not cleaned:
        raise KioskError("empty_text")
    if len(cleaned) > limit:
        raise KioskError("text_too_long", size=len(cleaned), limit=limit)
    return cleaned


class NoTTS:
    name = "none"

    def __init__(
        self,
        reason_zh: str = "朗读已在设置中关闭",
        reason_en: str = "reading aloud is switched off in the settings",
    ) -> None:
        self.reason_zh, self.reason_en = reason_zh, reason_en

    def status(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "available": False,
            "languages": [],
            "reason": {"zh": self.reason_zh, "en": self.reason_en},
        }

    def synthesize(self, text: str, lang: str) -> bytes:
        raise KioskError("tts_unavailable", reason_zh=self.reason_zh, reason_en=self.reason_en)


class EspeakTTS:
    name = "espeak-ng"

    def __init__(
        self, binary: str = "espeak-ng", *, timeout_s: float = TTS_TIMEOUT_S, max_chars: int = MAX_TTS_CHARS
    ) -> None:
        self.binary, self.timeout_s, self.max_chars = binary, timeout_s, max_chars

    def executable(self) -> str | None:
        return shutil.which(self.binary)

    def status(self) -> dict[str, Any]:
        found = self.executable() is not None
        status: dict[str, Any] = {
            "backend": self.name,
            "available": found,
            "languages": list(VOICES) if found else [],
        }
        if not found:
            status["reason"] = {"zh": "未安装 espeak-ng", "en": "espeak-ng is not installed"}
        return status

    def synthesize(self, text: str, lang: str) -> bytes:
        cleaned = check_text(text, self.max_chars)
        voice = VOICES.get(lang, VOICES["zh"])
        executable = self.executable()
        if executable is None:
            raise KioskError(
                "tts_unavailable", reason_zh="未安装 espeak-ng", reason_en="espeak-ng is not installed"
            )
        command = [executable, "-v", voice, "-s", str(SPEED_WPM.get(lang, 150)), "--stdin", "--stdout"]
        try:
            done = subprocess.run(
                command,
                input=cleaned.encode("utf-8"),
                capture_output=True,
                timeout=self.timeout_s,
                check=False,
            )
        except (subprocess.TimeoutExpired, OSError) as exc:
            raise KioskError("tts_failed") from exc
        wav = done.stdout
        if done.returncode != 0 or len(wav) <= 44 or wav[:4] != b"RIFF":  # 44 bytes: a bare WAV header
            raise KioskError("tts_failed")
        return fix_wav_sizes(wav)


def fix_wav_sizes(wav: bytes) -> bytes:
    """espeak-ng writing to a pipe cannot seek back, so its header claims 2 GB of audio; put the real
    RIFF and data sizes in (players and the WAV readers of the tests rely on them)."""
    data_at = wav.find(b"data", 12)
    if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE" or data_at < 0:
        return wav
    fixed = bytearray(wav)
    fixed[4:8] = struct.pack("<I", len(wav) - 8)
    fixed[data_at + 4 : data_at + 8] = struct.pack("<I", len(wav) - data_at - 8)
    return bytes(fixed)


def tts_from_settings(settings: Settings) -> TextToSpeech:
    if settings.tts_backend == "none":
        return NoTTS()
    return EspeakTTS()
