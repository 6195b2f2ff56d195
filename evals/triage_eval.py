"""Evaluate the triage engine on a labelled vignette set (default: evals/data/triage_dev.jsonl).

Each JSONL row needs `text`, `expected_level` and `expected_departments`; `id`, `lang`,
`age_months` and `sex` are optional (the last three are passed to the engine as structured facts
when present and non-null); any other field (`guideline`, `note`, ...) is ignored here.

Safety-relevant metrics come first: emergency recall and the under-triage rate matter more
than plain accuracy, because sending an emergency home is far worse than the reverse.

Run: `python -m evals.triage_eval [--data PATH] [--report PATH]`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from evals.jsonl_rows import parsed_rows, peek_id
from tools.triage_models import LEVEL_ORDER, Facts, Lang, Level, Sex, TriageInput, TriageResult

EVALS_DIR = Path(__file__).resolve().parent
DEFAULT_DATA = EVALS_DIR / "data" / "triage_dev.jsonl"
DEFAULT_REPORT = EVALS_DIR / "reports" / "triage_eval.json"

EMERGENCY_LEVELS: frozenset[Level] = frozenset({Level.emergency_ambulance, Level.emergency})
TOP_K = 3
MAX_PRINTED_FAILURES = 60  # the JSON report always lists all of them
# Most urgent first: the order people read a triage table in.
LEVELS_MOST_URGENT_FIRST: list[Level] = list(reversed(LEVEL_ORDER))

AssessFn = Callable[[TriageInput], TriageResult]

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True)
class EvalCase:
    id: str
    text: str
    expected_level: Level
    expected_departments: tuple[str, ...]
    lang: Lang | None = None
    age_months: float | None = None
    sex: Sex | None = None

    @property
    def language(self) -> str:
        """The row's language for breakdowns: the labelled one, else a script-based guess."""
        if self.lang:
            return self.lang
        return "zh" if _CJK.search(self.text) else "en"


@dataclass(frozen=True)
class Prediction:
    level: Level
    departments: tuple[str, ...] = ()  # ranked, best first


@dataclass(frozen=True)
class RowError:
    line: int
    id: str | None
    stage: Literal["load", "assess"]
    message: str


@dataclass
class LoadResult:
    cases: list[EvalCase] = field(default_factory=list)
    case_lines: list[int] = field(default_factory=list)  # source line of each case
    errors: list[RowError] = field(default_factory=list)


# --------------------------------------------------------------------------- loading


def parse_row(raw: str, line_no: int) -> EvalCase:
    """Parse one JSONL line; raises ValueError with a readable message when the row is unusable."""
    try:
        row = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(row, dict):
        raise ValueError(f"row must be a JSON object, got {type(row).__name__}")

    row_id = row.get("id")
    case_id = str(row_id) if row_id is not None else f"line{line_no}"

    text = row.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("'text' must be a non-empty string")

    level_raw = row.get("expected_level")
    try:
        level = Level(level_raw)
    except ValueError:
        allowed = ", ".join(lv.value for lv in LEVEL_ORDER)
        raise ValueError(f"'expected_level' {level_raw!r} is not one of: {allowed}") from None

    if "expected_departments" not in row:
        raise ValueError("'expected_departments' is missing (use [] to skip department scoring)")
    departments = row["expected_departments"]
    if not isinstance(departments, list) or not all(isinstance(d, str) and d for d in departments):
        raise ValueError("'expected_departments' must be a list of department id strings")

    case = EvalCase(
        id=case_id,
        text=text,
        expected_level=level,
        expected_departments=tuple(departments),
        lang=row.get("lang"),
        age_months=row.get("age_months"),
        sex=row.get("sex"),
    )
    # Validate the structured facts against the engine contract now, so a bad value is a load
    # error on its own line rather than a surprise inside the engine.
    try:
        to_triage_input(case)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ValueError(f"invalid structured facts: {problems}") from None
    return case


