"""A seeded synthetic population of chronic-care patients whose follow-up status is known by construction.

    generate_population(n=1200, seed=20261123, today=TODAY) -> list[Case(patient, expected)]

For each patient the ground truth (overdue and by how many days, worsening, urgent) is *chosen first*;
the visit date and the reading history are then built to produce it. Nothing here calls
tools.chronic.evaluate: the generator works from the written rules (the plan numbers in
tools/data/chronic_plans.yaml and the rules in tools/chronic.py's docstring) with its own small
classifier, so a bug in evaluate shows up as a disagreement.

How a chosen due date D is produced (L = last visit, 90 / 14 = the plan's controlled / uncontrolled days):
  controlled   — latest reading on target:                               L = D - 90
  run_before   — off-target run started on or before the visit:          L = D - 14
  run_after    — off-target run starting at s = D - 14 after the visit:  L in [s - 76, s - 1]
  none         — no reading on file:                                     L = D - 14
A second condition gets a mode whose due date is not earlier than D. Urgent = a reading after L meets an
urgent threshold; non-urgent patients get urgent "decoys" on or before L only. Worsening = the mean of the
last 3 systolic / fasting-glucose values minus the mean of the 3 before is set exactly (in whole mmHg or
0.1 mmol/L steps), including the boundary (exactly 10 mmHg / 1.0 mmol/L: worsening; one step less: not).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from tools.chronic import ChronicPatient, Condition, Reading, load_plans

TODAY = date(2026, 11, 23)
SEED = 20261123
CLINICS = ("demo-chc-east", "demo-chc-lingxia", "demo-general-hospital")
VILLAGES = ("岭下村", "石门村", "东城街道", "西坑村", None)
DOCTORS = ("王医生", "李医生", "张医生", None)

Mode = Literal["controlled", "run_before", "run_after", "none"]
GenLevel = Literal["on_target", "poor", "urgent"]


@dataclass(frozen=True)
class Expected:
    overdue: bool
    overdue_days: int
    worsening: bool
    urgent: bool

    @property
    def listed(self) -> bool:
        return self.overdue or self.worsening or self.urgent


@dataclass(frozen=True)
class Case:
    patient: ChronicPatient
    expected: Expected


# ---------------------------------------------------------------------------------------------- the spec

_PLANS = load_plans()
CONTROLLED_DAYS = _PLANS.conditions["hypertension"].follow_up.controlled_days
UNCONTROLLED_DAYS = _PLANS.conditions["hypertension"].follow_up.uncontrolled_days


def _check_plan_numbers() -> None:
    """The value ranges below assume these plan numbers; a changed plan must fail loudly here."""
    for plan in _PLANS.conditions.values():
        assert (plan.follow_up.controlled_days, plan.follow_up.uncontrolled_days) == (90, 14)
    htn, dm = _PLANS.conditions["hypertension"], _PLANS.conditions["diabetes"]
    assert {(t.measure, t.op, t.value) for t in htn.targets} == {
        ("systolic", "<", 140),
        ("diastolic", "<", 90),
    }
    assert {(t.measure, t.op, t.value) for t in htn.urgent} == {
        ("systolic", ">=", 180),
        ("diastolic", ">=", 110),
    }
    assert {(t.measure, t.op, t.value) for t in dm.urgent} == {
        ("glucose_any", ">=", 16.7),
        ("glucose_any", "<=", 3.9),
    }
    assert ("glucose_fasting", ">=", 4.4) in {(t.measure, t.op, t.value) for t in dm.targets}
    assert ("glucose_fasting", "<=", 7.0) in {(t.measure, t.op, t.value) for t in dm.targets}
    assert ("glucose_postprandial", "<", 10.0) in {(t.measure, t.op, t.value) for t in dm.targets}
    assert [(w.measure, w.window, w.min_rise) for w in htn.worsening] == [("systolic", 3, 10)]
    assert (("glucose_fasting", 3, 1.0)) in [(w.measure, w.window, w.min_rise) for w in dm.worsening]


_check_plan_numbers()


def _bp_level(s: int, d: int) -> GenLevel:
    if s >= 180 or d >= 110:
        return "urgent"
    return "on_target" if s < 140 and d < 90 else "poor"


def _glucose_level(tenths: int, context: str) -> GenLevel:
    if tenths >= 167 or tenths <= 39:
        return "urgent"
    on_target = 44 <= tenths <= 70 if context == "fasting" else tenths < 100
    return "on_target" if on_target else "poor"


# ---------------------------------------------------------------------------------------------- values


def _bp_value(rng: random.Random, level: GenLevel) -> tuple[int, int]:
    """A (systolic, diastolic) pair of the level; boundary values on purpose now and then."""
    edge = rng.random() < 0.15
    if level == "on_target":
        return (139, 89) if edge else (rng.randint(100, 138), rng.randint(60, 88))
    if level == "poor":
        if edge:
            return rng.choice([(140, 80), (130, 90), (179, 100), (170, 109)])
        if rng.random() < 0.75:
            return rng.randint(140, 178), rng.randint(60, 108)
        return rng.randint(120, 138), rng.randint(90, 108)  # diastolic alone off target
    if edge:
        return rng.choice([(180, 95), (160, 110)])
    if rng.random() < 0.7:
        return rng.randint(180, 230), rng.randint(70, 125)
    return rng.randint(150, 178), rng.randint(110, 125)


def _glucose_value(rng: random.Random, level: GenLevel, context: str) -> int:
    """Glucose in tenths of mmol/L of the level; boundary values now and then."""
    edge = rng.random() < 0.15
    fasting = context == "fasting"
    if level == "on_target":
        if edge:
            return rng.choice([44, 70] if fasting else [99])
        return rng.randint(45, 69) if fasting else rng.randint(50, 98)
    if level == "poor":
        if edge:
            return rng.choice([166, 40, 43, 71] if fasting else [166, 100, 40])
        if fasting and rng.random() < 0.1:
            return rng.randint(40, 43)  # below the fasting target, not yet hypoglycaemia
        return rng.randint(71, 165) if fasting else rng.randint(100, 165)
    if edge:
        return rng.choice([167, 39])
    return rng.randint(168, 300) if rng.random() < 0.75 else rng.randint(20, 38)


# ---------------------------------------------------------------------------------------------- history


@dataclass
class _Slot:
    taken_on: date
    level: GenLevel
    context: str = "bp"


class _Infeasible(Exception):
    """These random choices cannot make the chosen truth; draw again."""


def _pre_dates(rng: random.Random, last_visit: date, count: int) -> list[date]:
    dates: list[date] = []
    current = last_visit if rng.random() < 0.7 else last_visit - timedelta(days=rng.randint(1, 10))
    for _ in range(count):
        dates.append(current)
        current -= timedelta(days=rng.randint(20, 45))
    return sorted(dates)


def _post_dates(rng: random.Random, after: date, until: date, count: int) -> list[date]:
    """`count` distinct days in (after, until]."""
    days = (until - after).days
    if count > days:
        raise _Infeasible
    return sorted(after + timedelta(days=k) for k in rng.sample(range(1, days + 1), count))


def _any_pre_level(rng: random.Random) -> GenLevel:
    return rng.choices(["on_target", "poor", "urgent"], weights=[55, 38, 7])[0]


def _slots(
    rng: random.Random, mode: Mode, last_visit: date, run_start: date | None, urgent: bool, worsening: bool
) -> list[_Slot]:
    """Dates and levels of one condition's readings for its mode (values come later)."""
    if mode == "none":
        return []
    total = rng.randint(6, 9) if worsening else rng.randint(1, 8)
    if mode == "controlled":
        if urgent and total < 2:
            raise _Infeasible
        n_post = rng.randint(2, min(4, total)) if urgent else rng.randint(0, min(3, total))
        pre = [_Slot(d, _any_pre_level(rng)) for d in _pre_dates(rng, last_visit, total - n_post)]
        post_dates = _post_dates(rng, last_visit, TODAY, n_post)
        post = [_Slot(d, rng.choice(["on_target", "poor"])) for d in post_dates]
        if urgent:
            post[rng.randrange(len(post) - 1)].level = "urgent"
        slots = pre + post
        slots[-1].level = "on_target"
        return slots
    if mode == "run_before":
        n_post = rng.randint(1 if urgent else 0, min(3, total - 1)) if total > 1 else 0
        if urgent and n_post == 0:
            raise _Infeasible
        n_pre = total - n_post
        pre = [_Slot(d, _any_pre_level(rng)) for d in _pre_dates(rng, last_visit, n_pre)]
        in_run = rng.randint(1, n_pre)  # pre-visit readings already in the off-target run
        for slot in pre[n_pre - in_run :]:
            slot.level = rng.choice(["poor", "poor", "urgent"])  # on or before the visit: decoys allowed
        if n_pre - in_run > 0:
            pre[n_pre - in_run - 1].level = "on_target"
        post = [_Slot(d, "poor") for d in _post_dates(rng, last_visit, TODAY, n_post)]
        if urgent:
            post[rng.randrange(len(post))].level = "urgent"
        return pre + post
    assert run_start is not None  # run_after
    n_run = rng.randint(1, min(3, total))
    if urgent and n_run == 0:
        raise _Infeasible
    run = [_Slot(run_start, "poor")] + [
        _Slot(d, "poor") for d in _post_dates(rng, run_start, TODAY, n_run - 1)
    ]
    if urgent:
        run[rng.randrange(len(run))].level = "urgent"
    n_before = total - n_run
    n_between = rng.randint(0, min(n_before, (run_start - last_visit).days - 1))
    between = [
        _Slot(d, rng.choice(["on_target", "poor"]))
        for d in _post_dates(rng, last_visit, run_start - timedelta(days=1), n_between)
    ]
    pre = [_Slot(d, _any_pre_level(rng)) for d in _pre_dates(rng, last_visit, n_before - n_between)]
    before = pre + between
    if before:
        before[-1].level = "on_target"  # the run starts exactly at run_start
    return before + run


