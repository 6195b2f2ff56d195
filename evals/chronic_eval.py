"""Accuracy of the clinic's overdue list (tools.chronic.overdue_list) on the generated population.

    python -m evals.chronic_eval [--n 1200] [--seed 20261123] [--json]

Reports precision / recall of the three flags (overdue, worsening, urgent), whether the list holds exactly
the expected patients, exact overdue days, and the ordering checks (urgent on top; then risk score and
days overdue never increasing down the list).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field

from evals.chronic_population import SEED, TODAY, Case, generate_population
from tools.chronic import ClinicListEntry, overdue_list, sort_key


@dataclass
class FlagScore:
    expected: int = 0
    predicted: int = 0
    true_positive: int = 0

    @property
    def precision(self) -> float:
        return self.true_positive / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.true_positive / self.expected if self.expected else 1.0


@dataclass
class ChronicReport:
    patients: int
    listed_expected: int
    listed: int
    missing: list[str] = field(default_factory=list)  # expected on the list, absent
    extra: list[str] = field(default_factory=list)  # on the list, not expected
    flags: dict[str, FlagScore] = field(default_factory=dict)
    overdue_days_wrong: list[str] = field(default_factory=list)
    urgent_on_top: bool = True
    order_ok: bool = True

    @property
    def exact(self) -> bool:
        perfect = all(s.precision == 1.0 and s.recall == 1.0 for s in self.flags.values())
        return not (self.missing or self.extra or self.overdue_days_wrong) and perfect

    def summary(self) -> dict[str, object]:
        data = asdict(self)
        data["flags"] = {
            name: {**asdict(s), "precision": round(s.precision, 4), "recall": round(s.recall, 4)}
            for name, s in self.flags.items()
        }
        data["exact"] = self.exact
        return data


def score(cases: list[Case], entries: list[ClinicListEntry]) -> ChronicReport:
    by_id = {c.patient.id: c for c in cases}
    listed = {e.patient.id: e for e in entries}
    expected_ids = {c.patient.id for c in cases if c.expected.listed}
    report = ChronicReport(patients=len(cases), listed_expected=len(expected_ids), listed=len(entries))
    report.missing = sorted(expected_ids - set(listed))
    report.extra = sorted(set(listed) - expected_ids)
    for name in ("overdue", "worsening", "urgent"):
        flag = FlagScore()
        for case in cases:
            entry = listed.get(case.patient.id)
            want = bool(getattr(case.expected, name))
            got = bool(entry is not None and getattr(entry.status, name))
            flag.expected += want
            flag.predicted += got
            flag.true_positive += want and got
        report.flags[name] = flag
    report.overdue_days_wrong = sorted(
        pid
        for pid, e in listed.items()
        if pid in by_id and e.status.overdue_days != by_id[pid].expected.overdue_days
    )
    urgent_seen_end = False
    for entry in entries:
        if not entry.status.urgent:
            urgent_seen_end = True
        elif urgent_seen_end:
            report.urgent_on_top = False
    keys = [sort_key(e.status) for e in entries]
    report.order_ok = keys == sorted(keys) and all(
        e.status.reasons for e in entries
    )  # every listed patient says why
    return report


def run(n: int = 1200, seed: int = SEED) -> ChronicReport:
    cases = generate_population(n, seed)
    return score(cases, overdue_list([c.patient for c in cases], TODAY))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = run(args.n, args.seed)
    if args.json:
        print(json.dumps(report.summary(), ensure_ascii=False, indent=2))
    else:
        print(f"patients {report.patients}; listed {report.listed} (expected {report.listed_expected})")
        for name, s in report.flags.items():
            print(
                f"  {name:<9} expected {s.expected:4d} flagged {s.predicted:4d} "
                f"precision {s.precision:.3f} recall {s.recall:.3f}"
            )
        print(
            f"  missing {len(report.missing)} extra {len(report.extra)} "
            f"days wrong {len(report.overdue_days_wrong)}"
        )
        print(f"  urgent on top {report.urgent_on_top}; order ok {report.order_ok}; exact {report.exact}")
    return 0 if report.exact and report.urgent_on_top and report.order_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
