"""Entry points for the CLI and the session: build the index, open the knowledge base."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from knowledge.chunking import chunk_documents
from knowledge.corpus import check_parallel_languages, knowledge_version, load_corpus
from knowledge.embeddings import Embedder, make_embedder
from knowledge.retrieval import KnowledgeBase
from knowledge.store import (
    BuildReport,
    KnowledgeIndexError,
    build_index,
    collection_embedder,
    collection_version,
    get_collection,
)

if TYPE_CHECKING:
    from assistant.settings import Settings

log = logging.getLogger(__name__)


def build_knowledge_base(settings: Settings, embedder: Embedder | None = None) -> BuildReport:
    """Load the corpus and incrementally (re)index it. Raises CorpusError on a malformed corpus file.

    embedder: defaults to make_embedder(settings); injectable for tests and tools.
    """
    docs = load_corpus(settings.knowledge_dir)
    for problem in check_parallel_languages(docs):
        log.warning("knowledge corpus: %s", problem)
    return build_index(
        chunk_documents(docs),
        embedder or make_embedder(settings),
        settings.chroma_dir,
        settings.collection_name,
        knowledge_version(docs),
    )


def open_knowledge_base(
    settings: Settings, *, sync: bool = True, embedder: Embedder | None = None
) -> KnowledgeBase:
    """A ready KnowledgeBase for the configured corpus and embedder.

    sync=True (default) first brings the index up to date, which costs only hashing when nothing
    changed, so answers never cite text whose vectors are stale. sync=False only reads the index and
    raises KnowledgeIndexError when it is missing or was built with another embedder.
    """
    docs = load_corpus(settings.knowledge_dir)
    chunks = chunk_documents(docs)
    version = knowledge_version(docs)
    embedder = embedder or make_embedder(settings)
    if sync:
        build_index(chunks, embedder, settings.chroma_dir, settings.collection_name, version)
    collection = get_collection(settings.chroma_dir, settings.collection_name)
    if collection_embedder(collection) != embedder.name:
        raise KnowledgeIndexError(
            f"index was built with '{collection_embedder(collection)}' "
            f"but settings select '{embedder.name}'; "
            f"run `daozhen kb build` / 索引所用模型与当前设置不一致，请重新运行 `daozhen kb build`"
        )
    if collection_version(collection) != version:
        log.warning(
            "knowledge index is older than the corpus (%s != %s); run `daozhen kb build`",
            collection_version(collection),
            version,
        )
    return KnowledgeBase(docs, chunks, embedder, collection, version)
