"""The kiosk's long-lived parts: the speech backends and the page configuration.

The Whisper model loads once, lazily, in a background thread: when a kiosk page first asks for its
configuration (so it is ready before the first visitor speaks), or at the first transcription.
An app that never serves the kiosk page never pays for the model."""

from __future__ import annotations

import logging
import threading
from typing import Any

from assistant.settings import Settings
from server.kiosk.errors import KioskError
from server.kiosk.speech import SpeechToText, stt_from_settings
from server.kiosk.tts import TextToSpeech, tts_from_settings

log = logging.getLogger(__name__)

ENTRANCE_NODE = "entrance_main"
EMERGENCY_NODE = "emergency_room"
MIN_IDLE_S = 5


class KioskRuntime:
    def __init__(
        self,
        settings: Settings,
        notify: Any = None,
        *,
        stt: SpeechToText | None = None,
        tts: TextToSpeech | None = None,
    ) -> None:
        self.settings = settings
        self.stt: SpeechToText = stt if stt is not None else stt_from_settings(settings)
        self.tts: TextToSpeech = tts if tts is not None else tts_from_settings(settings)
        self._warm_up_lock = threading.Lock()
        self._warming: threading.Thread | None = None

    async def start(self) -> None:
        """Nothing to open: the speech model loads on demand (warm_up)."""

    async def stop(self) -> None:
        if self._warming is not None and self._warming.is_alive():
            # A model load cannot be interrupted; it is a daemon thread, do not hold up shutdown.
            log.info("kiosk shutting down while the speech model is still loading")

    def warm_up(self) -> None:
        """Start loading the speech model in a daemon thread, once; never fails (typing still works)."""
        with self._warm_up_lock:
            if self._warming is None:
                self._warming = threading.Thread(
                    target=self._load_quietly, name="kiosk-stt-load", daemon=True
                )
                self._warming.start()

    def _load_quietly(self) -> None:
        try:
            self.stt.load()
        except KioskError as exc:
            log.warning("kiosk voice input unavailable: %s", exc)

    def config(self) -> dict[str, Any]:
        """What kiosk.html needs at start: timers, the clinic, and which voice features work."""
        idle_s = max(MIN_IDLE_S, int(self.settings.kiosk_idle_s))
        clinic_id = self.settings.default_clinic_id
        return {
            "idle_s": idle_s,
            # the warning shows this long before everything is cleared
            "warn_s": max(2, min(20, idle_s // 3)),
            "default_lang": self.settings.language,
            "timezone": self.settings.timezone,
            "languages": ["zh", "en"],
            "clinic": _clinic_summary(self.settings, clinic_id),
            "entrance": ENTRANCE_NODE,
            "emergency_room": EMERGENCY_NODE,
            "stt": self.stt.status(),
            "tts": self.tts.status(),
        }


def _clinic_summary(settings: Settings, clinic_id: str) -> dict[str, Any]:
    """Id, names and map of the kiosk's clinic; just the id and map = id when the catalogue is absent."""
    summary: dict[str, Any] = {"id": clinic_id, "name": None, "map_id": clinic_id}
    try:
        from tools.booking.catalogue import load_directory

        clinic = load_directory(settings.clinics_dir).get(clinic_id)
    except Exception as exc:  # the catalogue is optional for the kiosk page itself
        log.info("kiosk: clinic %s not in the catalogue (%s)", clinic_id, exc)
        return summary
    summary["name"] = {"zh": clinic.name.zh, "en": clinic.name.en}
    summary["map_id"] = clinic.map_id or clinic_id
    return summary
