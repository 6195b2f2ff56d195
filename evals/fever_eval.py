"""Evaluate the child-fever traffic light on a labelled case set (default evals/data/fever_dev.jsonl).

Each JSONL row: `id`, age (`age_months`, or `age_days` / `age_years`), `temp_c` (a reading taken
now, or null), `site`, `days` (reported fever days), `text`, optional `readings` (diary entries:
`value`, `unit`, `site`, `hours_ago` or `time`, `antipyretic`), optional `conditions`, `signs`,
`lang`, `now`; labels `expected_colour`, optional `expected_call_120`, and `feature` (the rule id
expected to set the colour, "none" for green, or a free label). Cases are written by the team from
NICE NG143 Table 1 and the Chinese 0–5 years fever guideline.

Reported: colour agreement (the target is 100 %), under-grading (more dangerous) and over-grading,
call-120 agreement, the expected feature firing, a confusion table, and every failure.

Run: `python -m evals.fever_eval [--data PATH] [--report PATH]`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tools.fever import COLOUR_RANK, FeverGrade, FeverInput, grade_fever

EVALS_DIR = Path(__file__).resolve().parent
DEFAULT_DATA = EVALS_DIR / "data" / "fever_dev.jsonl"
DEFAULT_REPORT = EVALS_DIR / "reports" / "fever_eval.json"
# A fixed clock so that `hours_ago` diaries grade the same on every run.
DEFAULT_NOW = datetime.fromisoformat("2026-12-01T20:00:00+08:00")
COLOURS = ("red", "orange", "green")
MAX_PRINTED_FAILURES = 60

GradeFn = Callable[[FeverInput], FeverGrade]


@dataclass(frozen=True)
class FeverCase:
    id: str
    payload: dict[str, Any]  # FeverInput fields
    expected_colour: str
    expected_call_120: bool | None
    feature: str
    text: str


@dataclass(frozen=True)
class RowError:
    line: int
    id: str | None
    stage: str
    message: str


@dataclass
class Loaded:
    cases: list[FeverCase] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


_ROW_KEYS = {
    "id", "age_months", "age_days", "age_years", "temp_c", "unit", "site", "days", "text", "readings",
    "conditions", "signs", "lang", "now", "weight_kg", "expected_colour", "expected_call_120", "feature",
    "note",
}  # fmt: skip


def parse_row(raw: str, line_no: int) -> FeverCase:
    row = json.loads(raw)
    if not isinstance(row, dict):
        raise ValueError("a row must be a JSON object")
    unknown = sorted(set(row) - _ROW_KEYS)
    if unknown:
        raise ValueError(f"unknown fields {unknown}")
    colour = row.get("expected_colour")
    if colour not in COLOURS:
        raise ValueError(f"expected_colour must be one of {COLOURS}, got {colour!r}")
    now = datetime.fromisoformat(row["now"]) if row.get("now") else DEFAULT_NOW
    readings = []
    for entry in row.get("readings") or []:
        entry = dict(entry)
        hours_ago = entry.pop("hours_ago", None)
        if hours_ago is not None:
            entry["time"] = (now - timedelta(hours=float(hours_ago))).isoformat()
        readings.append(entry)
    if row.get("temp_c") is not None:
        readings.append(
            {"value": row["temp_c"], "unit": row.get("unit"), "site": row.get("site"), "time": None}
        )
    payload: dict[str, Any] = {
        "readings": readings,
        "text": row.get("text") or "",
        "fever_days": row.get("days"),
        "now": now.isoformat(),
    }
    for key in ("age_months", "age_days", "age_years", "conditions", "signs", "lang", "weight_kg"):
        if row.get(key) is not None:
            payload[key] = row[key]
    return FeverCase(
        id=str(row.get("id") or f"line{line_no}"),
        payload=payload,
        expected_colour=colour,
        expected_call_120=row.get("expected_call_120"),
        feature=str(row.get("feature") or ""),
        text=payload["text"],
    )


def load_cases(path: Path) -> Loaded:
    loaded = Loaded()
    for line_no, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            loaded.cases.append(parse_row(raw, line_no))
        except (ValueError, TypeError, KeyError) as exc:
            loaded.errors.append(RowError(line_no, _peek_id(raw), "load", f"{type(exc).__name__}: {exc}"))
    ids = [c.id for c in loaded.cases]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        loaded.errors.append(RowError(0, dup, "load", "duplicate id"))
    return loaded


def _peek_id(raw: str) -> str | None:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return str(value.get("id")) if isinstance(value, dict) and value.get("id") is not None else None


def _rate(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else numerator / denominator


def compute_metrics(pairs: Sequence[tuple[FeverCase, FeverGrade]]) -> dict[str, Any]:
    n = len(pairs)
    agree = sum(c.expected_colour == g.colour for c, g in pairs)
    under = sum(COLOUR_RANK[g.colour] < COLOUR_RANK[c.expected_colour] for c, g in pairs)
    over = sum(COLOUR_RANK[g.colour] > COLOUR_RANK[c.expected_colour] for c, g in pairs)
    labelled_120 = [(c, g) for c, g in pairs if c.expected_call_120 is not None]
    call_agree = sum(c.expected_call_120 == g.call_120 for c, g in labelled_120)
    rule_cases = [(c, g) for c, g in pairs if c.feature.startswith("FV-")]
    feature_hits = sum(any(f.rule_id == c.feature for f in g.features) for c, g in rule_cases)
    confusion = {e: {p: 0 for p in COLOURS} for e in COLOURS}
    for c, g in pairs:
        confusion[c.expected_colour][g.colour] += 1
    per_colour = {
        colour: {
            "n": sum(confusion[colour].values()),
            "agreement": _rate(confusion[colour][colour], sum(confusion[colour].values())),
        }
        for colour in COLOURS
    }
    return {
        "n": n,
        "colour_agreement": _rate(agree, n),
        "under_graded": under,
        "over_graded": over,
        "call_120_agreement": _rate(call_agree, len(labelled_120)),
        "call_120_labelled": len(labelled_120),
        "feature_fired": _rate(feature_hits, len(rule_cases)),
        "feature_labelled": len(rule_cases),
        "per_colour": per_colour,
        "confusion": confusion,
        "features_covered": sorted({c.feature for c, _ in rule_cases}),
    }


def _failures(pairs: Sequence[tuple[FeverCase, FeverGrade]]) -> list[dict[str, Any]]:
    out = []
    for case, grade in pairs:
        kinds = []
        if case.expected_colour != grade.colour:
            kinds.append("under" if COLOUR_RANK[grade.colour] < COLOUR_RANK[case.expected_colour] else "over")
        if case.expected_call_120 is not None and case.expected_call_120 != grade.call_120:
            kinds.append("call_120")
        if case.feature.startswith("FV-") and not any(f.rule_id == case.feature for f in grade.features):
            kinds.append("feature")
        if kinds:
            out.append(
                {
                    "id": case.id,
                    "kinds": kinds,
                    "expected": case.expected_colour,
                    "expected_call_120": case.expected_call_120,
                    "got": grade.colour,
                    "call_120": grade.call_120,
                    "feature": case.feature,
                    "fired": [f.rule_id for f in grade.features],
                    "text": case.text,
                }
            )
    return out


def run(
    data: Path | None = None, report: Path | None = None, *, grade: GradeFn | None = None
) -> dict[str, Any]:
    """Grades every case, prints a summary, writes the JSON report; bad rows are counted, not fatal."""
    data_path = Path(data) if data is not None else DEFAULT_DATA
    report_path = Path(report) if report is not None else DEFAULT_REPORT
    if not data_path.is_file():
        raise FileNotFoundError(f"fever eval data not found / 找不到评测数据: {data_path}")
    loaded = load_cases(data_path)
    grade_fn = grade or grade_fever
    pairs: list[tuple[FeverCase, FeverGrade]] = []
    errors = list(loaded.errors)
    for case in loaded.cases:
        try:
            pairs.append((case, grade_fn(FeverInput.model_validate(case.payload))))
        except Exception as exc:  # one bad case must not hide the others
            errors.append(RowError(0, case.id, "grade", f"{type(exc).__name__}: {exc}"))
    result: dict[str, Any] = {
        "data": str(data_path),
        "engine_version": pairs[0][1].engine_version if pairs else None,
        "n_rows": len(loaded.cases) + len(loaded.errors),
        "n_errors": len(errors),
        "errors": [asdict(e) for e in errors],
        **compute_metrics(pairs),
        "failures": _failures(pairs),
    }
    print(format_report(result))
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"\nreport written to {report_path}")
    return result


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:6.1%}"


def format_report(r: dict[str, Any]) -> str:
    lines = [
        f"Fever eval: {r['data']}",
        f"rows {r['n_rows']}  graded {r['n']}  errors {r['n_errors']}  engine {r['engine_version']}",
        "",
        f"colour agreement     {_fmt(r['colour_agreement'])}   (under-graded {r['under_graded']}, "
        f"over-graded {r['over_graded']})",
        f"call-120 agreement   {_fmt(r['call_120_agreement'])}   ({r['call_120_labelled']} labelled)",
        f"expected feature     {_fmt(r['feature_fired'])}   ({r['feature_labelled']} labelled, "
        f"{len(r['features_covered'])} distinct rules)",
        "",
        f"{'expected':<10}{'n':>5}{'agree':>9}",
    ]
    for colour, m in r["per_colour"].items():
        lines.append(f"{colour:<10}{m['n']:>5}{_fmt(m['agreement']):>9}")
    lines += [
        "",
        "confusion (rows = expected, columns = graded)",
        f"{'':<10}" + "".join(f"{c:>8}" for c in COLOURS),
    ]
    for expected, counts in r["confusion"].items():
        lines.append(f"{expected:<10}" + "".join(f"{counts[c]:>8}" for c in COLOURS))
    failures = r["failures"]
    if failures:
        lines += ["", f"failures ({len(failures)}):"]
        for f in failures[:MAX_PRINTED_FAILURES]:
            text = f["text"] if len(f["text"]) <= 50 else f["text"][:47] + "..."
            lines.append(
                f"  {f['id']:<24} {'+'.join(f['kinds']):<18} expected {f['expected']}"
                f"{'+120' if f['expected_call_120'] else ''} got {f['got']}{'+120' if f['call_120'] else ''}"
                f" [{f['feature']}] fired {f['fired']} | {text}"
            )
    if r["errors"]:
        lines += ["", f"errors ({len(r['errors'])}):"]
        lines += [f"  line {e['line']} [{e['stage']}] {e['id'] or ''}: {e['message']}" for e in r["errors"]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate the child-fever traffic light.")
    parser.add_argument("--data", type=Path, default=None, help=f"JSONL file (default {DEFAULT_DATA})")
    parser.add_argument("--report", type=Path, default=None, help=f"JSON report (default {DEFAULT_REPORT})")
    args = parser.parse_args(argv)
    try:
        result = run(args.data, args.report)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0 if result["colour_agreement"] == 1.0 and not result["errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
