"""The progress bar on stderr (tqdm): posts decided of those sent, send rate, ETA.

On a terminal tqdm redraws in place a few times a second; in a log (CI, a pipe) it prints a line
every few seconds instead, so the log shows progress without thousands of redraws.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from tqdm import tqdm

from modfleet.replay.report import SendStats
from modfleet.replay.tracker import Tracker


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
        out = stream or sys.stderr
        tty = out.isatty()
        self._interval = 0.25 if tty else 5.0
        self._bar = tqdm(
            total=total,
            unit="post",
            file=out,
            mininterval=self._interval,
            dynamic_ncols=tty,
            ascii=not tty,
            bar_format="replay |{bar:24}| {desc}  ETA {remaining}",
        )

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self._update()
            self._bar.refresh()

    def finish(self) -> None:
        self._update()
        self._bar.close()

    def note(self, text: str) -> None:
        """A line (a bad row, a warning) printed above the progress bar."""
        self._bar.write(text, file=self._bar.fp)

    def line(self) -> str:
        self._update()
        return str(self._bar)

    def _update(self) -> None:
        s = self._stats
        settled = s.sent - self._tracker.unsettled
        expected = self._expected()
        self._bar.total = expected
        self._bar.n = settled
        rate = s.sent / s.seconds if s.seconds > 0 else 0.0
        of = f"/{expected:,}" if expected is not None else ""
        self._bar.set_description_str(
            f"sent {s.sent:,}{of}  decided {settled:,}  {rate:,.0f}/s", refresh=False
        )

    def _expected(self) -> int | None:
        """Posts that will be sent: known once sending is done, estimated from the row count."""
        if self._stats.finished_at is not None:
            return self._stats.sent
        if self._total is None:
            return None
        return max(self._stats.sent, self._total - len(self._stats.bad))
