"""Prometheus metrics, written by hand (text exposition format 0.0.4; no extra dependency).

One `ServerMetrics` per app, so tests never share counters. Everything is updated from the event
loop thread or under the GIL with simple int/float operations, which is enough for counters here.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

LabelValues = tuple[str, ...]

DEFAULT_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        self.name, self.help, self.labelnames = name, help_text, tuple(labelnames)
        self._lock = threading.Lock()

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def _key(self, labels: dict[str, str]) -> LabelValues:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {sorted(labels)}")
        return tuple(str(labels[n]) for n in self.labelnames)


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labelnames)
        self._values: dict[LabelValues, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(self._key(labels), 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(self.labelnames, k)} {_number(v)}" for k, v in items]


class Gauge(_Metric):
    """A value set by the code, or read from `source` at scrape time when one is given."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, source: Callable[[], float] | None = None) -> None:
        super().__init__(name, help_text)
        self._value = 0.0
        self.source = source

    def set(self, value: float) -> None:
        self._value = float(value)

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self._value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.inc(-amount)

    @property
    def value(self) -> float:
        if self.source is not None:
            try:
                return float(self.source())
            except Exception:  # a broken source must not break the scrape
                return math.nan
        return self._value

    def render(self) -> list[str]:
        value = self.value
        return self.header() + [f"{self.name} {'NaN' if math.isnan(value) else _number(value)}"]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Sequence[float] = DEFAULT_SECONDS_BUCKETS) -> None:
        super().__init__(name, help_text)
        self.buckets = tuple(sorted(buckets)) + (math.inf,)
        self._counts = [0] * len(self.buckets)
        self._sum = 0.0
        self._count = 0

    def observe(self, value: float) -> None:
        with self._lock:
            self._sum += value
            self._count += 1
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    self._counts[i] += 1  # stored per bucket, made cumulative on render
                    break

    @property
    def count(self) -> int:
        return self._count

    def render(self) -> list[str]:
        with self._lock:
            counts, total, count = list(self._counts), self._sum, self._count
        lines = self.header()
        cumulative = 0
        for bound, n in zip(self.buckets, counts, strict=True):
            cumulative += n
            lines.append(f'{self.name}_bucket{{le="{_number(bound)}"}} {cumulative}')
        lines += [f"{self.name}_sum {_number(total)}", f"{self.name}_count {count}"]
        return lines


class ServerMetrics:
    """Every metric the server exports."""

    def __init__(self) -> None:
        self.http_requests = Counter(
            "daozhen_http_requests_total",
            "HTTP requests by route, method and status.",
            ("route", "method", "status"),
        )
        self.ws_messages = Counter(
            "daozhen_ws_messages_total",
            "Websocket messages by direction (in/out) and type.",
            ("direction", "type"),
        )
        self.errors = Counter("daozhen_errors_total", "Errors sent to clients, by stable code.", ("code",))
        self.turns = Counter("daozhen_turns_total", "Chat turns by outcome.", ("outcome",))
        self.queue_depth = Gauge("daozhen_queue_depth", "Generations waiting for the language model.")
        self.active_sessions = Gauge(
            "daozhen_active_sessions", "Sessions held by open websocket connections."
        )
        self.ws_connections = Gauge("daozhen_ws_connections", "Open websocket connections.")
        self.card_latency = Histogram(
            "daozhen_card_latency_seconds", "From a user message arriving to its triage card being sent."
        )
        self.generation = Histogram(
            "daozhen_generation_seconds", "From a user message arriving to its reply being complete."
        )
        self.tokens_per_second = Gauge("daozhen_tokens_per_second", "Streaming speed of the last reply.")

    def all(self) -> list[_Metric]:
        return [
            self.http_requests,
            self.ws_messages,
            self.errors,
            self.turns,
            self.queue_depth,
            self.active_sessions,
            self.ws_connections,
            self.card_latency,
            self.generation,
            self.tokens_per_second,
        ]

    def render(self) -> str:
        lines: list[str] = []
        for metric in self.all():
            lines += metric.render()
        return "\n".join(lines) + "\n"
