"""Guideline corpus (knowledge/corpus/*.md), its ingestion and hybrid retrieval.

Public entry points (imported lazily so `import knowledge.corpus` stays light):
build_knowledge_base(settings) -> BuildReport, open_knowledge_base(settings) -> KnowledgeBase.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_knowledge_base", "open_knowledge_base", "KnowledgeBase", "BuildReport", "Hit"]

_LAZY = {
    "build_knowledge_base": "knowledge.api",
    "open_knowledge_base": "knowledge.api",
    "KnowledgeBase": "knowledge.retrieval",
    "Hit": "knowledge.retrieval",
    "BuildReport": "knowledge.store",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'knowledge' has no attribute {name!r}")
