"""Metric computations and bad-input handling of the triage eval harness (never the engine itself)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.bench import BenchConfig, BenchRow, percentile, run_benches, summarise
from evals.triage_eval import (
    EvalCase,
    Prediction,
    compute_metrics,
    load_cases,
    parse_row,
    run,
    to_triage_input,
)
from tools.triage_models import DepartmentChoice, Level, TriageInput, TriageResult

L = Level


def case(cid: str, lang: str, expected: Level, departments: tuple[str, ...]) -> EvalCase:
    return EvalCase(
        id=cid, text=f"text {cid}", expected_level=expected, expected_departments=departments, lang=lang
    )


# Six hand-made rows; the expected numbers below are counted by hand from this table.
#   id  lang expected             acceptable depts           predicted            predicted depts
#   c1  en   emergency_ambulance  emergency, cardiology      emergency_ambulance  emergency
#   c2  en   emergency            emergency, obstetrics      urgent               obstetrics, gynecology
#   c3  zh   urgent               orthopedics                routine              gp, rehab, orthopedics
#   c4  zh   routine              dermatology                emergency            cardiology
#   c5  zh   self_care            (none: skipped)            self_care            general_practice
#   c6  en   emergency            ped_emergency, pediatrics  emergency_ambulance  ped_emergency
CASES = [
    case("c1", "en", L.emergency_ambulance, ("emergency", "cardiology")),
    case("c2", "en", L.emergency, ("emergency", "obstetrics")),
    case("c3", "zh", L.urgent, ("orthopedics",)),
    case("c4", "zh", L.routine, ("dermatology",)),
    case("c5", "zh", L.self_care, ()),
    case("c6", "en", L.emergency, ("ped_emergency", "pediatrics")),
]
PREDICTIONS = [
    Prediction(L.emergency_ambulance, ("emergency",)),
    Prediction(L.urgent, ("obstetrics", "gynecology")),
    Prediction(L.routine, ("general_practice", "rehabilitation", "orthopedics")),
    Prediction(L.emergency, ("cardiology",)),
    Prediction(L.self_care, ("general_practice",)),
    Prediction(L.emergency_ambulance, ("ped_emergency",)),
]


@pytest.fixture(scope="module")
def metrics() -> dict:
    return compute_metrics(CASES, PREDICTIONS)


def test_overall_level_metrics(metrics: dict) -> None:
    overall = metrics["overall"]
    assert overall["n"] == 6
    assert overall["level_accuracy"] == pytest.approx(2 / 6)  # c1, c5
    assert overall["level_within_one"] == pytest.approx(5 / 6)  # all but c4 (routine -> emergency)
    assert overall["under_triage_n"] == 2 and overall["under_triage_rate"] == pytest.approx(2 / 6)  # c2, c3
    assert overall["over_triage_n"] == 2 and overall["over_triage_rate"] == pytest.approx(2 / 6)  # c4, c6


def test_emergency_recall_counts_either_emergency_level_as_a_hit(metrics: dict) -> None:
    overall = metrics["overall"]
    assert overall["emergency_n"] == 3  # c1, c2, c6
    assert overall["emergency_recall"] == pytest.approx(2 / 3)  # c6 predicted one level higher still counts
    assert overall["emergency_precision"] == pytest.approx(2 / 3)  # predicted c1, c4, c6; c4 is false


def test_department_top_k_skips_rows_without_expected_departments(metrics: dict) -> None:
    overall = metrics["overall"]
    assert overall["department_n"] == 5  # c5 skipped
    assert overall["department_top1"] == pytest.approx(3 / 5)  # c1, c2, c6
    assert overall["department_top3"] == pytest.approx(4 / 5)  # + c3 (third choice)


def test_per_language_breakdown(metrics: dict) -> None:
    en, zh = metrics["by_language"]["en"], metrics["by_language"]["zh"]
    assert (en["n"], zh["n"]) == (3, 3)
    assert en["level_accuracy"] == pytest.approx(1 / 3)
    assert en["emergency_recall"] == pytest.approx(2 / 3)
    assert en["department_top1"] == pytest.approx(1.0)
    assert zh["emergency_n"] == 0 and zh["emergency_recall"] is None
    assert zh["emergency_precision"] == pytest.approx(0.0)
    assert zh["department_n"] == 2
    assert zh["department_top1"] == pytest.approx(0.0)
    assert zh["department_top3"] == pytest.approx(0.5)


def test_per_level_breakdown(metrics: dict) -> None:
    by_level = metrics["by_level"]
    assert list(by_level) == ["emergency_ambulance", "emergency", "urgent", "routine", "self_care"]
    assert by_level["emergency"] == {
        "n": 2,
        "accuracy": pytest.approx(0.0),
        "under_triage_rate": pytest.approx(0.5),
        "over_triage_rate": pytest.approx(0.5),
    }
    assert by_level["urgent"]["under_triage_rate"] == pytest.approx(1.0)
    assert by_level["routine"]["over_triage_rate"] == pytest.approx(1.0)
    assert by_level["self_care"]["accuracy"] == pytest.approx(1.0)


def test_confusion_matrix(metrics: dict) -> None:
    confusion = metrics["confusion"]
    assert confusion["emergency_ambulance"]["emergency_ambulance"] == 1
    assert confusion["emergency"]["urgent"] == 1
    assert confusion["emergency"]["emergency_ambulance"] == 1
    assert confusion["urgent"]["routine"] == 1
    assert confusion["routine"]["emergency"] == 1
    assert confusion["self_care"]["self_care"] == 1
    assert sum(sum(row.values()) for row in confusion.values()) == 6
    assert all(len(row) == 5 for row in confusion.values())


def test_failures_list_under_triage_first_with_kinds(metrics: dict) -> None:
    failures = metrics["failures"]
    assert [f["id"] for f in failures] == ["c2", "c3", "c4", "c6"]
    assert failures[0]["kinds"] == ["under_triage"]
    assert failures[1]["kinds"] == ["under_triage"]  # department hit at rank 3 is not a failure
    assert failures[2]["kinds"] == ["over_triage", "department"]
    assert failures[0]["expected_level"] == "emergency" and failures[0]["predicted_level"] == "urgent"
    assert failures[0]["text"] == "text c2"


def test_department_only_failure_is_listed() -> None:
    result = compute_metrics([case("d1", "en", L.routine, ("ent",))], [Prediction(L.routine, ("neurology",))])
    assert [(f["id"], f["kinds"]) for f in result["failures"]] == [("d1", ["department"])]


def test_empty_input_gives_none_rates() -> None:
    result = compute_metrics([], [])
    assert result["overall"]["n"] == 0
    assert result["overall"]["level_accuracy"] is None
    assert result["overall"]["emergency_recall"] is None
    assert result["by_language"] == {}
    assert result["failures"] == []


def test_misaligned_lists_are_rejected() -> None:
    with pytest.raises(ValueError, match="1 cases but 0 predictions"):
        compute_metrics(CASES[:1], [])


def test_language_guessed_from_script_when_unlabelled() -> None:
    unlabelled = [
        EvalCase(id="a", text="孩子发烧", expected_level=L.urgent, expected_departments=()),
        EvalCase(id="b", text="child has a fever", expected_level=L.urgent, expected_departments=()),
    ]
    result = compute_metrics(unlabelled, [Prediction(L.urgent), Prediction(L.routine)])
    assert result["by_language"]["zh"]["level_accuracy"] == pytest.approx(1.0)
    assert result["by_language"]["en"]["level_accuracy"] == pytest.approx(0.0)


# --------------------------------------------------------------------------- loading / bad lines

GOOD = {"id": "g1", "text": "胸口痛", "expected_level": "emergency", "expected_departments": ["emergency"]}


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_cases_counts_bad_lines_with_line_numbers(tmp_path: Path) -> None:
    lines = [
        json.dumps(GOOD, ensure_ascii=False),  # 1 ok
        "",  # 2 blank: skipped, not an error
        "{not json",  # 3
        "[1, 2]",  # 4
        json.dumps({**GOOD, "id": "x", "text": "  "}),  # 5 empty text
        json.dumps({**GOOD, "id": "y", "expected_level": "critical"}),  # 6 unknown level
        json.dumps({"id": "z", "text": "a", "expected_level": "routine"}),  # 7 no departments
        json.dumps({**GOOD, "expected_departments": "cardiology"}),  # 8 not a list
        json.dumps({**GOOD, "age_months": -3}),  # 9 violates the Facts contract
        json.dumps({**GOOD, "lang": "fr"}),  # 10 unsupported language
        json.dumps(
            {"text": "cough", "expected_level": "self_care", "expected_departments": []}
        ),  # 11 ok, no id
    ]
    loaded = load_cases(write_jsonl(tmp_path / "rows.jsonl", lines))
    assert [c.id for c in loaded.cases] == ["g1", "line11"]
    assert loaded.case_lines == [1, 11]
    assert [e.line for e in loaded.errors] == [3, 4, 5, 6, 7, 8, 9, 10]
    assert all(e.stage == "load" for e in loaded.errors)
    by_line = {e.line: e for e in loaded.errors}
    assert "invalid JSON" in by_line[3].message
    assert "JSON object" in by_line[4].message
    assert by_line[5].id == "x" and "text" in by_line[5].message
    assert by_line[6].id == "y" and "critical" in by_line[6].message
    assert "expected_departments" in by_line[7].message
    assert "list" in by_line[8].message
    assert "age_months" in by_line[9].message
    assert "lang" in by_line[10].message


def test_structured_facts_passed_only_when_present() -> None:
    row = {**GOOD, "lang": "zh", "age_months": 2, "sex": "female", "note": "ignored", "guideline": "x#y"}
    with_facts = to_triage_input(parse_row(json.dumps(row), 1))
    assert with_facts.lang == "zh"
    assert with_facts.facts.age_months == 2
    assert with_facts.facts.sex == "female"
    bare = to_triage_input(parse_row(json.dumps({**GOOD, "age_months": None, "sex": None}), 1))
    assert bare.lang is None and bare.facts.age_months is None and bare.facts.sex is None


def fake_result(level: Level, departments: list[str]) -> TriageResult:
    return TriageResult.model_construct(
        level=level,
        departments=[DepartmentChoice(id=d, name=d, reason="") for d in departments],
        engine_version="fake-1",
    )


def test_run_counts_load_and_engine_errors_and_writes_report(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    lines = [
        json.dumps({**GOOD, "id": "r1", "age_months": 30}, ensure_ascii=False),
        "oops",
        json.dumps({**GOOD, "id": "r2", "text": "boom"}),
        json.dumps(
            {
                "id": "r3",
                "text": "mild cold",
                "expected_level": "self_care",
                "expected_departments": ["nowhere"],
            }
        ),
    ]
    data = write_jsonl(tmp_path / "dev.jsonl", lines)
    seen: list[TriageInput] = []

    def assess(inp: TriageInput) -> TriageResult:
        seen.append(inp)
        if inp.text == "boom":
            raise RuntimeError("engine exploded")
        return fake_result(L.emergency if "胸" in inp.text else L.routine, ["emergency"])

    report_path = tmp_path / "out" / "report.json"
    report = run(data, report_path, assess=assess)

    assert report["n_rows"] == 4 and report["n_scored"] == 2 and report["n_errors"] == 2
    assert [(e["line"], e["stage"]) for e in report["errors"]] == [(2, "load"), (3, "assess")]
    assert "engine exploded" in report["errors"][1]["message"]
    assert report["overall"]["level_accuracy"] == pytest.approx(0.5)  # r1 right, r3 over-triaged
    assert report["overall"]["over_triage_rate"] == pytest.approx(0.5)
    assert report["engine_version"] == "fake-1"
    assert report["unknown_expected_departments"] == ["nowhere"]
    assert seen[0].facts.age_months == 30
    assert json.loads(report_path.read_text(encoding="utf-8")) == json.loads(json.dumps(report))
    assert "level accuracy" in capsys.readouterr().out


def test_run_missing_data_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        run(tmp_path / "absent.jsonl", tmp_path / "r.json", assess=lambda inp: fake_result(L.routine, []))


# --------------------------------------------------------------------------- bench statistics


def test_percentile_interpolates() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile([1.0, 2.0, 3.0, 4.0], 0) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0
    assert percentile([float(v) for v in range(1, 102)], 95) == pytest.approx(96.0)
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summarise_and_budget() -> None:
    row = summarise("s", "x", [1_000_000, 4_000_000, 2_000_000, 3_000_000], wall_s=0.01, budget_p95_ms=3.5)
    assert (row.samples, row.p50_ms, row.max_ms) == (4, pytest.approx(2.5), pytest.approx(4.0))
    assert row.throughput_per_s == pytest.approx(400.0)
    assert row.p95_ms == pytest.approx(3.85)
    assert row.over_budget
    assert not summarise("s", "y", [1_000_000], wall_s=0.001).over_budget  # no budget, never over


def test_run_benches_keeps_going_after_a_broken_section() -> None:
    ok_row = BenchRow("s", "ok", 1, 1.0, 1.0, 1.0, 1.0, 1000.0)

    def broken(_: BenchConfig) -> list[BenchRow]:
        raise RuntimeError("no engine")

    rows, failures = run_benches(BenchConfig(), [broken, lambda _: [ok_row]])
    assert rows == [ok_row]
    assert len(failures) == 1 and "no engine" in failures[0]
