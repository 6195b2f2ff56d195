"""Route computation latency on the demo hospital map: find_route (Dijkstra + directions) between
random pairs of places, plain and step-free. Run: `python -m evals.bench_navigation [n]`.

Two entry points: bench_routes(n) -> {"route_p50_ms", "route_p95_ms", "route_step_free_p50_ms", ...},
and bench_navigation(config) -> [BenchRow], the evals/bench.py section shape (append it to the list of
benchmarks `make bench` runs). Pairs without a step-free route (the stairs-only mezzanine) still
count: raising no_step_free_route costs a second search, which is part of what a user waits for."""

from __future__ import annotations

import contextlib
import random
import sys
import time
from typing import TYPE_CHECKING

from tools.navigation import HospitalMap, NavigationError, find_route, load_map

if TYPE_CHECKING:
    from evals.bench import BenchConfig, BenchRow

MAP_ID = "demo-general-hospital"
ROUTE_P95_BUDGET_MS = 20.0  # generous: a route is well under 1 ms on the demo map
WARMUP = 20


def _pairs(hmap: HospitalMap, n: int, seed: int) -> list[tuple[str, str]]:
    places = sorted(node.id for node in hmap.places())
    rng = random.Random(seed)
    return [(a, b) for a, b in (rng.sample(places, 2) for _ in range(n))]


def _route(hmap: HospitalMap, start: str, goal: str, step_free: bool) -> None:
    with contextlib.suppress(NavigationError):  # no_step_free_route for the mezzanine: an answer too
        find_route(hmap, start, goal, step_free=step_free)


def _timings_ns(n: int, step_free: bool, seed: int) -> tuple[list[int], float]:
    """Per-call durations (ns) of n routes and the total wall time (s)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    hmap = load_map(MAP_ID)
    pairs = _pairs(hmap, n, seed)
    for start, goal in pairs[:WARMUP]:
        _route(hmap, start, goal, step_free)
    clock = time.perf_counter_ns
    durations = []
    wall = clock()
    for start, goal in pairs:
        began = clock()
        _route(hmap, start, goal, step_free)
        durations.append(clock() - began)
    return durations, (clock() - wall) / 1e9


def _percentile(sorted_values: list[float], q: float) -> float:
    position = (len(sorted_values) - 1) * q / 100
    lower = int(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    return sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * (position - lower)


def bench_routes(n: int = 2000, seed: int = 5) -> dict[str, float]:
    """p50/p95 milliseconds of find_route on n random place pairs, plain and step-free."""
    result: dict[str, float] = {}
    for label, step_free in (("route", False), ("route_step_free", True)):
        durations, _wall = _timings_ns(n, step_free, seed)
        ms = sorted(d / 1e6 for d in durations)
        result[f"{label}_p50_ms"] = round(_percentile(ms, 50), 3)
        result[f"{label}_p95_ms"] = round(_percentile(ms, 95), 3)
    return result


def bench_navigation(config: BenchConfig) -> list[BenchRow]:
    """The `make bench` section: one row per route kind on the demo hospital."""
    from evals.bench import summarise  # late: evals.bench may list this module's benchmark

    nodes = len(load_map(MAP_ID).nodes)
    rows = []
    for name, step_free in (("fastest, demo hospital", False), ("step-free, demo hospital", True)):
        durations, wall = _timings_ns(config.iterations, step_free, seed=5)
        note = f"find_route on random place pairs, {nodes} nodes"
        rows.append(summarise("route", name, durations, wall, ROUTE_P95_BUDGET_MS, note))
    return rows


NAVIGATION_BENCHES = [bench_navigation]


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    for key, value in bench_routes(count).items():
        print(f"{key:>24}: {value}")
