"""Split corpus sections into retrieval chunks with stable ids `<doc-id>:<lang>:<section-id>:<n>`.

Sections are the citation unit, so a chunk never spans two sections. Long sections are split at
paragraph boundaries (then lines, then sentences) with a small sentence-level overlap so a fact
that straddles a boundary is still retrievable from either side.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from knowledge.corpus import Document, Section, SourceRef

# Target chunk sizes in characters: Chinese packs far more meaning per character.
MAX_CHARS: dict[str, int] = {"zh": 500, "en": 900}
OVERLAP_CHARS: dict[str, int] = {"zh": 60, "en": 120}
# A section up to this much over the target stays whole rather than leaving a tiny tail chunk.
_TOLERANCE = 1.15

_SENTENCE_END_RE = re.compile(r"(?<=[。！？；!?;])|(?<=[.])(?=\s)")


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    doc_id: str
    lang: str
    section: str
    section_title: str
    title: str  # document title
    text: str
    n: int
    sources: tuple[SourceRef, ...]
    doc_version: str

    @property
    def embed_text(self) -> str:
        """What gets embedded: the headings give short chunks the context they lack on their own."""
        return f"{self.title} — {self.section_title}\n{self.text}"

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.embed_text.encode("utf-8")).hexdigest()[:16]


def make_chunk_id(doc_id: str, lang: str, section: str, n: int) -> str:
    return f"{doc_id}:{lang}:{section}:{n}"


def _sentences(text: str) -> list[str]:
    return [s for s in (part.strip() for part in _SENTENCE_END_RE.split(text)) if s]


def _hard_split(text: str, max_chars: int) -> list[str]:
    """Split an over-long unit by lines, then by sentences, then (last resort) by length."""
    pieces: list[str] = []
    for line in text.split("\n"):
        if len(line) <= max_chars:
            pieces.append(line)
            continue
        buf = ""
        for sentence in _sentences(line):
            while len(sentence) > max_chars:
                pieces.extend([buf] if buf else [])
                buf = ""
                pieces.append(sentence[:max_chars])
                sentence = sentence[max_chars:]
            joiner = "" if not buf or _is_cjk(buf[-1]) else " "
            if buf and len(buf) + len(joiner) + len(sentence) > max_chars:
                pieces.append(buf)
                buf = sentence
            else:
                buf = f"{buf}{joiner}{sentence}" if buf else sentence
        if buf:
            pieces.append(buf)
    # Re-pack short lines (e.g. list items) back together up to the limit.
    packed: list[str] = []
    for piece in pieces:
        if packed and len(packed[-1]) + 1 + len(piece) <= max_chars:
            packed[-1] = f"{packed[-1]}\n{piece}"
        else:
            packed.append(piece)
    return [p for p in packed if p.strip()]


def _is_cjk(char: str) -> bool:
    return "\u3400" <= char <= "\u9fff"


def _paragraph_units(text: str, max_chars: int) -> list[str]:
    """Paragraphs, with a `###` subheading glued to the paragraph it introduces."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    units: list[str] = []
    pending_heading = ""
    for para in paragraphs:
        if re.fullmatch(r"#{3,6}\s+.*", para):
            pending_heading = f"{pending_heading}\n{para}".strip()
            continue
        if pending_heading:
            para, pending_heading = f"{pending_heading}\n{para}", ""
        units.extend([para] if len(para) <= max_chars else _hard_split(para, max_chars))
    if pending_heading:
        units.append(pending_heading)
    return units


def _overlap_tail(text: str, budget: int) -> str:
    """Whole trailing sentences of `text` that fit in `budget` characters."""
    tail: list[str] = []
    used = 0
    for sentence in reversed(_sentences(text.split("\n")[-1])):
        if used + len(sentence) > budget:
            break
        tail.insert(0, sentence)
        used += len(sentence)
    joiner = "" if tail and _is_cjk(tail[0][0]) else " "
    return joiner.join(tail)


def _balanced_groups(lengths: list[int], max_chars: int) -> list[tuple[int, int]]:
    """Partition units into [start, end) groups: fewest groups within max_chars, then most even sizes.

    A tiny DP (a section has a few dozen units at most) instead of greedy packing, which tends to
    leave a scrap such as the citation line as a chunk of its own.
    """
    n = len(lengths)
    best: list[tuple[int, int] | None] = [None] * (n + 1)  # (groups, sum of squared sizes)
    cut = [0] * (n + 1)
    best[0] = (0, 0)
    for end in range(1, n + 1):
        size = 0
        for start in range(end - 1, -1, -1):
            size += lengths[start] + (2 if start < end - 1 else 0)
            if size > max_chars and start < end - 1:
                break
            prev = best[start]
            if prev is None:
                continue
            candidate = (prev[0] + 1, prev[1] + size * size)
            if best[end] is None or candidate < best[end]:
                best[end], cut[end] = candidate, start
    groups: list[tuple[int, int]] = []
    end = n
    while end > 0:
        groups.insert(0, (cut[end], end))
        end = cut[end]
    return groups


def split_section_text(text: str, lang: str) -> list[str]:
    max_chars = MAX_CHARS.get(lang, MAX_CHARS["en"])
    if len(text) <= max_chars * _TOLERANCE:
        return [text]
    overlap = OVERLAP_CHARS.get(lang, OVERLAP_CHARS["en"])
    units = _paragraph_units(text, max_chars)
    chunks: list[str] = []
    for start, end in _balanced_groups([len(u) for u in units], max_chars):
        body = "\n\n".join(units[start:end])
        tail = _overlap_tail(units[start - 1], overlap) if start > 0 else ""
        chunks.append(f"{tail}\n\n{body}" if tail else body)
    return chunks


def chunk_section(doc: Document, section: Section) -> list[Chunk]:
    return [
        Chunk(
            chunk_id=make_chunk_id(doc.doc_id, doc.language, section.section_id, n),
            doc_id=doc.doc_id,
            lang=doc.language,
            section=section.section_id,
            section_title=section.title,
            title=doc.title,
            text=piece,
            n=n,
            sources=doc.sources,
            doc_version=doc.version,
        )
        for n, piece in enumerate(split_section_text(section.text, doc.language))
    ]


def chunk_documents(docs: Iterable[Document]) -> list[Chunk]:
    """Chunks of all documents in a deterministic order."""
    return [chunk for doc in docs for section in doc.sections for chunk in chunk_section(doc, section)]