def load_cases(path: Path) -> LoadResult:
    """Read a JSONL vignette file. Blank lines are skipped; bad lines become RowErrors."""
    result = LoadResult()
    for line_no, raw, case in parsed_rows(path, parse_row):
        if isinstance(case, ValueError):
            result.errors.append(RowError(line=line_no, id=peek_id(raw), stage="load", message=str(case)))
            continue
        result.cases.append(case)
        result.case_lines.append(line_no)
    return result


def to_triage_input(case: EvalCase) -> TriageInput:
    """Only non-null optional fields are passed, so the engine must read the rest from the text."""
    facts: dict[str, Any] = {}
    if case.age_months is not None:
        facts["age_months"] = case.age_months
    if case.sex is not None:
        facts["sex"] = case.sex
    return TriageInput(text=case.text, lang=case.lang, facts=Facts(**facts))


def prediction_from_result(result: TriageResult) -> Prediction:
    return Prediction(level=Level(result.level), departments=tuple(d.id for d in result.departments))


# --------------------------------------------------------------------------- metrics


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _core_metrics(pairs: Sequence[tuple[EvalCase, Prediction]]) -> dict[str, Any]:
    n = len(pairs)
    correct = sum(p.level == c.expected_level for c, p in pairs)
    within_one = sum(abs(p.level.rank - c.expected_level.rank) <= 1 for c, p in pairs)
    under = sum(p.level.rank < c.expected_level.rank for c, p in pairs)
    over = sum(p.level.rank > c.expected_level.rank for c, p in pairs)

    expected_emergency = [(c, p) for c, p in pairs if c.expected_level in EMERGENCY_LEVELS]
    predicted_emergency = [(c, p) for c, p in pairs if p.level in EMERGENCY_LEVELS]
    emergency_hits = sum(p.level in EMERGENCY_LEVELS for _, p in expected_emergency)
    emergency_true = sum(c.expected_level in EMERGENCY_LEVELS for c, _ in predicted_emergency)

    with_departments = [(c, p) for c, p in pairs if c.expected_departments]
    top1 = sum(_department_hit(c, p, 1) for c, p in with_departments)
    top3 = sum(_department_hit(c, p, TOP_K) for c, p in with_departments)

    return {
        "n": n,
        "level_accuracy": _rate(correct, n),
        "level_within_one": _rate(within_one, n),
        "emergency_n": len(expected_emergency),
        "emergency_recall": _rate(emergency_hits, len(expected_emergency)),
        "emergency_precision": _rate(emergency_true, len(predicted_emergency)),
        "under_triage_rate": _rate(under, n),
        "over_triage_rate": _rate(over, n),
        "under_triage_n": under,
        "over_triage_n": over,
        "department_n": len(with_departments),
        "department_top1": _rate(top1, len(with_departments)),
        "department_top3": _rate(top3, len(with_departments)),
    }


def _department_hit(case: EvalCase, prediction: Prediction, k: int) -> bool:
    acceptable = set(case.expected_departments)
    return any(dep in acceptable for dep in prediction.departments[:k])


def compute_metrics(cases: Sequence[EvalCase], predictions: Sequence[Prediction]) -> dict[str, Any]:
    """All metrics for aligned lists of cases and predictions (pure; no engine involved).

    Rates are None when their denominator is empty. Department metrics skip cases whose
    expected_departments is empty.
    """
    if len(cases) != len(predictions):
        raise ValueError(f"{len(cases)} cases but {len(predictions)} predictions")
    pairs = list(zip(cases, predictions, strict=True))

    by_language = {
        lang: _core_metrics([(c, p) for c, p in pairs if c.language == lang])
        for lang in sorted({c.language for c in cases})
    }
    by_level: dict[str, dict[str, Any]] = {}
    for level in LEVELS_MOST_URGENT_FIRST:
        subset = [(c, p) for c, p in pairs if c.expected_level == level]
        n = len(subset)
        by_level[level.value] = {
            "n": n,
            "accuracy": _rate(sum(p.level == level for _, p in subset), n),
            "under_triage_rate": _rate(sum(p.level.rank < level.rank for _, p in subset), n),
            "over_triage_rate": _rate(sum(p.level.rank > level.rank for _, p in subset), n),
        }

    confusion = {
        expected.value: {predicted.value: 0 for predicted in LEVELS_MOST_URGENT_FIRST}
        for expected in LEVELS_MOST_URGENT_FIRST
    }
    for c, p in pairs:
        confusion[c.expected_level.value][p.level.value] += 1

    return {
        "overall": _core_metrics(pairs),
        "by_language": by_language,
        "by_level": by_level,
        "confusion": confusion,
        "failures": _failures(pairs),
    }


