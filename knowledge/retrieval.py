"""Hybrid retrieval over the guideline corpus: dense (Chroma) + BM25, fused by reciprocal rank.

The section is the citation unit, so results are grouped by (doc_id, section): evidence from any
chunk of a section in either language counts for it, and each section appears at most once. When
the caller asks for a language, the hit is given in that language (the corpus is parallel), and
chunks in that language get a ranking boost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from knowledge.chunking import Chunk
from knowledge.corpus import LANGUAGES, Document, SourceRef
from knowledge.embeddings import Embedder
from knowledge.lexical import BM25Index, tokenize
from knowledge.store import query_dense

# RRF constant: 60 is the textbook value for long result lists; with a corpus of a few hundred chunks
# and 50 candidates per retriever, a smaller constant lets a clear top rank from either retriever count.
RRF_K = 10
CANDIDATES = 50  # per retriever, before fusion
OTHER_LANGUAGE_WEIGHT = 0.7  # multiplier for chunks not in the requested language


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    doc_id: str
    section: str
    lang: str
    title: str  # document title
    section_title: str
    text: str
    score: float
    sources: tuple[SourceRef, ...]

    @property
    def ref(self) -> str:
        """Compact citation key, e.g. `redflags-adult#chest-pain`."""
        return f"{self.doc_id}#{self.section}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "doc_id": self.doc_id,
            "section": self.section,
            "lang": self.lang,
            "title": self.title,
            "section_title": self.section_title,
            "text": self.text,
            "score": round(self.score, 6),
            "sources": [s.to_dict() for s in self.sources],
        }


@dataclass(frozen=True)
class SectionText:
    """A whole corpus section, for quoting and citing."""

    doc_id: str
    section: str
    lang: str
    title: str
    section_title: str
    text: str
    sources: tuple[SourceRef, ...]
    doc_version: str

    def citation(self) -> str:
        refs = "; ".join(s.format() for s in self.sources)
        return f"{self.title} · {self.section_title} ({refs})"


@dataclass
class _SectionCandidate:
    chunks: dict[str, float] = field(default_factory=dict)  # chunk id -> fused score


def _check_lang(lang: str | None) -> None:
    if lang is not None and lang not in LANGUAGES:
        raise ValueError(f"lang must be zh or en (or None), got {lang!r} / 语言必须是 zh 或 en")


class KnowledgeBase:
    """Search and section lookup over one loaded corpus and its vector index."""

    def __init__(
        self,
        docs: Sequence[Document],
        chunks: Sequence[Chunk],
        embedder: Embedder,
        collection: Any,
        knowledge_version: str,
        *,
        rrf_k: int = RRF_K,
        candidates: int = CANDIDATES,
        other_language_weight: float = OTHER_LANGUAGE_WEIGHT,
    ) -> None:
        self.docs = list(docs)
        self.chunks = list(chunks)
        self.embedder = embedder
        self.collection = collection
        self.knowledge_version = knowledge_version
        self.rrf_k = rrf_k
        self.candidates = candidates
        self.other_language_weight = other_language_weight
        self._by_id = {c.chunk_id: c for c in self.chunks}
        self._docs = {d.key: d for d in self.docs}
        self._first_chunk: dict[tuple[str, str, str], Chunk] = {}
        for chunk in self.chunks:
            self._first_chunk.setdefault((chunk.doc_id, chunk.section, chunk.lang), chunk)
        # Headings are part of what a section is "about"; the section title counts double.
        self._bm25 = BM25Index(
            [c.chunk_id for c in self.chunks],
            (tokenize(f"{c.title}\n{c.section_title}\n{c.section_title}\n{c.text}") for c in self.chunks),
        )

    # ---- search -------------------------------------------------------------------------------
    def dense_ranking(self, query: str, n: int | None = None) -> list[tuple[str, float]]:
        vector = self.embedder.embed_query(query)
        hits = query_dense(self.collection, vector, n or self.candidates)
        # Ids of an index built from another corpus state are ignored rather than crashing.
        return [(cid, score) for cid, score in hits if cid in self._by_id]

    def lexical_ranking(self, query: str, n: int | None = None) -> list[tuple[str, float]]:
        return self._bm25.search(query, k=n or self.candidates)

    def search(self, query: str, k: int = 5, lang: str | None = None) -> list[Hit]:
        """Top-k sections for `query`, at most one hit per (doc_id, section), best first.

        lang: preferred language ("zh"/"en"): boosts chunks in it and returns hits in it where the
        section exists in that language. None: no preference.
        """
        _check_lang(lang)
        if k <= 0:
            raise ValueError(f"k must be positive, got {k} / k 必须为正数")
        if not isinstance(query, str) or not query.strip():
            return []

        fused: dict[str, float] = {}
        for ranking in (self.dense_ranking(query), self.lexical_ranking(query)):
            for rank, (cid, _score) in enumerate(ranking, start=1):
                fused[cid] = fused.get(cid, 0.0) + 1.0 / (self.rrf_k + rank)
        if lang is not None:
            for cid in fused:
                if self._by_id[cid].lang != lang:
                    fused[cid] *= self.other_language_weight

        sections: dict[tuple[str, str], _SectionCandidate] = {}
        for cid, score in fused.items():
            chunk = self._by_id[cid]
            sections.setdefault((chunk.doc_id, chunk.section), _SectionCandidate()).chunks[cid] = score

        scored: list[tuple[float, str, Chunk]] = []
        for (doc_id, section), candidate in sections.items():
            ordered = sorted(candidate.chunks.items(), key=lambda item: (-item[1], item[0]))
            # A section scores by its best chunk: adding its other chunks' scores would favour long sections.
            score = ordered[0][1]
            best = self._by_id[ordered[0][0]]
            if lang is not None and best.lang != lang:
                in_lang = next((self._by_id[c] for c, _ in ordered if self._by_id[c].lang == lang), None)
                best = in_lang or self._first_chunk.get((doc_id, section, lang), best)
            scored.append((score, best.chunk_id, best))
        scored.sort(key=lambda item: (-item[0], item[1]))

        return [
            Hit(
                chunk_id=chunk.chunk_id,
                doc_id=chunk.doc_id,
                section=chunk.section,
                lang=chunk.lang,
                title=chunk.title,
                section_title=chunk.section_title,
                text=chunk.text,
                score=score,
                sources=chunk.sources,
            )
            for score, _cid, chunk in scored[:k]
        ]

    # ---- lookup -------------------------------------------------------------------------------
    def get_section(self, doc_id: str, section: str, lang: str | None = None) -> SectionText | None:
        """The full text of a section (for citations); other language as fallback; None if absent."""
        _check_lang(lang)
        order = [lang] if lang else []
        order += [x for x in LANGUAGES if x not in order]
        for language in order:
            doc = self._docs.get((doc_id, language))
            found = doc.section(section) if doc else None
            if doc is not None and found is not None:
                return SectionText(
                    doc_id=doc_id,
                    section=section,
                    lang=language,
                    title=doc.title,
                    section_title=found.title,
                    text=found.text,
                    sources=doc.sources,
                    doc_version=doc.version,
                )
        return None

    def section_text(self, doc_id: str, section: str, lang: str | None = None) -> str:
        """Like get_section but returns only the text and raises KeyError when the section is unknown."""
        found = self.get_section(doc_id, section, lang)
        if found is None:
            raise KeyError(
                f"unknown knowledge section {doc_id}#{section} / 知识库中没有章节 {doc_id}#{section}"
            )
        return found.text

    def has_section(self, doc_id: str, section: str) -> bool:
        return self.get_section(doc_id, section) is not None
