"""Latency benchmarks. Run: `python -m evals.bench [--iterations N] [--data PATH]`.

Each benchmark is a function `(BenchConfig) -> list[BenchRow]` listed in BENCHES; add later
sections (retrieval, chat turn, ...) by appending a function there. A row may carry a p95
budget; the process exits 1 when any row is over its budget and 2 when a benchmark fails to run.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
import traceback
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from evals.triage_eval import DEFAULT_DATA, load_cases, to_triage_input

TRIAGE_P95_BUDGET_MS = 20.0
DEFAULT_ITERATIONS = 2000
DEFAULT_WARMUP = 100


@dataclass(frozen=True)
class BenchConfig:
    data: Path = DEFAULT_DATA
    iterations: int = DEFAULT_ITERATIONS
    warmup: int = DEFAULT_WARMUP


@dataclass(frozen=True)
class BenchRow:
    section: str
    name: str
    samples: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    throughput_per_s: float
    budget_p95_ms: float | None = None
    note: str = ""

    @property
    def over_budget(self) -> bool:
        return self.budget_p95_ms is not None and self.p95_ms > self.budget_p95_ms


BenchFn = Callable[[BenchConfig], list[BenchRow]]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of an ascending, non-empty sequence."""
    if not sorted_values:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    position = (len(sorted_values) - 1) * q / 100
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    fraction = position - lower
    return sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * fraction


def time_calls(
    fn: Callable[[Any], object], items: Sequence[Any], iterations: int, warmup: int
) -> tuple[list[int], float]:
    """Call fn on items cyclically; returns per-call durations (ns) and total wall time (s)."""
    if not items:
        raise ValueError("nothing to benchmark: no items")
    for i in range(warmup):
        fn(items[i % len(items)])
    durations: list[int] = []
    clock = time.perf_counter_ns
    wall_start = clock()
    for i in range(iterations):
        item = items[i % len(items)]
        start = clock()
        fn(item)
        durations.append(clock() - start)
    return durations, (clock() - wall_start) / 1e9


def summarise(
    section: str,
    name: str,
    durations_ns: Sequence[int],
    wall_s: float,
    budget_p95_ms: float | None = None,
    note: str = "",
) -> BenchRow:
    ms = sorted(d / 1e6 for d in durations_ns)
    return BenchRow(
        section=section,
        name=name,
        samples=len(ms),
        p50_ms=percentile(ms, 50),
        p95_ms=percentile(ms, 95),
        p99_ms=percentile(ms, 99),
        max_ms=ms[-1],
        throughput_per_s=len(ms) / wall_s if wall_s > 0 else float("inf"),
        budget_p95_ms=budget_p95_ms,
        note=note,
    )


# --------------------------------------------------------------------------- benchmarks

_SPACES = re.compile(r"\s+")


def _normalise(text: str) -> str:
    """Baseline work: a trivial pure-Python pass every engine does at least once per input."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def bench_triage(config: BenchConfig) -> list[BenchRow]:
    from tools.triage import assess  # late import: other sections still run if the engine is missing

    loaded = load_cases(config.data)
    if not loaded.cases:
        raise ValueError(f"no usable rows in {config.data}")
    texts = [c.text for c in loaded.cases]
    # Inputs are built up front so the timing is the engine alone, not pydantic construction.
    inputs = [to_triage_input(c) for c in loaded.cases]

    base_ns, base_wall = time_calls(_normalise, texts, config.iterations, config.warmup)
    baseline = summarise("triage", "baseline: normalise text", base_ns, base_wall)
    assess_ns, assess_wall = time_calls(assess, inputs, config.iterations, config.warmup)
    engine = summarise("triage", "assess", assess_ns, assess_wall, budget_p95_ms=TRIAGE_P95_BUDGET_MS)
    ratio = engine.p50_ms / baseline.p50_ms if baseline.p50_ms > 0 else float("inf")
    engine = replace(engine, note=f"{len(texts)} texts; p50 = {ratio:,.1f}x baseline")
    return [baseline, engine]


BENCHES: list[BenchFn] = [bench_triage]


# --------------------------------------------------------------------------- output


def format_table(rows: Sequence[BenchRow]) -> str:
    header = (
        f"{'section':<10}{'benchmark':<28}{'n':>7}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}"
        f"{'max ms':>10}{'per s':>11}  {'budget':<16}note"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        if r.budget_p95_ms is None:
            budget = ""
        else:
            budget = f"p95<={r.budget_p95_ms:g} " + ("FAIL" if r.over_budget else "ok")
        lines.append(
            f"{r.section:<10}{r.name:<28}{r.samples:>7}{r.p50_ms:>10.3f}{r.p95_ms:>10.3f}{r.p99_ms:>10.3f}"
            f"{r.max_ms:>10.3f}{r.throughput_per_s:>11,.0f}  {budget:<16}{r.note}"
        )
    return "\n".join(lines)


def run_benches(
    config: BenchConfig, benches: Sequence[BenchFn] = BENCHES
) -> tuple[list[BenchRow], list[str]]:
    rows: list[BenchRow] = []
    failures: list[str] = []
    for bench in benches:
        try:
            rows.extend(bench(config))
        except Exception as exc:  # report and continue: one broken section must not hide the others
            failures.append(f"{bench.__name__}: {type(exc).__name__}: {exc}")
            traceback.print_exc(file=sys.stderr)
    return rows, failures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Daozhen latency benchmarks")
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="JSONL vignette file for triage texts"
    )
    parser.add_argument(
        "--iterations", type=int, default=DEFAULT_ITERATIONS, help="timed calls per benchmark"
    )
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help="untimed calls first")
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.warmup < 0:
        parser.error("--iterations must be >= 1 and --warmup >= 0")

    from evals.bench_agent import AGENT_BENCHES  # late: agent sections import this module
    from evals.bench_visit import VISIT_BENCHES

    config = BenchConfig(data=args.data, iterations=args.iterations, warmup=args.warmup)
    rows, failures = run_benches(config, [*BENCHES, *VISIT_BENCHES, *AGENT_BENCHES])
    print(format_table(rows))
    for failure in failures:
        print(f"ERROR {failure}", file=sys.stderr)
    over = [r for r in rows if r.over_budget]
    for r in over:
        print(
            f"OVER BUDGET: {r.section}/{r.name} p95 {r.p95_ms:.2f} ms > {r.budget_p95_ms:g} ms",
            file=sys.stderr,
        )
    if failures:
        return 2
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