def _failures(pairs: Sequence[tuple[EvalCase, Prediction]]) -> list[dict[str, Any]]:
    """Rows with a wrong level or no acceptable department in the top 3; under-triage first."""
    failures: list[dict[str, Any]] = []
    for case, pred in pairs:
        kinds: list[str] = []
        if pred.level.rank < case.expected_level.rank:
            kinds.append("under_triage")
        elif pred.level.rank > case.expected_level.rank:
            kinds.append("over_triage")
        if case.expected_departments and not _department_hit(case, pred, TOP_K):
            kinds.append("department")
        if kinds:
            failures.append(
                {
                    "id": case.id,
                    "text": case.text,
                    "kinds": kinds,
                    "expected_level": case.expected_level.value,
                    "predicted_level": pred.level.value,
                    "expected_departments": list(case.expected_departments),
                    "predicted_departments": list(pred.departments),
                }
            )
    severity = {"under_triage": 0, "over_triage": 1, "department": 2}
    failures.sort(key=lambda f: severity[f["kinds"][0]])
    return failures


# --------------------------------------------------------------------------- running


def _default_assess() -> AssessFn:
    from tools.triage import assess  # imported late: the engine is optional for loading/metrics

    return assess


def _catalogue_ids() -> set[str] | None:
    try:
        from assistant.settings import get_settings

        data = yaml.safe_load(get_settings().department_catalogue.read_text(encoding="utf-8"))
        return {str(d["id"]) for d in data["departments"]}
    except Exception:  # the check is advisory; a missing catalogue must not stop the eval
        return None


def run(data: Path | None = None, report: Path | None = None, *, assess: AssessFn | None = None) -> dict:
    """Evaluate `assess` (default tools.triage.assess) on `data`, print a table, write a JSON report.

    Bad lines and engine exceptions are counted in report["errors"]; they never abort the run.
    Raises FileNotFoundError only when the data file itself is missing.
    """
    data_path = Path(data) if data is not None else DEFAULT_DATA
    report_path = Path(report) if report is not None else DEFAULT_REPORT
    if not data_path.is_file():
        raise FileNotFoundError(f"triage eval data not found / 找不到评测数据: {data_path}")

    loaded = load_cases(data_path)
    assess_fn = assess or _default_assess()

    scored_cases: list[EvalCase] = []
    predictions: list[Prediction] = []
    errors = list(loaded.errors)
    engine_version: str | None = None
    for case, line_no in zip(loaded.cases, loaded.case_lines, strict=True):
        try:
            result = assess_fn(to_triage_input(case))
            prediction = prediction_from_result(result)
        except Exception as exc:  # one failing row must not hide the metrics for the others
            errors.append(
                RowError(line=line_no, id=case.id, stage="assess", message=f"{type(exc).__name__}: {exc}")
            )
            continue
        engine_version = engine_version or getattr(result, "engine_version", None)
        scored_cases.append(case)
        predictions.append(prediction)

    errors.sort(key=lambda e: e.line)
    metrics = compute_metrics(scored_cases, predictions)
    catalogue = _catalogue_ids()
    unknown = (
        sorted({d for c in loaded.cases for d in c.expected_departments} - catalogue) if catalogue else []
    )
    report_data: dict[str, Any] = {
        "data": str(data_path),
        "engine_version": engine_version,
        "n_rows": len(loaded.cases) + len(loaded.errors),
        "n_scored": len(scored_cases),
        "n_errors": len(errors),
        "errors": [asdict(e) for e in errors],
        "unknown_expected_departments": unknown,
        **metrics,
    }
    print(format_report(report_data))
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report_data, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"\nreport written to {report_path}")
    return report_data


