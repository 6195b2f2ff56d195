"""Corpus loading, validation errors and chunking (no models needed)."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from knowledge.chunking import MAX_CHARS, chunk_documents, split_section_text
from knowledge.corpus import (
    CorpusError,
    check_parallel_languages,
    knowledge_version,
    load_corpus,
    parse_document,
)

FIXTURES = Path(__file__).parent / "fixtures" / "corpus"

GOOD_FRONT = """---
id: demo-doc
title: "Demo"
language: en
source:
  - {guideline: "NICE NG143 Fever in under 5s", year: 2019, section: "1.2 Table 1"}
version: "1.0.0"
reviewed: 2026-11-23
---
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_front_matter_and_sections_are_parsed() -> None:
    doc = parse_document(FIXTURES / "chest-pain-basics.zh.md")
    assert doc.doc_id == "chest-pain-basics"
    assert doc.language == "zh"
    assert doc.title == "胸痛：什么时候要叫救护车"
    assert doc.version == "1.0.0"
    assert doc.reviewed == date(2026, 11, 23)
    assert doc.sources[0].guideline == "NICE CG95 Chest pain of recent onset"
    assert doc.sources[0].year == 2016
    # The `# Title` line is not content, so no intro section appears.
    assert [s.section_id for s in doc.sections] == ["cardiac", "musculoskeletal"]
    assert doc.sections[0].title == "心脏相关的胸痛"
    assert "拨打120" in doc.sections[0].text
    assert "肌肉" not in doc.sections[0].text  # sections do not bleed into each other


