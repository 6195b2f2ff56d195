"""Finds symptom concepts in free text (zh, en, mixed) with negation, synonyms and typos.

Matching runs on normalised text (simplified Chinese, lower-case, half-width). Three layers:
regex synonyms per concept; pinyin matching of literal Chinese patterns so that homophone
typos (同音字/近音字, incl. z/zh, n/l, an/ang merges) still match; one-edit fuzzy matching of
long English words. A hit is negated when a negation cue precedes it in the same clause.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from pypinyin import Style, lazy_pinyin

from tools.rulebook import ConceptDef

_CJK = re.compile(r"[\u4e00-\u9fff]")
_ZH_GAP = "[^,，。;；！!？?]"
_LITERAL_ZH = re.compile(r"^[\u4e00-\u9fff]{2,}$")
# ASCII commas end a clause only next to Chinese text: in English "denies chest pain, fever or
# cough" is one negated list.
_ZH_CLAUSE_BREAK = re.compile(
    r"[，。；！？\n]|(?<=[\u4e00-\u9fff]),|,(?=\s*[\u4e00-\u9fff])|但是|但|可是|不过|然而|只是"
)
# English: a comma ends a clause only before a new statement ("no fever, just a cough"), not
# inside a negated list ("denies chest pain, fever or cough").
_EN_CLAUSE_BREAK = re.compile(
    r"[.;:!?\n]|\b(but|however|although|though|yet|except|apart from|which|who|now|then|"
    r"reports|complains|presents|says|feels)\b|\band (he|she|i|it|they|has|have|had|is|was)\b|"
    r",\s*(?=(just|only|plus|also|has|have|had|is|was|he|she|i|it|they|with|and (he|she|i|it))\b)"
)
# Chinese negation cues. Strong cues may stand a few characters before the symptom
# ("没有明显的胸痛"); weak single-character cues must be directly before it.
_ZH_NEG_CUE = re.compile(
    r"没有|否认|并无|并没有|从没|从未|从来没|未见|不是|未|没|无|不(?!过|停|断|止|住|适|舒服|好|行|到|了|知|清|确|说)"
)
_ZH_WEAK_CUES = {"不", "没", "无"}
_ZH_FILLERS = {
    "",
    "怎么",
    "太",
    "再",
    "是",
    "会",
    "觉得",
    "感觉",
    "有",
    "什么",
    "怎么样",
    "也",
    "都",
    "还",
    "并",
    "憋得",
    "疼得",
    "痛得",
}
_ZH_POST_NEG = re.compile(r"^(气|的|也|都|还|倒)?(没问题|没事|正常|还行|还好|挺好|没有|没)(了|的|啊|呢)?\s*$")
# A gap pattern that swallowed a denial of the symptom itself: "脚没痛过", "骨头按着不痛".
_NEGATED_INSIDE = re.compile(
    r"(没有?|不|无|未)(怎么|太|再|是|会|觉得|有|算|很|太)?"
    r"(痛|疼|肿|红|胀|闷|烧|热|痒|血|出血|流血|吐|咳|喘|晕|麻|硬|僵|黑|剧烈|厉害|严重|明显)(过|了)?$"
)
_EN_NEG = re.compile(
    r"\b(no|not|denies|denied|denying|without|never|negative for|free of|absence of|nor|"
    r"don'?t have|doesn'?t have|didn'?t have|hasn'?t had|haven'?t had|no signs? of|"
    r"no history of|ruled out|isn'?t|wasn'?t|aren'?t|doesn'?t|don'?t|didn'?t|hasn'?t|haven'?t|hadn'?t)\b"
)
_EN_NOT_NEGATION = re.compile(r"\b(not sure|no idea|not only|no longer sure|not certain)\b")
_WORD = re.compile(r"[a-z][a-z'-]+")

# zh/z, ch/c, sh/s merges (southern accents) so 近音字 typos in longer phrases still match.
_PINYIN_MERGES = (("zh", "z"), ("ch", "c"), ("sh", "s"))


def _fold_syllable(syl: str) -> str:
    for a, b in _PINYIN_MERGES:
        if syl.startswith(a):
            return b + syl[len(a) :]
    return syl


@lru_cache(maxsize=20000)
def _char_syllable(ch: str) -> str:
    return _fold_syllable(lazy_pinyin(ch, style=Style.NORMAL)[0])


@lru_cache(maxsize=20000)
def _char_syllable_toned(ch: str) -> str:
    return lazy_pinyin(ch, style=Style.TONE3)[0]


def _syllables(chars: str, toned: bool) -> tuple[str, ...]:
    return tuple(_char_syllable_toned(c) if toned else _char_syllable(c) for c in chars)


@dataclass(frozen=True)
class Hit:
    concept: str
    start: int
    end: int
    text: str
    negated: bool
    clause: int
    fuzzy: bool = False


@dataclass
class MatchResult:
    hits: list[Hit] = field(default_factory=list)

    def present(self) -> dict[str, Hit]:
        """Concepts with at least one affirmed hit (first such hit as evidence)."""
        found: dict[str, Hit] = {}
        for hit in self.hits:
            if not hit.negated and hit.concept not in found:
                found[hit.concept] = hit
        return found

    def negated(self) -> set[str]:
        """Concepts mentioned only negatively ("没有胸痛", "denies fever")."""
        affirmed = {h.concept for h in self.hits if not h.negated}
        return {h.concept for h in self.hits if h.negated and h.concept not in affirmed}

    def clauses_of(self, concept: str) -> set[int]:
        return {h.clause for h in self.hits if h.concept == concept and not h.negated}


class ConceptMatcher:
    def __init__(self, concepts: dict[str, ConceptDef]) -> None:
        self._regexes: list[tuple[str, re.Pattern[str]]] = []
        self._pinyin_patterns: dict[str, list[tuple[tuple[str, ...], str, bool]]] = {}
        self._en_words: dict[str, list[tuple[str, str]]] = {}
        for name, definition in concepts.items():
            # a gap in a Chinese pattern never crosses punctuation: "胸口闷，不痛" is two clauses
            parts = [f"(?:{p.replace('.{', _ZH_GAP + '{')})" for p in definition.zh]
            parts += [f"(?:{p})" if p.startswith("\\b") else f"(?:\\b{p})" for p in definition.en]
            if parts:
                self._regexes.append((name, re.compile("|".join(parts))))
            for pattern in definition.zh:
                if _LITERAL_ZH.match(pattern):
                    # two-syllable patterns collide too often (眼睛也 ~ 精液): demand the same tones
                    toned = len(pattern) == 2
                    syllables = _syllables(pattern, toned)
                    self._pinyin_patterns.setdefault(syllables[0], []).append((syllables, name, toned))
            for pattern in definition.en:
                word = pattern.removeprefix("\\b").removesuffix("\\b")
                if word.isalpha() and len(word) >= 6:
                    self._en_words.setdefault(word[0], []).append((word, name))

    def match(self, text: str) -> MatchResult:
        clauses = _clause_index(text)
        raw: list[tuple[str, int, int, bool]] = []
        for name, regex in self._regexes:
            for m in regex.finditer(text):
                if m.end() > m.start():
                    raw.append((name, m.start(), m.end(), False))
        if _CJK.search(text):
            raw += [r for r in self._pinyin_hits(text) if not _overlaps_same(r, raw)]
        raw += self._fuzzy_en_hits(text, {n for n, *_ in raw}, [(s, e) for _, s, e, _ in raw])
        spans = [(s, e) for _, s, e, _ in raw]
        hits = [
            Hit(
                concept=name,
                start=start,
                end=end,
                text=text[start:end],
                negated=_is_negated(text, start, end, spans, clauses),
                clause=clauses[start],
                fuzzy=fuzzy,
            )
            for name, start, end, fuzzy in raw
        ]
        hits = [_negated_by_container(h, hits, text) for h in hits]
        hits.sort(key=lambda h: (h.start, h.concept))
        return MatchResult(hits=hits)

    def _pinyin_hits(self, text: str) -> list[tuple[str, int, int, bool]]:
        folded = [_char_syllable(c) if _CJK.match(c) else "" for c in text]
        toned = [_char_syllable_toned(c) if _CJK.match(c) else "" for c in text]
        found = []
        for i in range(len(text)):
            if not folded[i]:
                continue
            keys = {folded[i], toned[i]}
            for key in keys:
                for pattern, name, needs_tone in self._pinyin_patterns.get(key, ()):
                    source = toned if needs_tone else folded
                    n = len(pattern)
                    if tuple(source[i : i + n]) == pattern:
                        found.append((name, i, i + n, True))
        return found

    def _fuzzy_en_hits(
        self, text: str, already: set[str], exact_spans: list[tuple[int, int]]
    ) -> list[tuple[str, int, int, bool]]:
        if not self._en_words:
            return []
        found = []
        for m in _WORD.finditer(text):
            word = m.group()
            if len(word) < 6 or any(s <= m.start() < e for s, e in exact_spans):
                continue
            for target, name in self._en_words.get(word[0], ()):
                if name in already or abs(len(word) - len(target)) > 2:
                    continue
                if word.startswith(target):
                    continue  # an exact prefix is already a regex hit
                candidates = {word[: len(target) + d] for d in (-1, 0, 1)}
                if any(_within_one_edit(c, target) for c in candidates):
                    found.append((name, m.start(), m.end(), True))
                    already = already | {name}
        return found


_CONTAINER_NEG_END = re.compile(r"(不|没有?|无|未|\bnot|\bno)\s*(太|很|怎么|是|算|that|very|so)?\s*$")


def _negated_by_container(hit: Hit, hits: list[Hit], text: str) -> Hit:
    """A hit inside a longer phrase that denies it ("不厉害", "腹痛不剧烈", "not severe") is negated,
    even though the cue belongs to the longer phrase's span."""
    if hit.negated:
        return hit
    for other in hits:
        if other is hit or not (other.start < hit.start and hit.end <= other.end):
            continue
        if _CONTAINER_NEG_END.search(text[other.start : hit.start]):
            return Hit(hit.concept, hit.start, hit.end, hit.text, True, hit.clause, hit.fuzzy)
    return hit