# --------------------------------------------------------------------------- printing


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:6.1%}"


_SHORT = {
    "emergency_ambulance": "amb120",
    "emergency": "emerg",
    "urgent": "urgent",
    "routine": "routine",
    "self_care": "self",
}


def format_report(report: dict[str, Any]) -> str:
    overall = report["overall"]
    languages = list(report["by_language"])
    lines = [
        f"Triage eval: {report['data']}",
        f"rows {report['n_rows']}  scored {report['n_scored']}  errors {report['n_errors']}"
        + (f"  engine {report['engine_version']}" if report.get("engine_version") else ""),
        "",
        f"{'metric':<22}{'all':>9}" + "".join(f"{lang:>9}" for lang in languages),
    ]
    rows = [
        ("emergency recall", "emergency_recall"),
        ("under-triage rate", "under_triage_rate"),
        ("over-triage rate", "over_triage_rate"),
        ("level accuracy", "level_accuracy"),
        ("level within one", "level_within_one"),
        ("emergency precision", "emergency_precision"),
        ("department top-1", "department_top1"),
        ("department top-3", "department_top3"),
    ]
    for label, key in rows:
        cells = [overall[key]] + [report["by_language"][lang][key] for lang in languages]
        lines.append(f"{label:<22}" + "".join(f"{_fmt(v):>9}" for v in cells))
    lines.append(
        f"{'n':<22}{overall['n']:>9}" + "".join(f"{report['by_language'][lg]['n']:>9}" for lg in languages)
    )

    lines += ["", f"{'expected level':<22}{'n':>5}{'acc':>9}{'under':>9}{'over':>9}"]
    for level, m in report["by_level"].items():
        lines.append(
            f"{level:<22}{m['n']:>5}{_fmt(m['accuracy']):>9}"
            f"{_fmt(m['under_triage_rate']):>9}{_fmt(m['over_triage_rate']):>9}"
        )

    lines += ["", "confusion (rows = expected, columns = predicted)"]
    columns = list(report["confusion"])
    lines.append(f"{'':<10}" + "".join(f"{_SHORT.get(c, c):>9}" for c in columns))
    for expected, counts in report["confusion"].items():
        lines.append(f"{_SHORT.get(expected, expected):<10}" + "".join(f"{counts[c]:>9}" for c in columns))

    failures = report["failures"]
    if failures:
        lines += ["", f"failures ({len(failures)}):"]
        for f in failures[:MAX_PRINTED_FAILURES]:
            text = f["text"] if len(f["text"]) <= 60 else f["text"][:57] + "..."
            lines.append(
                f"  {f['id']:<6} {'+'.join(f['kinds']):<24} expected {f['expected_level']}"
                f" {f['expected_departments']} got {f['predicted_level']} {f['predicted_departments']}"
                f"  | {text}"
            )
        if len(failures) > MAX_PRINTED_FAILURES:
            lines.append(f"  ... {len(failures) - MAX_PRINTED_FAILURES} more in the JSON report")
    if report["errors"]:
        lines += ["", f"errors ({len(report['errors'])}):"]
        lines += [
            f"  line {e['line']} [{e['stage']}] {e['id'] or ''}: {e['message']}" for e in report["errors"]
        ]
    if report.get("unknown_expected_departments"):
        lines += [
            "",
            f"warning: expected department ids not in catalogue: {report['unknown_expected_departments']}",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate the triage engine on a vignette set.")
    parser.add_argument("--data", type=Path, default=None, help=f"JSONL file (default {DEFAULT_DATA})")
    parser.add_argument("--report", type=Path, default=None, help=f"JSON report (default {DEFAULT_REPORT})")
    args = parser.parse_args(argv)
    try:
        run(args.data, args.report)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
