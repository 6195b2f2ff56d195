"""The base of the domain errors people read: a stable `code` for programs and the message in
Chinese and English for people. Subclasses name their message table; `of` formats it, where a
parameter ending in `_en` gives the English wording of that parameter."""

from __future__ import annotations

from typing import Any, ClassVar, Self


class LocalizedError(Exception):
    messages: ClassVar[dict[str, tuple[str, str]]] = {}

    def __init__(self, code: str, zh: str | None = None, en: str | None = None, **params: Any) -> None:
        if zh is None or en is None:
            template_zh, template_en = self.messages[code]
            zh, en = template_zh.format(**params), template_en.format(**params)
        super().__init__(f"{code}: {en}")
        self.code, self.zh, self.en, self.params = code, zh, en, params

    def message(self, lang: str | None = None) -> str:
        """In `lang`; both languages when it is not known."""
        if lang == "zh":
            return self.zh
        if lang == "en":
            return self.en
        return f"{self.zh} / {self.en}"

    @classmethod
    def of(cls, code: str, **params: Any) -> Self:
        zh, en = cls.messages[code]
        zh_params = {k: v for k, v in params.items() if not k.endswith("_en")}
        en_params = {k[: -len("_en")]: v for k, v in params.items() if k.endswith("_en")}
        return cls(code, zh.format(**zh_params), en.format(**{**zh_params, **en_params}))
