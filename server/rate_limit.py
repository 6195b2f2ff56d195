"""Per-connection token bucket: a short burst is fine, a sustained flood is refused."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self, capacity: float, refill_per_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.refill_per_s = refill_per_s
        self._clock = clock
        self._tokens = capacity
        self._stamp = clock()

    @classmethod
    def per_minute(cls, rate: int, clock: Callable[[], float] = time.monotonic) -> TokenBucket:
        """`rate` messages a minute on average; a burst of half a minute's worth (at least 5),
        so a person clicking quickly through answers is never refused."""
        rate = max(1, rate)
        return cls(capacity=max(5, rate // 2), refill_per_s=rate / 60.0, clock=clock)

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.refill_per_s)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False
