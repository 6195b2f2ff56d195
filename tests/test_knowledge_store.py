"""Incremental indexing into a real Chroma store, counting how many texts really get embedded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from assistant.settings import Settings
from knowledge.api import build_knowledge_base, open_knowledge_base
from knowledge.embeddings import Embedder, make_embedder
from knowledge.store import KnowledgeIndexError

FIXTURES = Path(__file__).parent / "fixtures" / "corpus"
pytestmark = pytest.mark.slow


class CountingEmbedder:
    """Wraps a real embedder and records every text sent for embedding."""

    def __init__(self, inner: Embedder, name: str | None = None) -> None:
        self.inner = inner
        self._name = name or inner.name
        self.embedded: list[str] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.embedded.extend(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


@pytest.fixture(scope="module")
def use_embedder() -> Embedder:
    return make_embedder(Settings(embedding_backend="use"))  # cached per process


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    shutil.copytree(FIXTURES, tmp_path / "corpus")
    return Settings(data_dir=tmp_path / "data", knowledge_dir=tmp_path / "corpus", collection_name="test_kb")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_incremental_rebuild_embeds_only_what_changed(settings: Settings, use_embedder: Embedder) -> None:
    counter = CountingEmbedder(use_embedder)
    first = build_knowledge_base(settings, embedder=counter)
    assert (first.added, first.updated, first.deleted, first.unchanged) == (8, 0, 0, 0)
    assert first.rebuilt_from_scratch and len(counter.embedded) == 8

    counter.embedded.clear()
    again = build_knowledge_base(settings, embedder=counter)
    assert (again.added, again.updated, again.deleted, again.unchanged) == (0, 0, 0, 8)
    assert counter.embedded == []  # unchanged docs are not re-embedded
    assert again.knowledge_version == first.knowledge_version and not again.rebuilt_from_scratch

    edit(settings.knowledge_dir / "chest-pain-basics.en.md", "15 minutes", "20 minutes")
    changed = build_knowledge_base(settings, embedder=counter)
    assert (changed.added, changed.updated, changed.deleted, changed.unchanged) == (0, 1, 0, 7)
    assert len(counter.embedded) == 1 and "20 minutes" in counter.embedded[0]
    assert changed.knowledge_version != first.knowledge_version

    counter.embedded.clear()
    (settings.knowledge_dir / "infant-fever-basics.zh.md").unlink()
    removed = build_knowledge_base(settings, embedder=counter)
    assert (removed.added, removed.updated, removed.deleted, removed.unchanged) == (0, 0, 2, 6)
    assert counter.embedded == []

    kb = open_knowledge_base(settings, embedder=counter, sync=False)
    assert kb.collection.count() == 6
    assert not any(cid.startswith("infant-fever-basics:zh:") for cid in kb.collection.get()["ids"])
    # The stored vector for the edited chunk is the new text's vector.
    stored = kb.collection.get(ids=["chest-pain-basics:en:cardiac:0"], include=["documents"])
    assert "20 minutes" in stored["documents"][0]


def test_new_section_is_added(settings: Settings, use_embedder: Embedder) -> None:
    counter = CountingEmbedder(use_embedder)
    build_knowledge_base(settings, embedder=counter)
    counter.embedded.clear()
    with (settings.knowledge_dir / "chest-pain-basics.en.md").open("a", encoding="utf-8") as f:
        f.write("\n## Panic and chest tightness {#anxiety}\n\n")
        f.write("A racing heart with fear can feel like chest pain.\n")
    report = build_knowledge_base(settings, embedder=counter)
    assert (report.added, report.updated, report.deleted) == (1, 0, 0)
    assert counter.embedded == [
        "Chest pain: when to call an ambulance — Panic and chest tightness\n"
        "A racing heart with fear can feel like chest pain."
    ]


def test_changing_the_embedder_rebuilds_from_scratch(settings: Settings, use_embedder: Embedder) -> None:
    build_knowledge_base(settings, embedder=CountingEmbedder(use_embedder))
    other = CountingEmbedder(use_embedder, name="some-other-model")
    report = build_knowledge_base(settings, embedder=other)
    assert report.rebuilt_from_scratch and report.added == 8 and report.unchanged == 0
    assert len(other.embedded) == 8
    # Opening read-only with the original embedder now refuses: its vectors are not in the index.
    with pytest.raises(KnowledgeIndexError, match="kb build"):
        open_knowledge_base(settings, embedder=use_embedder, sync=False)


def test_open_without_index_explains_how_to_build(settings: Settings, use_embedder: Embedder) -> None:
    with pytest.raises(KnowledgeIndexError, match="daozhen kb build"):
        open_knowledge_base(settings, embedder=use_embedder, sync=False)
    kb = open_knowledge_base(settings, embedder=use_embedder)  # sync=True builds what is missing
    assert kb.collection.count() == 8


def test_build_report_summary_in_both_languages(settings: Settings, use_embedder: Embedder) -> None:
    report = build_knowledge_base(settings, embedder=use_embedder)
    assert "added 8" in report.summary("en")
    assert "新增 8" in report.summary("zh")
    assert report.to_dict()["knowledge_version"] == report.knowledge_version
