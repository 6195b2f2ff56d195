"""Reply wording for the conversation, loaded from prompts/session_templates.yaml.

All user-facing text of the session and the terminal chat comes from that file (zh and en), so
wording can change without touching the logic. Loaded once and checked: every template must
exist in both languages.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel

from tools.triage_models import Lang

LANGS: tuple[Lang, Lang] = ("zh", "en")


class Bilingual(BaseModel):
    zh: str
    en: str

    def get(self, lang: Lang) -> str:
        return self.zh if lang == "zh" else self.en


class AnswerWords(BaseModel):
    yes: list[str]
    no: list[str]
    unknown: list[str]
    earlier: list[str]
    later: list[str]


class SessionTemplates(BaseModel):
    version: str
    templates: dict[str, Bilingual]
    fields: dict[str, Bilingual]
    values: dict[str, Bilingual]
    age_sentence: dict[str, Bilingual]
    number_context: dict[str, Bilingual]
    words: AnswerWords


def _load_raw() -> dict[str, Any]:
    text = resources.files("prompts").joinpath("session_templates.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    # YAML reads bare yes/no/y/n as booleans; the answer words must stay strings.
    words = data.get("words", {})
    for key, items in list(words.items()):
        words[_yaml_key(key)] = [_yaml_word(w) for w in items]
    return data


def _yaml_key(key: object) -> str:
    return {True: "yes", False: "no"}.get(key, key) if isinstance(key, bool) else str(key)  # type: ignore[arg-type]


def _yaml_word(word: object) -> str:
    return {True: "yes", False: "no"}[word] if isinstance(word, bool) else str(word)


@lru_cache(maxsize=1)
def templates() -> SessionTemplates:
    return SessionTemplates.model_validate(_load_raw())


def render(key: str, lang: Lang, **params: object) -> str:
    """The template `key` in `lang`, filled with `params`."""
    return templates().templates[key].get(lang).format(**params)


def render_any(key: str, lang: Lang | None, **params: object) -> str:
    """Like `render`; without a known language both versions, Chinese first."""
    if lang is not None:
        return render(key, lang, **params)
    return "\n".join(render(key, each, **params) for each in LANGS)


def field_name(field: str, lang: Lang) -> str:
    entry = templates().fields.get(field)
    return entry.get(lang) if entry else field


def number(value: float) -> str:
    """38.0 -> "38", 38.25 -> "38.3"."""
    return f"{round(float(value), 1):g}"


def format_value(field: str, value: object, lang: Lang) -> str:
    """A fact value as the user would say it: 420 months -> "35岁", True -> "怀孕"."""
    values = templates().values
    if field == "age_months":
        months = float(value)  # type: ignore[arg-type]
        if months < 24 and months % 12:
            return values["age_months"].get(lang).format(value=number(months))
        return values["age_years"].get(lang).format(value=number(months / 12))
    if field == "pregnant":
        return values["pregnant_true" if value else "pregnant_false"].get(lang)
    entry = values.get(field)
    shown = number(value) if isinstance(value, int | float) else str(value)
    return entry.get(lang).format(value=shown) if entry else shown


def age_sentence(months: float, lang: Lang) -> str:
    """A sentence the fact extractor reads back as this age."""
    sentences = templates().age_sentence
    if months < 24 and months % 12:
        return sentences["months"].get(lang).format(value=number(months))
    return sentences["years"].get(lang).format(value=number(months / 12))


def number_context(field: str, lang: Lang) -> str:
    entry = templates().number_context.get(field)
    return entry.get(lang) if entry else ""