def _overlaps_same(hit: tuple[str, int, int, bool], others: list[tuple[str, int, int, bool]]) -> bool:
    name, start, end, _ = hit
    return any(n == name and s < end and start < e for n, s, e, _ in others)


def _clause_index(text: str) -> list[int]:
    """Clause number for every character position (and one past the end)."""
    index = [0] * (len(text) + 1)
    breaks = sorted(
        {m.start() for m in _ZH_CLAUSE_BREAK.finditer(text)}
        | {m.start() for m in _EN_CLAUSE_BREAK.finditer(text)}
    )
    clause, j = 0, 0
    for i in range(len(text) + 1):
        while j < len(breaks) and breaks[j] <= i:
            clause += 1
            j += 1
        index[i] = clause
    return index


def _inside_other_span(pos: int, spans: list[tuple[int, int]], own_start: int) -> bool:
    return any(s <= pos < e and s != own_start for s, e in spans)


def _is_negated(text: str, start: int, end: int, spans: list[tuple[int, int]], clauses: list[int]) -> bool:
    inside = _NEGATED_INSIDE.search(text[start:end])
    if inside:
        hit = text[start:end]
        before_cue = hit[inside.start() - 1] if inside.start() > 0 else ""
        if before_cue != hit[-1]:  # "胸口痛不痛" asks; "脚没痛过" denies
            return True
    clause = clauses[start]
    right = end
    while right < len(text) and clauses[right] == clause and right - end < 8:
        right += 1
    if _ZH_POST_NEG.match(text[end:right]):
        return True  # "喘气没问题", "见红没有": denied after the symptom, at the clause end
    left = start
    while left > 0 and clauses[left - 1] == clause and start - left < 60:
        left -= 1
    before = text[left:start]
    if not before:
        return False
    if _CJK.match(text[start]) or _CJK.search(before[-3:]):
        return _zh_negated(text, start, before[-10:], spans)
    window = " ".join(before.split()[-8:])
    if _EN_NOT_NEGATION.search(window):
        return False
    for m in _EN_NEG.finditer(window):
        cue_pos = start - len(window) + m.start()
        if not _inside_other_span(cue_pos, spans, start):
            return True
    return False


