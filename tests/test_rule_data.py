"""Integrity of the triage rule data (tools/data/*.yaml) and of its links to the guideline corpus.

Every rule must be traceable: its `source` "<doc>#<section>" names a corpus file
knowledge/corpus/<doc>.zh.md holding a `{#section}` heading. Department ids used by rules must exist
in the catalogue, every concept pattern must compile, and load_rulebook must refuse broken data.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tools.departments import PEDIATRIC_EQUIVALENT, load_catalogue
from tools.patient import age_band
from tools.rulebook import DATA_DIR, RULE_FILES, load_rulebook
from tools.triage_models import Facts, Level, VitalSigns

CORPUS_DIR = Path(__file__).resolve().parent.parent / "knowledge" / "corpus"
RULES = load_rulebook()
CATALOGUE = load_catalogue()
KNOWN_BANDS = {age_band(m) for m in (0.5, 2, 4, 8, 24, 100, 300, 900)} | {"all", "pregnant"}


def _all_sources() -> list[tuple[str, str]]:
    """(owner, source) for every rule that cites the corpus."""
    found = [(f"red flag {r.id}", r.source) for r in RULES.red_flags]
    found += [(f"complaint {name}", c.source) for name, c in RULES.complaints.items()]
    found += [(f"vital {v.id}", v.source) for v in RULES.vital_rules]
    found += [(f"combo {c.id}", c.source) for c in RULES.vital_combos]
    found += [(f"advice {lv.value}", t.source) for lv, t in RULES.advice.levels.items()]
    return found


def _section_ids(doc_id: str) -> set[str] | None:
    path = CORPUS_DIR / f"{doc_id}.zh.md"
    if not path.is_file():
        return None
    return set(re.findall(r"\{#([^}\s]+)\}", path.read_text(encoding="utf-8")))


# --------------------------------------------------------------------------------------------
# Sources resolve to the corpus
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", sorted({s for _, s in _all_sources()}))
def test_every_rule_source_resolves_to_a_corpus_section(source: str) -> None:
    doc_id, sep, section = source.partition("#")
    assert sep and doc_id and section, f"source must be '<doc>#<section>': {source!r}"
    sections = _section_ids(doc_id)
    owners = [owner for owner, s in _all_sources() if s == source]
    assert sections is not None, f"{doc_id}.zh.md missing from knowledge/corpus (cited by {owners})"
    assert section in sections, f"{source}: no {{#{section}}} heading (cited by {owners})"


def test_sources_method_covers_every_rule() -> None:
    assert RULES.sources() == {s for _, s in _all_sources()}


def test_department_catalogue_source_resolves() -> None:
    raw = yaml.safe_load((DATA_DIR / "departments.yaml").read_text(encoding="utf-8"))
    source = raw["source"]
    sections = _section_ids(source["doc_id"])
    assert sections is not None and source["section"] in sections


# --------------------------------------------------------------------------------------------
# Departments
# --------------------------------------------------------------------------------------------


def _departments_used() -> dict[str, list[str]]:
    used: dict[str, list[str]] = {}
    for rule in RULES.red_flags:
        for dept in rule.departments:
            used.setdefault(dept, []).append(rule.id)
    for name, comp in RULES.complaints.items():
        for dept in [*comp.departments, *comp.child_departments]:
            used.setdefault(dept, []).append(f"complaint {name}")
    # ids the engine adds in code (vital signs, pregnancy, fallback)
    for dept in ("emergency", "obstetrics", "general_practice"):
        used.setdefault(dept, []).append("tools/triage.py")
    return used


def test_every_department_used_by_rules_exists_in_the_catalogue() -> None:
    unknown = {d: owners for d, owners in _departments_used().items() if d not in CATALOGUE.departments}
    assert not unknown, unknown


def test_every_pediatric_equivalent_exists_in_the_catalogue() -> None:
    for general, paediatric in PEDIATRIC_EQUIVALENT.items():
        assert general in CATALOGUE.departments, general
        assert paediatric in CATALOGUE.departments, paediatric
        assert CATALOGUE.departments[paediatric].hospital == "children"


def test_catalogue_ids_are_unique_and_named_in_both_languages() -> None:
    raw = yaml.safe_load((DATA_DIR / "departments.yaml").read_text(encoding="utf-8"))
    ids = [d["id"] for d in raw["departments"]]
    assert len(ids) == len(set(ids))
    for dept in CATALOGUE.departments.values():
        assert dept.zh.strip() and dept.en.strip()
        assert dept.hospital in {"general", "children"}
        if dept.id.startswith("ped_"):
            assert dept.hospital == "children", dept.id


def test_red_flags_that_are_emergencies_route_to_an_emergency_department() -> None:
    for rule in RULES.red_flags:
        if rule.level.rank >= Level.emergency.rank:
            assert {"emergency", "ped_emergency"} & set(
                rule.departments
            ) or "obstetrics" in rule.departments, rule.id


# --------------------------------------------------------------------------------------------
# Concepts, typos, questions, vitals, advice
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("concept", sorted(RULES.concepts))
def test_every_concept_pattern_compiles_and_matches_something(concept: str) -> None:
    definition = RULES.concepts[concept]
    assert definition.zh or definition.en, f"{concept} has no patterns"
    for pattern in [*definition.zh, *definition.en]:
        compiled = re.compile(pattern)
        assert not compiled.match(""), f"{concept}: pattern {pattern!r} matches the empty string"
    for pattern in definition.en:
        assert pattern == pattern.lower() or "\\" in pattern, (
            f"{concept}: en pattern must be lower-case: {pattern!r}"
        )


def test_concept_names_are_unique_in_the_yaml() -> None:
    text = (DATA_DIR / "concepts.yaml").read_text(encoding="utf-8")
    names = re.findall(r"^  ([a-z_]+):\s*$", text, flags=re.MULTILINE)
    assert len(set(names)) == len(RULES.concepts)
    duplicates = [n for n, c in Counter(names).items() if c > 1]
    assert not duplicates, duplicates  # YAML would silently keep only the last definition


def test_rule_ids_are_unique() -> None:
    ids = (
        [r.id for r in RULES.red_flags]
        + [v.id for v in RULES.vital_rules]
        + [c.id for c in RULES.vital_combos]
    )
    assert [i for i, c in Counter(ids).items() if c > 1] == []


def test_red_flags_are_at_least_urgent() -> None:
    for rule in RULES.red_flags:
        assert rule.level.rank >= Level.urgent.rank, rule.id
        if rule.if_mild:
            assert rule.if_mild.rank < rule.level.rank, rule.id


def test_typo_replacements_are_real_corrections() -> None:
    assert RULES.typos
    for wrong, right in RULES.typos.items():
        assert wrong != right
        assert right not in RULES.typos, f"chained replacement {wrong} -> {right}"


def test_question_facts_point_at_facts_fields() -> None:
    for qid, question in RULES.questions.items():
        if question.fact is None:
            continue
        model: type = Facts
        for part in question.fact.split("."):
            assert part in model.model_fields, f"question {qid}: unknown fact {question.fact}"
            model = VitalSigns if part == "vitals" else object
        if question.kind == "yes_no":
            assert question.yes_text and question.no_text, qid


def test_every_complaint_question_exists() -> None:
    for name, comp in RULES.complaints.items():
        for qid in comp.questions:
            assert qid in RULES.questions, f"{name}: {qid}"


def test_vital_rules_use_known_vitals_and_bands() -> None:
    vitals = set(VitalSigns.model_fields)
    rule_ids = {v.id for v in RULES.vital_rules}
    for rule in RULES.vital_rules:
        assert rule.vital in vitals, rule.id
        assert set(rule.bands) <= KNOWN_BANDS, (rule.id, rule.bands)
    for combo in RULES.vital_combos:
        assert set(combo.vitals) <= rule_ids, combo.id


def test_every_level_has_bilingual_advice_and_emergencies_name_120() -> None:
    assert set(RULES.advice.levels) == set(Level)
    for level, text in RULES.advice.levels.items():
        assert text.label.zh and text.label.en and text.advice.zh and text.advice.en
        if level.rank >= Level.emergency.rank:
            assert "120" in text.advice.zh and "120" in text.advice.en, level
    assert "120" in RULES.advice.disclaimer.zh and "120" in RULES.advice.disclaimer.en


def test_red_flag_advice_for_ambulance_rules_names_120() -> None:
    for rule in RULES.red_flags:
        if rule.advice and rule.level == Level.emergency_ambulance:
            assert "120" in rule.advice.zh and "120" in rule.advice.en, rule.id


# --------------------------------------------------------------------------------------------
# load_rulebook validates references
# --------------------------------------------------------------------------------------------


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    target.mkdir()
    for name in RULE_FILES:
        shutil.copy(DATA_DIR / f"{name}.yaml", target / f"{name}.yaml")
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"fixture edit target {old!r} not found in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_unmodified_copy_loads(data_copy: Path) -> None:
    book = load_rulebook(data_copy)
    assert len(book.red_flags) == len(RULES.red_flags)
    assert book.version == RULES.version  # same bytes, same version


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("red_flags", "all: [chest_pain]", "all: [chest_pain_typo]", "unknown concept chest_pain_typo"),
        (
            "complaints",
            "questions: [breathing, fever, hemoptysis, duration]",
            "questions: [breathing, no_such_question]",
            "unknown question no_such_question",
        ),
        (
            "questions",
            "concepts: [dyspnea, severe_dyspnea, grunting]",
            "concepts: [dyspnoea]",
            "unknown concept dyspnoea",
        ),
        (
            "vitals",
            "any: [chest_pain, headache,",
            "any: [chest_ache, headache,",
            "unknown concept chest_ache",
        ),
    ],
)
def test_broken_reference_is_refused(data_copy: Path, file: str, old: str, new: str, message: str) -> None:
    _edit(data_copy / f"{file}.yaml", old, new)
    with pytest.raises(ValueError, match=message):
        load_rulebook(data_copy)


def test_red_flag_without_condition_is_refused(data_copy: Path) -> None:
    _edit(data_copy / "red_flags.yaml", "    all: [syncope]\n", "")
    with pytest.raises(ValueError, match="RF-CARD-03 needs `all` or `any`"):
        load_rulebook(data_copy)


def test_unknown_level_is_refused(data_copy: Path) -> None:
    _edit(data_copy / "red_flags.yaml", "level: emergency_ambulance", "level: very_urgent")
    with pytest.raises(ValueError):
        load_rulebook(data_copy)


def test_changed_data_changes_the_rules_version(data_copy: Path) -> None:
    _edit(data_copy / "typos.yaml", "抽蓄: 抽搐", "抽蓄: 抽搐\n  抽出: 抽搐")
    assert load_rulebook(data_copy).version != RULES.version


# --- follow-up questions: the conversation adds yes_text / no_text to the description, so the
# engine must read each answer sentence the way the question means it.
def _question_cases() -> list[tuple[str, str, str]]:
    from tools.rulebook import load_rulebook

    cases = []
    for qid, q in load_rulebook().questions.items():
        if q.concepts and q.yes_text and q.no_text:
            for lang in ("zh", "en"):
                cases.append((qid, lang, "yes"))
                cases.append((qid, lang, "no"))
    return cases


@pytest.mark.parametrize(("qid", "lang", "answer"), _question_cases())
def test_question_answer_sentences_read_as_meant(qid: str, lang: str, answer: str) -> None:
    from tools.fact_extraction import normalize_text
    from tools.rulebook import load_rulebook
    from tools.triage import _engine

    q = load_rulebook().questions[qid]
    sentence = (q.yes_text if answer == "yes" else q.no_text).get(lang)
    match = _engine().matcher.match(normalize_text(sentence))
    present = set(match.present())
    # "inverted" questions ("can you walk?") mean the concept is present on "no"
    affirmative = (answer == "yes") != q.inverted
    if affirmative:
        assert present & set(q.concepts), f"{qid}/{lang}: {sentence!r} should match one of {q.concepts}"
    else:
        alarming = set(q.concepts) - {"well_appearing", "mild", "chronic_course"}
        assert not (present & alarming), f"{qid}/{lang}: {sentence!r} must not affirm {sorted(alarming)}"


@pytest.mark.parametrize(("qid", "lang"), sorted({(c[0], c[1]) for c in _question_cases()}))
def test_question_no_answer_never_raises_the_level(qid: str, lang: str) -> None:
    from tools.rulebook import load_rulebook
    from tools.triage import assess
    from tools.triage_models import TriageInput

    q = load_rulebook().questions[qid]
    base = "头痛两天" if lang == "zh" else "headache for two days"
    sep = "，" if lang == "zh" else ", "
    before = assess(TriageInput(text=base, lang=lang)).level
    reassuring = q.yes_text if q.inverted else q.no_text
    after = assess(TriageInput(text=base + sep + reassuring.get(lang), lang=lang)).level
    assert after.rank <= before.rank, f"{qid}/{lang}: {reassuring.get(lang)!r} raised {before} -> {after}"