def _readings(rng: random.Random, condition: Condition, slots: list[_Slot], worsening: bool) -> list[Reading]:
    """Values for the slots' levels, with the worsening measure's rise set exactly."""
    if condition == "diabetes":
        for slot in slots:
            slot.context = "fasting" if worsening or rng.random() < 0.8 else "postprandial"
    for _ in range(300):
        if condition == "hypertension":
            pairs = [_bp_value(rng, s.level) for s in slots]
            series_idx = list(range(len(slots)))
            values = [p[0] for p in pairs]
        else:
            values = [_glucose_value(rng, s.level, s.context) for s in slots]
            series_idx = [i for i, s in enumerate(slots) if s.context == "fasting"]
        if len(series_idx) >= 6:
            last6 = series_idx[-6:]
            # sum(last 3) - sum(3 before) == 3 * mean rise; 30 == exactly 10 mmHg / 1.0 mmol/L
            wanted = (
                rng.choice([30, 30, 31, rng.randint(30, 90)])
                if worsening
                else rng.choice([29, 29, rng.randint(-60, 29)])
            )
            fixed = sum(values[i] for i in last6[3:5]) - sum(values[i] for i in last6[:3])
            values[last6[5]] = wanted - fixed
        elif worsening:
            raise _Infeasible
        if condition == "hypertension":
            pairs = [(values[i], pairs[i][1]) for i in range(len(slots))]
            ok = all(
                s > d and 60 <= s <= 300 and _bp_level(s, d) == sl.level
                for (s, d), sl in zip(pairs, slots, strict=True)
            )
            if ok:
                return [
                    Reading(taken_on=sl.taken_on, kind="bp", systolic=s, diastolic=d)
                    for (s, d), sl in zip(pairs, slots, strict=True)
                ]
        else:
            ok = all(
                5 <= v <= 600 and _glucose_level(v, sl.context) == sl.level
                for v, sl in zip(values, slots, strict=True)
            )
            if ok:
                return [
                    Reading(taken_on=sl.taken_on, kind="glucose", glucose_mmol=v / 10, context=sl.context)  # type: ignore[arg-type]
                    for v, sl in zip(values, slots, strict=True)
                ]
    raise _Infeasible


