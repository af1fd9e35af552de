"""A circuit breaker per model server.

After ``failures`` consecutive failures the circuit opens: calls fail at once with a
``RecoverableError`` instead of each waiting out a timeout against a server that is down, so the
pipeline moves on to its own retries and, past them, to dead-lettering, within seconds. After
``reset_s`` one probe is let through (half-open); its success closes the circuit, its failure
opens it again for another ``reset_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from modfleet.errors import RecoverableError

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        failures: int,
        reset_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._threshold = failures
        self._reset_s = reset_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self._reset_s:
            return "half_open"
        return "open"

    def available(self) -> bool:
        """Whether a call may go through now (closed, or half-open with no probe out)."""
        state = self.state
        return state == "closed" or (state == "half_open" and not self._probing)

    def acquire(self) -> None:
        """Call before each request; raises when the circuit is open."""
        state = self.state
        if state == "closed":
            return
        if state == "half_open" and not self._probing:
            self._probing = True  # this call is the probe; others still fail fast
            return
        raise RecoverableError(f"circuit open for {self.name} (server failing; retry later)")

    def success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def cancelled(self) -> None:
        """The call was abandoned without an answer: it proves nothing either way."""
        self._probing = False

    def failure(self) -> None:
        self._failures += 1
        if self._probing or self._failures >= self._threshold:
            self._opened_at = self._clock()
        self._probing = False
