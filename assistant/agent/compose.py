"""Builds the reply-writer prompt: static system prefix (cached by llama.cpp) + a short turn block."""

from __future__ import annotations

from typing import Any

from assistant.agent.prompts import prompt_file, system_prompt
from assistant.llm.base import ChatMessage

MAX_GUIDELINE_CHARS = 260  # keep retrieved context short: prompt tokens cost ~10 ms each on 2 cores


def guideline_block(hits: list[dict[str, Any]]) -> str:
    lines = []
    for hit in hits:
        excerpt = " ".join(hit["text"].split())[:MAX_GUIDELINE_CHARS]
        lines.append(f"[{hit['doc_id']}#{hit['section']}] {hit['section_title']}: {excerpt}")
    return "\n".join(lines) or "-"


def card_messages(
    card: dict[str, Any], user_text: str, hits: list[dict[str, Any]], lang: str
) -> list[ChatMessage]:
    spec = prompt_file("agent_turn.yaml")
    question = card.get("question")
    hint = spec["question_hint"][lang].format(question=question["question"]) if question else ""
    sep = "、" if lang == "zh" else ", "
    body = spec[lang].format(
        level_label=card["level_label"],
        care_setting=card["care_setting_label"],
        departments=sep.join(d["name"] for d in card["departments"]),
        red_flags=sep.join(f["name"] for f in card["red_flags"]) or "-",
        guidelines=guideline_block(hits),
        user_text=user_text,
        question_hint=hint,
    )
    return [ChatMessage(role="system", content=system_prompt(lang)), ChatMessage(role="user", content=body)]


def info_messages(user_text: str, hits: list[dict[str, Any]], lang: str) -> list[ChatMessage]:
    spec = prompt_file("agent_turn.yaml")["info"][lang]
    body = spec.format(guidelines=guideline_block(hits), user_text=user_text)
    return [ChatMessage(role="system", content=system_prompt(lang)), ChatMessage(role="user", content=body)]
