"""A progress line on stderr: posts sent, outcomes received, send rate, ETA.

On a terminal it redraws in place a few times a second; in a log (CI, a pipe) it prints a line
every few seconds instead, so the log shows progress without thousands of redraws.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO

from modfleet.replay.report import SendStats
from modfleet.replay.tracker import Tracker

_WIDTH = 24


class Progress:
    def __init__(
        self,
        stats: SendStats,
        tracker: Tracker,
        total: int | None,
        stream: TextIO | None = None,
    ) -> None:
        self._stats = stats
        self._tracker = tracker
        self._total = total
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._interval = 0.25 if self._tty else 5.0
        self._started = time.monotonic()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self._draw()

    def finish(self) -> None:
        self._draw()
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()

    def note(self, text: str) -> None:
        """A line (a bad row, a warning) printed above the progress line."""
        self._stream.write(("\r\x1b[2K" if self._tty else "") + text + "\n")
        self._stream.flush()

    def _draw(self) -> None:
        self._stream.write(("\r\x1b[2K" if self._tty else "") + self.line())
        if not self._tty:
            self._stream.write("\n")
        self._stream.flush()

    def line(self) -> str:
        s, t = self._stats, self._tracker
        settled = s.sent - t.unsettled
        expected = self._expected()
        rate = s.sent / s.seconds if s.seconds > 0 else 0.0
        of = f"/{expected:,}" if expected is not None else ""
        return (
            f"replay {_bar(settled, expected)} sent {s.sent:,}{of}  decided {settled:,}  "
            f"{rate:,.0f}/s  ETA {self._eta(settled, expected)}"
        )

    def _expected(self) -> int | None:
        """Posts that will be sent: known once sending is done, estimated from the row count."""
        if self._stats.finished_at is not None:
            return self._stats.sent
        if self._total is None:
            return None
        return max(self._stats.sent, self._total - len(self._stats.bad))

    def _eta(self, settled: int, expected: int | None) -> str:
        elapsed = time.monotonic() - self._started
        if expected is None or settled <= 0 or elapsed <= 0:
            return "?"
        left = max(0.0, (expected - settled) / (settled / elapsed))
        return f"{int(left // 60)}:{int(left % 60):02d}"


def _bar(done: int, whole: int | None) -> str:
    if not whole:
        return "[" + "?" * _WIDTH + "]"
    filled = min(_WIDTH, _WIDTH * done // whole)
    return "[" + "#" * filled + "." * (_WIDTH - filled) + "]"
