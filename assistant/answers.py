"""Reading a user's short answer to a follow-up question (zh/en, no LLM).

* yes / no / don't know: a whole answer ("有", "nope", "不知道") or one that starts with such a word
  followed by punctuation ("没有，就是有点累"). A "no" word needs punctuation after it: "no fever"
  and "没有发烧" are descriptions, not answers, and go to the engine as text (so "no" does not
  wrongly negate something else).
* ages in months/weeks/days at the start of an answer ("5个月", "6 weeks"): the generic fact
  extractor reads a bare "5个月" as a duration, so the age question parses these itself.
* which of two conflicting values is right ("之前的" / "now").
The vocabulary lives in prompts/session_templates.yaml (`words`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from assistant.session_text import templates
from tools import units
from tools.fact_extraction import normalize_text
from tools.zh_numbers import EN_NUMBER_RE, ZH_NUMERAL_RE, approx_more, parse_number

AnswerLabel = Literal["yes", "no", "unknown"]
Choice = Literal["earlier", "later"]

# Characters that may trail an answer without changing it ("是的吧", "no.", "没有呢~").
_TRAILING = " \t~!?.,;:…。？！，；：、啊呀吧呢哦噢嘛啦了的"
_PUNCT_SEP = re.compile(r"[,.;:!?…。！？，；：、~\-]")
_SPACE_OR_PUNCT_SEP = re.compile(r"[\s,.;:!?…。！？，；：、~\-]")
_HAS_CONTENT = re.compile(r"[\w\u4e00-\u9fff]")


@dataclass(frozen=True)
class YesNo:
    label: AnswerLabel | None  # None: not a yes/no answer, treat the text as a description
    remainder: str = ""  # text after the yes/no word, to be read as a description


def clean(text: str) -> str:
    """Normalised (simplified, half-width, lower-case) and without trailing particles."""
    out = normalize_text(text).strip()
    while len(out) > 1 and out[-1] in _TRAILING:
        out = out[:-1].rstrip()
    return out.lstrip(" ,.;:!?…。？！，；：、~")


@lru_cache(maxsize=1)
def _vocabulary() -> list[tuple[str, AnswerLabel]]:
    words = templates().words
    pairs: list[tuple[str, AnswerLabel]] = []
    for label, items in (("unknown", words.unknown), ("no", words.no), ("yes", words.yes)):
        pairs += [(normalize_text(w), label) for w in items]  # type: ignore[misc]
    return sorted(pairs, key=lambda p: -len(p[0]))  # longest first: "不知道" before "不", "没有" before "有"


def classify_yes_no(text: str) -> YesNo:
    """yes / no / unknown for an answer, plus any description that follows the word."""
    t = clean(text)
    for word, label in _vocabulary():
        if t == word:
            return YesNo(label)
    for word, label in _vocabulary():
        if not t.startswith(word) or len(t) == len(word):
            continue
        separator = _PUNCT_SEP if label == "no" else _SPACE_OR_PUNCT_SEP
        if not separator.match(t, len(word)):
            continue
        remainder = t[len(word) :].lstrip(" ,.;:!?…。！？，；：、~-")
        inner = classify_yes_no(remainder) if remainder else YesNo(None)
        if inner.label is not None and not inner.remainder:
            return YesNo(inner.label)  # "嗯，没有" is a no
        return YesNo(label, remainder if _HAS_CONTENT.search(remainder) else "")
    return YesNo(None)


_NUM = rf"(?:{EN_NUMBER_RE}|{ZH_NUMERAL_RE})"
# A number with at most a short unit and nothing else: "39", "39.5度", "101 f", "35岁", "about 7".
_BARE_NUMBER = re.compile(
    rf"^(?:about |around |approximately |大概|大约|约)?(?:\d+(?:\.\d+)?|{ZH_NUMERAL_RE}|{EN_NUMBER_RE})"
    r"\s*(?:[a-z°℃%/.\s]{0,12}|度[半多]?|度[一二三四五六七八九\d]|岁半?|周岁|次)$"
)
_AGE_SMALL_UNITS = re.compile(
    rf"^(?:about |around |almost |大概|大约|差不多|快)?(?P<num>{_NUM})\s*"
    r"(?P<unit>个多月|个半月|个月|月龄|months?|mos?|mo|周|星期|weeks?|wks?|天|days?)"
    r"(?P<tail>(?:\s*(?:old|大|了|左右))*)(?![a-z])"
)
_SMALL_UNIT_KIND = {
    "个多月": "month",
    "个半月": "month",
    "个月": "month",
    "月龄": "month",
    "month": "month",
    "months": "month",
    "mo": "month",
    "mos": "month",
    "周": "week",
    "星期": "week",
    "week": "week",
    "weeks": "week",
    "wk": "week",
    "wks": "week",
    "天": "day",
    "day": "day",
    "days": "day",
}


@dataclass(frozen=True)
class AgeAnswer:
    months: float
    remainder: str  # the rest of the answer, to be read as a description


def parse_small_age(text: str) -> AgeAnswer | None:
    """An age given in months, weeks or days at the start of an answer: "5个月" -> 5 months."""
    t = clean(text)
    m = _AGE_SMALL_UNITS.match(t)
    if not m:
        return None
    value = parse_number(m.group("num"))
    if value is None:
        return None
    unit = m.group("unit")
    if unit == "个半月":
        value += 0.5
    elif unit == "个多月":
        value = approx_more(value)
    months = units.to_months(value, _SMALL_UNIT_KIND[unit])
    low, high = units.PLAUSIBLE["age_months"]
    if not low <= months <= high:
        return None
    remainder = t[m.end() :].lstrip(" ,.;:!?…。！？，；：、~-")
    return AgeAnswer(months, remainder if _HAS_CONTENT.search(remainder) else "")


def is_bare_number(text: str) -> bool:
    """A number with at most a unit ("39", "35岁", "101 f"), which needs the question's context."""
    return bool(_BARE_NUMBER.match(clean(text)))


@lru_cache(maxsize=1)
def _choice_words() -> list[tuple[str, Choice]]:
    words = templates().words
    pairs = [(normalize_text(w), "earlier") for w in words.earlier] + [
        (normalize_text(w), "later") for w in words.later
    ]
    return sorted(pairs, key=lambda p: -len(p[0]))  # type: ignore[arg-type,return-value]


def conflict_choice(text: str) -> Choice | None:
    """ "之前的" / "the first one" -> earlier; "现在的" / "now" -> later; None when unclear or both."""
    t = clean(text)
    found: set[Choice] = set()
    rest = t
    for word, choice in _choice_words():
        pattern = (
            re.escape(word)
            if re.search(r"[\u4e00-\u9fff]", word)
            else rf"(?<![a-z]){re.escape(word)}(?![a-z])"
        )
        if re.search(pattern, rest):
            found.add(choice)
            rest = re.sub(pattern, " ", rest)  # "现在的" must not also count as "现在" + "的"
    return found.pop() if len(found) == 1 else None
