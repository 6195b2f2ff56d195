"""Loads the versioned prompt files in prompts/ (no prompt text lives in code)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"


def _split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    if text.startswith("---"):
        _, head, body = text.split("---", 2)
        return yaml.safe_load(head) or {}, body.strip()
    return {}, text.strip()


@lru_cache(maxsize=8)
def system_prompt(lang: str) -> str:
    _, body = _split_front_matter((PROMPTS_DIR / f"agent_system.{lang}.md").read_text(encoding="utf-8"))
    return body


@lru_cache(maxsize=8)
def prompt_file(name: str) -> dict[str, Any]:
    return yaml.safe_load((PROMPTS_DIR / name).read_text(encoding="utf-8"))


def prompt_versions() -> dict[str, str]:
    versions = {}
    for lang in ("zh", "en"):
        meta, _ = _split_front_matter((PROMPTS_DIR / f"agent_system.{lang}.md").read_text(encoding="utf-8"))
        versions[f"agent_system.{lang}"] = str(meta.get("version"))
    for name in ("agent_turn.yaml", "extract_facts.yaml", "intents.yaml"):
        versions[name] = str(prompt_file(name).get("version"))
    return versions