# ---------------------------------------------------------------------------------------------- patients


def _due_modes(due: date) -> list[Mode]:
    modes: list[Mode] = ["controlled"]
    if due - timedelta(days=UNCONTROLLED_DAYS) <= TODAY:
        modes += ["run_before", "run_after", "none"]
    return modes


def _one_patient(rng: random.Random, index: int) -> Case:
    conditions: list[Condition] = rng.choices(
        [["hypertension"], ["diabetes"], ["hypertension", "diabetes"]], weights=[45, 35, 20]
    )[0]
    base = {
        "id": f"cp{index:05d}",
        "name": f"患者{index:05d}",
        "conditions": conditions,
        "clinic_id": rng.choice(CLINICS),
        "family_doctor": rng.choice(DOCTORS),
        "village": rng.choice(VILLAGES),
    }
    if rng.random() < 0.02:  # never visited: overdue by definition, nothing else
        readings: list[Reading] = []
        for cond in conditions:
            slots = [
                _Slot(TODAY - timedelta(days=rng.randint(1, 200)), "on_target")
                for _ in range(rng.randint(0, 2))
            ]
            readings += _readings(rng, cond, sorted(slots, key=lambda s: s.taken_on), False)
        patient = ChronicPatient(**base, last_visit=None, readings=readings)
        return Case(patient, Expected(overdue=True, overdue_days=0, worsening=False, urgent=False))

    overdue = rng.random() < 0.4
    worsening = rng.random() < 0.25
    urgent = rng.random() < 0.1
    if overdue:
        due = TODAY - timedelta(days=rng.choice([1, 1, 2, 3, 6, 7, 13, 15, 30, 45, 60, 120, 250]))
    else:
        due = TODAY + timedelta(days=rng.choice([0, 0, 1, 2, 5, 13, 14, 20, 30, 60, 89]))
    urgent_on = rng.choice(conditions) if urgent else None
    worse_on = rng.choice(conditions) if worsening else None

    driver = rng.choice(conditions)
    modes = _due_modes(due)
    if driver in (urgent_on, worse_on):
        modes = [m for m in modes if m != "none"]
    mode: Mode = rng.choice(modes)
    run_start: date | None = None
    if mode == "controlled":
        last_visit = due - timedelta(days=CONTROLLED_DAYS)
    elif mode in ("run_before", "none"):
        last_visit = due - timedelta(days=UNCONTROLLED_DAYS)
    else:
        run_start = due - timedelta(days=UNCONTROLLED_DAYS)
        last_visit = run_start - timedelta(days=rng.randint(1, CONTROLLED_DAYS - UNCONTROLLED_DAYS))
    plan: dict[Condition, tuple[Mode, date | None]] = {driver: (mode, run_start)}

    for other in conditions:
        if other == driver:
            continue
        options: list[tuple[Mode, date | None]] = [("controlled", None)]
        same_due = due == last_visit + timedelta(days=UNCONTROLLED_DAYS)
        if same_due:
            options += [("run_before", None)]
            if other not in (urgent_on, worse_on):
                options += [("none", None)]
        earliest = max(last_visit + timedelta(days=1), due - timedelta(days=UNCONTROLLED_DAYS))
        if earliest <= TODAY:
            options.append(("run_after", earliest + timedelta(days=rng.randint(0, (TODAY - earliest).days))))
        plan[other] = rng.choice(options)

    readings = []
    for cond in conditions:
        cond_mode, cond_run = plan[cond]
        slots = _slots(rng, cond_mode, last_visit, cond_run, cond == urgent_on, cond == worse_on)
        readings += _readings(rng, cond, slots, cond == worse_on)
    rng.shuffle(readings)  # input order must not matter (all dates of one condition are distinct)
    patient = ChronicPatient(**base, last_visit=last_visit, readings=readings)
    days = (TODAY - due).days if overdue else 0
    return Case(patient, Expected(overdue=overdue, overdue_days=days, worsening=worsening, urgent=urgent))


def generate_population(n: int = 1200, seed: int = SEED) -> list[Case]:
    rng = random.Random(seed)
    cases: list[Case] = []
    while len(cases) < n:
        try:
            cases.append(_one_patient(rng, len(cases)))
        except _Infeasible:
            continue
    return cases
