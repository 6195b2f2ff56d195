"""Persistent Chroma index of corpus chunks with incremental rebuilds.

The collection records which embedder produced its vectors; a different embedder means the old
vectors are meaningless, so the collection is dropped and rebuilt. Otherwise only chunks whose id or
content hash changed are embedded, and chunks no longer in the corpus are deleted.
Vectors are always computed by our own Embedder; Chroma's default embedding function is never used.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from knowledge.chunking import Chunk
from knowledge.embeddings import Embedder

_EMBEDDER_KEY = "embedder"
_DIM_KEY = "embedding_dim"
_VERSION_KEY = "knowledge_version"
_UPSERT_BATCH = 256


class KnowledgeIndexError(RuntimeError):
    """The vector index is missing or cannot be used."""


@dataclass(frozen=True)
class BuildReport:
    added: int
    updated: int
    deleted: int
    unchanged: int
    seconds: float
    knowledge_version: str
    embedder: str = ""
    rebuilt_from_scratch: bool = False

    @property
    def total(self) -> int:
        return self.added + self.updated + self.unchanged

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self, lang: str = "en") -> str:
        if lang == "zh":
            head = "知识库已重建" if self.rebuilt_from_scratch else "知识库已更新"
            return (
                f"{head}（版本 {self.knowledge_version}，模型 {self.embedder}）："
                f"新增 {self.added}，更新 {self.updated}，"
                f"删除 {self.deleted}，未变 {self.unchanged}，共 {self.total} 段，用时 {self.seconds:.1f} 秒"
            )
        head = "Knowledge base rebuilt" if self.rebuilt_from_scratch else "Knowledge base updated"
        return (
            f"{head} (version {self.knowledge_version}, embedder {self.embedder}): added {self.added}, "
            f"updated {self.updated}, deleted {self.deleted}, unchanged {self.unchanged}, "
            f"{self.total} chunks, {self.seconds:.1f}s"
        )


def open_client(chroma_dir: Path) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(
        path=str(chroma_dir), settings=ChromaSettings(anonymized_telemetry=False)
    )


def _collection_names(client: Any) -> set[str]:
    return {c if isinstance(c, str) else c.name for c in client.list_collections()}


def _create_collection(client: Any, name: str, embedder: Embedder, version: str) -> Any:
    return client.create_collection(
        name=name,
        embedding_function=None,
        configuration={"hnsw": {"space": "cosine"}},
        metadata={_EMBEDDER_KEY: embedder.name, _DIM_KEY: embedder.dim, _VERSION_KEY: version},
    )


def get_collection(chroma_dir: Path, name: str) -> Any:
    """An existing collection (for querying); raises KnowledgeIndexError when it was never built."""
    client = open_client(chroma_dir)
    if name not in _collection_names(client):
        raise KnowledgeIndexError(
            f"knowledge index '{name}' not found in {chroma_dir}; run `daozhen kb build` / "
            f"未找到知识库索引，请先运行 `daozhen kb build`"
        )
    return client.get_collection(name=name, embedding_function=None)


def collection_embedder(collection: Any) -> str:
    return str((collection.metadata or {}).get(_EMBEDDER_KEY, ""))


def collection_version(collection: Any) -> str:
    return str((collection.metadata or {}).get(_VERSION_KEY, ""))


def _chunk_metadata(chunk: Chunk) -> dict[str, Any]:
    return {
        "doc_id": chunk.doc_id,
        "lang": chunk.lang,
        "section": chunk.section,
        "n": chunk.n,
        "content_hash": chunk.content_hash,
        "doc_version": chunk.doc_version,
    }


def build_index(
    chunks: Sequence[Chunk],
    embedder: Embedder,
    chroma_dir: Path,
    collection_name: str,
    knowledge_version: str,
) -> BuildReport:
    """Bring the collection in line with `chunks`, embedding only what is new or changed."""
    started = time.perf_counter()
    ids = [c.chunk_id for c in chunks]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"duplicate chunk ids: {dupes[:5]}")

    client = open_client(chroma_dir)
    rebuilt = False
    collection = None
    if collection_name in _collection_names(client):
        collection = client.get_collection(name=collection_name, embedding_function=None)
        meta = collection.metadata or {}
        if meta.get(_EMBEDDER_KEY) != embedder.name or meta.get(_DIM_KEY) != embedder.dim:
            client.delete_collection(name=collection_name)
            collection = None
    if collection is None:
        collection = _create_collection(client, collection_name, embedder, knowledge_version)
        rebuilt = True

    stored = collection.get(include=["metadatas"])
    stored_hash = {
        cid: (meta or {}).get("content_hash")
        for cid, meta in zip(stored["ids"], stored["metadatas"], strict=True)
    }
    current = {c.chunk_id: c for c in chunks}
    new = [c for c in chunks if c.chunk_id not in stored_hash]
    changed = [c for c in chunks if c.chunk_id in stored_hash and stored_hash[c.chunk_id] != c.content_hash]
    stale = [cid for cid in stored_hash if cid not in current]

    if stale:
        collection.delete(ids=stale)
    to_embed = new + changed
    for start in range(0, len(to_embed), _UPSERT_BATCH):
        batch = to_embed[start : start + _UPSERT_BATCH]
        vectors = embedder.embed_documents([c.embed_text for c in batch])
        collection.upsert(
            ids=[c.chunk_id for c in batch],
            embeddings=vectors,
            documents=[c.text for c in batch],
            metadatas=[_chunk_metadata(c) for c in batch],
        )
    if collection_version(collection) != knowledge_version:
        collection.modify(metadata={**(collection.metadata or {}), _VERSION_KEY: knowledge_version})

    return BuildReport(
        added=len(new),
        updated=len(changed),
        deleted=len(stale),
        unchanged=len(chunks) - len(new) - len(changed),
        seconds=round(time.perf_counter() - started, 3),
        knowledge_version=knowledge_version,
        embedder=embedder.name,
        rebuilt_from_scratch=rebuilt,
    )


def query_dense(
    collection: Any, vector: Sequence[float], n: int, where: dict[str, Any] | None = None
) -> list[tuple[str, float]]:
    """(chunk id, cosine similarity) pairs, best first."""
    count = collection.count()
    if count == 0 or n <= 0:
        return []
    result = collection.query(
        query_embeddings=[list(vector)], n_results=min(n, count), where=where, include=["distances"]
    )
    return [
        (cid, 1.0 - float(dist)) for cid, dist in zip(result["ids"][0], result["distances"][0], strict=True)
    ]
