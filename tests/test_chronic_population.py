"""The clinic overdue list on a generated population of >= 1,000 patients with known answers
(evals/chronic_population.py builds each history to match a truth chosen first): the list holds exactly
the expected patients, every flag and every count of days overdue is right, urgent ones are on top."""

from __future__ import annotations

from collections import Counter

import pytest

from evals.chronic_eval import score
from evals.chronic_population import TODAY, Case, generate_population
from tools.chronic import ClinicListEntry, overdue_list


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return generate_population(1200)


@pytest.fixture(scope="module")
def entries(cases: list[Case]) -> list[ClinicListEntry]:
    return overdue_list([c.patient for c in cases], TODAY)


def test_population_is_large_and_covers_every_combination(cases: list[Case]) -> None:
    assert len(cases) >= 1000
    assert len({c.patient.id for c in cases}) == len(cases)
    combos = Counter((c.expected.overdue, c.expected.worsening, c.expected.urgent) for c in cases)
    assert len(combos) == 8 and min(combos.values()) >= 10
    assert sum(c.expected.listed for c in cases) >= 300
    assert sum(not c.expected.listed for c in cases) >= 300  # plenty of patients who must NOT be listed
    days = Counter(c.expected.overdue_days for c in cases if c.expected.overdue)
    assert days[1] >= 20  # one day past due is overdue ...
    assert (
        sum(1 for c in cases if c.patient.last_visit and not c.expected.overdue) >= 300
    )  # ... due today is not


def test_generation_is_deterministic(cases: list[Case]) -> None:
    again = generate_population(1200)
    assert [c.patient for c in again] == [c.patient for c in cases]
    assert generate_population(50, seed=1)[0].patient != cases[0].patient


def test_overdue_list_is_exactly_right(cases: list[Case], entries: list[ClinicListEntry]) -> None:
    report = score(cases, entries)
    assert report.missing == [] and report.extra == []
    for name, flag in report.flags.items():
        assert (flag.precision, flag.recall) == (1.0, 1.0), name
    assert report.overdue_days_wrong == []
    assert report.exact and report.listed == report.listed_expected


def test_urgent_patients_are_on_top_and_the_rest_by_risk(entries: list[ClinicListEntry]) -> None:
    flags = [e.status.urgent for e in entries]
    n_urgent = sum(flags)
    assert n_urgent > 0 and flags == [True] * n_urgent + [False] * (len(flags) - n_urgent)
    rest = [(e.status.risk_score, e.status.overdue_days) for e in entries[n_urgent:]]
    assert rest == sorted(rest, key=lambda k: (-k[0], -k[1]))


def test_every_listed_patient_has_a_reason_with_a_rule_id(entries: list[ClinicListEntry]) -> None:
    for entry in entries:
        codes = {r.code for r in entry.status.reasons}
        assert entry.status.reasons and all(r.rule_id and r.zh and r.en for r in entry.status.reasons)
        if entry.status.urgent:
            assert "urgent" in codes and entry.status.reasons[0].code == "urgent"
        if entry.status.overdue:
            assert codes & {"overdue", "no_visit"}
        if entry.status.worsening:
            assert "worsening" in codes


def test_a_second_seed_is_also_exact() -> None:
    cases = generate_population(1000, seed=99)
    report = score(cases, overdue_list([c.patient for c in cases], TODAY))
    assert report.exact and report.urgent_on_top and report.order_ok