def _zh_negated(text: str, start: int, window: str, spans: list[tuple[int, int]]) -> bool:
    offset = start - len(window)
    for m in _ZH_NEG_CUE.finditer(window):
        cue, gap = m.group(), window[m.end() :]
        cue_pos = offset + m.start()
        if _inside_other_span(cue_pos, spans, start):
            continue
        if cue.startswith("没") and cue_pos > 0 and text[cue_pos - 1] == "有":
            continue  # 有没有 asks, it does not deny
        if cue in _ZH_WEAK_CUES:
            # a bare 不/没/无 only negates what follows it directly ("不发烧", "不太疼");
            # "发不发烧" / "有没有胸痛" are questions, not denials
            if gap not in _ZH_FILLERS:
                continue
            prev = text[cue_pos - 1] if cue_pos > 0 else ""
            if prev and (prev == text[start] or (cue_pos + 1 < len(text) and prev == text[cue_pos + 1])):
                continue
        elif len(gap) > 5:
            continue
        return True
    return False


def _within_one_edit(a: str, b: str) -> bool:
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        # one transposition
        return (
            len(diffs) == 2
            and diffs[1] == diffs[0] + 1
            and a[diffs[0]] == b[diffs[1]]
            and a[diffs[1]] == b[diffs[0]]
        )
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1 :]
