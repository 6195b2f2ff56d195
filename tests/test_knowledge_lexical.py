"""Tokeniser and BM25 (no models needed)."""

from __future__ import annotations

from pathlib import Path

from knowledge.chunking import chunk_documents
from knowledge.corpus import load_corpus
from knowledge.lexical import BM25Index, stem, tokenize

FIXTURES = Path(__file__).parent / "fixtures" / "corpus"


def test_chinese_unigrams_and_bigrams_after_traditional_to_simplified() -> None:
    tokens = tokenize("發燒咳嗽")
    assert tokens == ["发", "烧", "咳", "嗽", "发烧", "烧咳", "咳嗽"]


def test_english_words_are_lowercased_stemmed_and_stopwords_dropped() -> None:
    assert tokenize("The baby is Vomiting and has rashes") == ["baby", "vomit", "rash"]
    assert stem("bleeding") == stem("bleeds") == "bleed"
    assert stem("breathing") == stem("breathe")
    assert stem("running") == "run"


def test_mixed_text_numbers_and_full_width_characters() -> None:
    tokens = tokenize("体温３８.５℃ qSOFA")
    assert "38.5" in tokens and "qsofa" in tokens
    assert "体温" in tokens


def test_bm25_ranks_exact_term_matches() -> None:
    index = BM25Index(
        ["a", "b", "c"],
        [tokenize("头痛发热"), tokenize("腹痛腹泻"), tokenize("囟门鼓起要立即就医，囟门凹陷提示脱水")],
    )
    assert index.search("囟门", k=3)[0][0] == "c"
    assert index.search("拉肚子腹泻怎么办", k=1)[0][0] == "b"
    assert index.search("完全无关的词xyz", k=3) == []
    assert [doc for doc, _ in index.search("痛", k=3, allow=lambda d: d != "a")] == ["b"]


def test_bm25_over_fixture_corpus_finds_exact_chinese_term() -> None:
    chunks = chunk_documents(load_corpus(FIXTURES))
    index = BM25Index([c.chunk_id for c in chunks], (tokenize(c.text) for c in chunks))
    top = index.search("囟門", k=3)  # traditional form of 囟门
    assert top[0][0] == "infant-fever-basics:zh:fontanelle:0"
    assert index.search("fontanelle bulging", k=1)[0][0] == "infant-fever-basics:en:fontanelle:0"