def test_load_corpus_sorted_and_parallel() -> None:
    docs = load_corpus(FIXTURES)
    assert [d.key for d in docs] == [
        ("chest-pain-basics", "en"),
        ("chest-pain-basics", "zh"),
        ("infant-fever-basics", "en"),
        ("infant-fever-basics", "zh"),
    ]
    assert check_parallel_languages(docs) == []


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("demo-doc.en.md", "no front matter\n## A {#a}\ntext\n", "front matter"),
        ("demo-doc.en.md", "---\nid: demo-doc\ntitle: [unclosed\n---\n## A {#a}\nx\n", "YAML"),
        (
            "demo-doc.en.md",
            GOOD_FRONT.replace('version: "1.0.0"\n', "") + "## A {#a}\nx\n",
            "missing: version",
        ),
        ("demo-doc.en.md", GOOD_FRONT.replace("language: en", "language: fr") + "## A {#a}\nx\n", "zh or en"),
        (
            "demo-doc.en.md",
            GOOD_FRONT.replace("reviewed:", "tags: [x]\nreviewed:") + "## A {#a}\nx\n",
            "unknown",
        ),
        ("demo-doc.en.md", GOOD_FRONT.replace("year: 2019", "year: soon") + "## A {#a}\nx\n", "year"),
        ("other-name.en.md", GOOD_FRONT + "## A {#a}\nx\n", "file name must match"),
        ("demo-doc.en.md", GOOD_FRONT + "## Heading without id\nx\n", "explicit id"),
        ("demo-doc.en.md", GOOD_FRONT + "## A {#a}\nx\n## B {#a}\ny\n", "duplicate section id"),
        ("demo-doc.en.md", GOOD_FRONT + "## A {#a}\n\n## B {#b}\ny\n", "empty"),
        ("demo-doc.en.md", GOOD_FRONT + "just text, no sections\n", "no '## Title"),
    ],
)
def test_malformed_files_raise_errors_naming_the_file(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(CorpusError) as info:
        parse_document(path)
    assert name in str(info.value)
    assert expected in str(info.value)
    assert info.value.path == path


def test_error_reports_line_of_bad_heading(tmp_path: Path) -> None:
    path = write(tmp_path, "demo-doc.en.md", GOOD_FRONT + "## A {#a}\nok\n\n## Broken heading\n")
    with pytest.raises(CorpusError) as info:
        parse_document(path)
    assert info.value.line == 13
    assert "demo-doc.en.md:13" in str(info.value)


def test_load_corpus_fails_on_first_malformed_file_and_ignores_readme(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES, tmp_path / "c")
    write(tmp_path / "c", "README.md", "# notes for writers\n")  # not a corpus file
    assert len(load_corpus(tmp_path / "c")) == 4
    write(tmp_path / "c", "broken-doc.en.md", "oops\n")
    with pytest.raises(CorpusError, match="broken-doc.en.md"):
        load_corpus(tmp_path / "c")


def test_missing_or_empty_corpus_folder(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        load_corpus(tmp_path / "nope")
    with pytest.raises(CorpusError, match="no '<doc-id>.<lang>.md' files"):
        load_corpus(tmp_path)


def test_parallel_language_problems_are_reported(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES, tmp_path / "c")
    (tmp_path / "c" / "infant-fever-basics.en.md").unlink()
    zh = tmp_path / "c" / "chest-pain-basics.zh.md"
    zh.write_text(
        zh.read_text(encoding="utf-8").replace("{#musculoskeletal}", "{#chest-wall}"), encoding="utf-8"
    )
    problems = check_parallel_languages(load_corpus(tmp_path / "c"))
    assert any("infant-fever-basics: missing en" in p for p in problems)
    assert any("chest-pain-basics: section ids differ" in p and "chest-wall" in p for p in problems)


def test_knowledge_version_is_stable_and_tracks_content(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES, tmp_path / "c")
    first = knowledge_version(load_corpus(tmp_path / "c"))
    assert first == knowledge_version(tmp_path / "c")  # same input, same hash; path form works too
    assert len(first) == 12 and int(first, 16) >= 0
    doc = tmp_path / "c" / "chest-pain-basics.en.md"
    doc.write_text(doc.read_text(encoding="utf-8").replace("15 minutes", "20 minutes"), encoding="utf-8")
    assert knowledge_version(tmp_path / "c") != first


def test_chunk_ids_are_stable_and_well_formed() -> None:
    first = chunk_documents(load_corpus(FIXTURES))
    second = chunk_documents(load_corpus(FIXTURES))
    assert [(c.chunk_id, c.content_hash) for c in first] == [(c.chunk_id, c.content_hash) for c in second]
    ids = [c.chunk_id for c in first]
    assert len(set(ids)) == len(ids)
    assert "chest-pain-basics:zh:cardiac:0" in ids
    chunk = next(c for c in first if c.chunk_id == "infant-fever-basics:en:fontanelle:0")
    assert (chunk.doc_id, chunk.lang, chunk.section, chunk.n) == (
        "infant-fever-basics",
        "en",
        "fontanelle",
        0,
    )
    assert chunk.title == "Fever in babies: age comes first"
    assert chunk.section_title == "Soft spot and alertness"
    assert chunk.sources[0].year == 2019
    assert chunk.embed_text.startswith("Fever in babies: age comes first — Soft spot and alertness\n")


def test_long_sections_split_by_paragraph_with_overlap() -> None:
    paragraphs = [
        f"Paragraph {i} talks about topic {i} in some detail. " * 5 + f"Closing remark {i}." for i in range(8)
    ]
    text = "\n\n".join(paragraphs)
    pieces = split_section_text(text, "en")
    assert len(pieces) >= 3
    assert all(len(p) <= MAX_CHARS["en"] + 150 for p in pieces)  # target size plus a small overlap
    for para in paragraphs:  # nothing is lost
        assert any(para in p for p in pieces)
    # Each later chunk opens with the closing sentence(s) of the previous chunk: a short overlap.
    for prev, cur in zip(pieces, pieces[1:], strict=False):
        overlap = cur.split("\n\n")[0]
        assert prev.endswith(overlap)
        assert overlap.endswith("Closing remark " + prev[-2] + ".")
        assert 0 < len(overlap) <= 120


def test_chinese_sections_use_smaller_chunks() -> None:
    text = "\n\n".join(
        f"第{i}段：发热时多喝水，注意观察精神状态和尿量，如有抽搐立即就医。" * 3 for i in range(12)
    )
    pieces = split_section_text(text, "zh")
    assert len(pieces) >= 3
    assert all(len(p) <= MAX_CHARS["zh"] + 80 for p in pieces)
    short = "发热时多喝水。"
    assert split_section_text(short, "zh") == [short]


def test_changed_section_changes_only_its_chunk_hashes(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES, tmp_path / "c")
    before = {c.chunk_id: c.content_hash for c in chunk_documents(load_corpus(tmp_path / "c"))}
    doc = tmp_path / "c" / "chest-pain-basics.en.md"
    doc.write_text(doc.read_text(encoding="utf-8").replace("15 minutes", "20 minutes"), encoding="utf-8")
    after = {c.chunk_id: c.content_hash for c in chunk_documents(load_corpus(tmp_path / "c"))}
    changed = {cid for cid in before if before[cid] != after[cid]}
    assert changed == {"chest-pain-basics:en:cardiac:0"}
