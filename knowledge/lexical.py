"""BM25 keyword retrieval for mixed Chinese/English text, built in memory from the chunks at load.

Tokens: Chinese character unigrams + bigrams (after traditional→simplified conversion, so 發燒 matches
发烧) and lowercased English words with light suffix stripping. Exact terms (drug names, 囟门, "qSOFA",
"38.5") are where dense embeddings are weakest, which is why this complements them.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

_CJK_RUN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD_RE = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*")
_EN_STOPWORD_TEXT = """
a an and are as at be been but by can could do does did for from had has have he her him his how i if in
into is it its me my of on or our she should so than that the their them then there these they this to
too was we were what when where which while who why will with would you your am about any
"""
# Age and duration words ("a 45-year-old ... for 3 days") occur in nearly every question but say nothing
# about the topic; kept as terms they pull queries toward threshold-heavy sections. The numbers stay.
_EN_TIME_WORDS = "year old month week day hour minute ago since yr hr min"
_EN_STOPWORDS = frozenset(_EN_STOPWORD_TEXT.split() + _EN_TIME_WORDS.split())


@lru_cache(maxsize=1)
def _t2s() -> Callable[[str], str]:
    from opencc import OpenCC

    return OpenCC("t2s").convert


def stem(word: str) -> str:
    """Light English suffix stripping; only needs to be consistent between queries and documents."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "shes", "ches", "xes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("eed"):
            word = word[: -len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":  # running -> run
                word = word[:-1]
            break
    if word.endswith("e") and len(word) > 4:  # breathe/breathing, bruise/bruised
        word = word[:-1]
    return word


_STOPWORD_STEMS = frozenset(stem(w) for w in _EN_STOPWORDS)


def tokenize(text: str) -> list[str]:
    """Index/query tokens: CJK unigrams + bigrams and stemmed English words (stopwords dropped)."""
    text = _t2s()(unicodedata.normalize("NFKC", text)).lower()
    tokens: list[str] = []
    for run in _CJK_RUN_RE.findall(text):
        tokens.extend(run)
        tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
    for word in _WORD_RE.findall(text):
        stemmed = stem(word)
        if word not in _EN_STOPWORDS and stemmed not in _STOPWORD_STEMS:  # "minutes" as well as "minute"
            tokens.append(stemmed)
    return tokens


class BM25Index:
    """Okapi BM25 over pre-tokenised documents (Lucene-style idf, always positive)."""

    def __init__(
        self, ids: Sequence[str], token_lists: Iterable[Sequence[str]], k1: float = 1.2, b: float = 0.75
    ):
        self.ids = list(ids)
        self.k1, self.b = k1, b
        self._postings: dict[str, list[tuple[int, int]]] = {}
        self._lengths: list[int] = []
        for index, tokens in enumerate(token_lists):
            self._lengths.append(len(tokens))
            for term, freq in Counter(tokens).items():
                self._postings.setdefault(term, []).append((index, freq))
        if len(self._lengths) != len(self.ids):
            raise ValueError("ids and token_lists must have the same length")
        n = len(self.ids)
        self._avg_len = (sum(self._lengths) / n) if n else 0.0
        self._idf = {
            term: math.log(1 + (n - len(post) + 0.5) / (len(post) + 0.5))
            for term, post in self._postings.items()
        }

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, query_tokens: Sequence[str]) -> dict[int, float]:
        """BM25 score per matching document position; repeated query terms count once."""
        totals: dict[int, float] = {}
        avg = self._avg_len or 1.0
        for term in set(query_tokens):
            postings = self._postings.get(term)
            if not postings:
                continue
            idf = self._idf[term]
            for index, freq in postings:
                norm = self.k1 * (1 - self.b + self.b * self._lengths[index] / avg)
                totals[index] = totals.get(index, 0.0) + idf * freq * (self.k1 + 1) / (freq + norm)
        return totals

    def search(
        self, query: str | Sequence[str], k: int = 10, allow: Callable[[str], bool] | None = None
    ) -> list[tuple[str, float]]:
        """Top-k (id, score) pairs with score > 0, best first; `allow` filters by id."""
        tokens = tokenize(query) if isinstance(query, str) else list(query)
        ranked = sorted(self.scores(tokens).items(), key=lambda item: (-item[1], item[0]))
        out: list[tuple[str, float]] = []
        for index, score in ranked:
            doc_id = self.ids[index]
            if allow is None or allow(doc_id):
                out.append((doc_id, score))
                if len(out) >= k:
                    break
        return out
