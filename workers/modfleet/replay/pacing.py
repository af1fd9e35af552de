"""A token bucket that paces sends to a requested rate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

# The bucket holds at most this many seconds of sends. Time lost to timer jitter or to a busy
# CPU (the embedded stack shares it with a broker and a worker) is made up within this bound,
# so the average holds; a longer stall is not followed by a longer burst.
_BURST_S = 0.25


class Pacer:
    """``acquire()`` returns at most ``rate`` times a second on average; no rate means no wait."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._clock = clock
        self._capacity = max(1.0, (rate or 0) * _BURST_S)
        self._tokens = 1.0  # start with one: a full bucket would make the first sends a burst
        self._last = clock()

    async def acquire(self) -> None:
        if self.rate is None:
            return
        self._refill()
        if self._tokens < 1:
            await asyncio.sleep((1 - self._tokens) / self.rate)
            self._refill()
        # May go below zero when the sleep was cut short; the next acquire then waits longer.
        self._tokens -= 1

    def _refill(self) -> None:
        assert self.rate is not None
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
