"""Guideline sections by citation (doc_id + section), so a card's citations open the text.

Reads the corpus files directly (a third of a second, once): it needs no embedding model and
works while the knowledge base is still loading.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from knowledge.corpus import LANGUAGES, Document, load_corpus


class GuidelineLibrary:
    def __init__(self, corpus_dir: Path) -> None:
        self.corpus_dir = corpus_dir
        self._docs: dict[tuple[str, str], Document] | None = None
        self._lock = threading.Lock()

    def _index(self) -> dict[tuple[str, str], Document]:
        with self._lock:
            if self._docs is None:
                self._docs = {doc.key: doc for doc in load_corpus(self.corpus_dir)}
            return self._docs

    def section(self, doc_id: str, section: str, lang: str | None = None) -> dict[str, Any] | None:
        """The section in `lang` (else the other language); None when there is no such section."""
        docs = self._index()
        order = [lang] if lang in LANGUAGES else []
        order += [x for x in LANGUAGES if x not in order]
        for language in order:
            doc = docs.get((doc_id, language))
            found = doc.section(section) if doc is not None else None
            if doc is not None and found is not None:
                return {
                    "doc_id": doc_id,
                    "section": section,
                    "lang": language,
                    "title": doc.title,
                    "section_title": found.title,
                    "text": found.text,
                    "doc_version": doc.version,
                    "sources": [s.to_dict() for s in doc.sources],
                }
        return None
