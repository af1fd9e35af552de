"""What a replay did: rows read and skipped, the send rate it reached, what the fleet decided."""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from modfleet.replay.rows import BadRow
from modfleet.replay.tracker import Tracker

_BAD_ROWS_LISTED = 10


@dataclass
class SendStats:
    """Counters the sender keeps while it reads and produces."""

    rows: int = 0
    sent: int = 0
    acked: int = 0
    bad: list[BadRow] = field(default_factory=list)
    started_at: float | None = None  # monotonic, first send
    finished_at: float | None = None  # monotonic, last send acknowledged

    def start_clock(self) -> None:
        if self.started_at is None:
            self.started_at = time.monotonic()

    @property
    def seconds(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.monotonic()) - self.started_at


@dataclass(frozen=True)
class Latency:
    count: int
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, values_ms: Sequence[float]) -> Latency | None:
        if not values_ms:
            return None
        ordered = sorted(values_ms)
        return cls(
            len(ordered),
            percentile(ordered, 50),
            percentile(ordered, 95),
            percentile(ordered, 99),
            ordered[-1],
        )


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of sorted values: a value that was actually observed."""
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Report:
    source: str
    rows: int
    bad_rows: list[BadRow]
    sent: int
    send_seconds: float
    requested_rate: float | None
    actions: dict[str, int]
    labels: dict[str, int]
    decisions: int
    escalations: int
    cache_hits: int
    dead_letters: dict[str, int]
    latency: Latency | None
    unsettled: int
    waiting: list[str]
    duplicates: int
    capture: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def achieved_rate(self) -> float | None:
        return self.sent / self.send_seconds if self.send_seconds > 0 else None

    @property
    def complete(self) -> bool:
        return self.unsettled == 0

    def render(self) -> str:
        return "\n".join(
            ["modfleet replay: report", *self._input(), *self._outputs(), *self._timing()]
        )

    def _input(self) -> list[str]:
        bad = collections.Counter(b.code for b in self.bad_rows)
        lines = [
            f"  source              {self.source}",
            f"  rows read           {self.rows:,}",
            f"  bad rows skipped    {len(self.bad_rows):,}",
            *(f"    {code:<18}{n:,}" for code, n in sorted(bad.items())),
            *(f"    {b}" for b in self.bad_rows[:_BAD_ROWS_LISTED]),
        ]
        if len(self.bad_rows) > _BAD_ROWS_LISTED:
            lines.append(f"    ... and {len(self.bad_rows) - _BAD_ROWS_LISTED:,} more")
        return lines + [f"  note: {n}" for n in self.notes]

    def _outputs(self) -> list[str]:
        settled = self.decisions + sum(self.dead_letters.values())
        lines = [
            f"  posts sent          {self.sent:,}",
            f"  settled             {settled:,} of {self.sent:,}"
            + (f"  ({self.unsettled:,} without an outcome)" if self.unsettled else ""),
            f"  decisions           {self.decisions:,}",
            *(f"    {a:<18}{n:,}" for a, n in sorted(self.actions.items())),
            "  decisions by label" + ("" if self.labels else "  (none)"),
            *(f"    {c:<18}{n:,}" for c, n in sorted(self.labels.items())),
            f"  escalations         {self.escalations:,}",
            f"  cache hits          {self.cache_hits:,} "
            f"({_ratio(self.cache_hits, self.decisions)} of decisions)",
            f"  dead-letters        {sum(self.dead_letters.values()):,}",
            *(f"    {r:<18}{n:,}" for r, n in sorted(self.dead_letters.items())),
        ]
        if self.duplicates:
            lines.append(f"  redelivered         {self.duplicates:,} (counted once)")
        if self.waiting:
            lines.append(f"  still waiting for   {', '.join(self.waiting)}")
        if self.capture is not None:
            lines.append(f"  captured to         {self.capture} ({self.decisions:,} decisions)")
        return lines

    def _timing(self) -> list[str]:
        rate = self.achieved_rate
        asked = f"{self.requested_rate:,.0f}/s" if self.requested_rate else "as fast as possible"
        lines = [
            f"  send rate           {'n/a' if rate is None else f'{rate:,.1f}'} posts/s "
            f"over {self.send_seconds:.2f} s (requested {asked})",
        ]
        lat = self.latency
        if lat is None:
            return [*lines, "  latency             n/a (no decisions)"]
        return [
            *lines,
            f"  latency (post produced -> decided, n={lat.count:,})",
            f"    p50 {lat.p50:,.0f} ms   p95 {lat.p95:,.0f} ms   p99 {lat.p99:,.0f} ms"
            f"   max {lat.max:,.0f} ms",
        ]


def build_report(
    source: str,
    stats: SendStats,
    tracker: Tracker,
    requested_rate: float | None,
    capture: Path | None = None,
    notes: Sequence[str] = (),
) -> Report:
    decisions = tracker.outcomes.decisions
    return Report(
        source=source,
        rows=stats.rows,
        bad_rows=list(stats.bad),
        sent=stats.sent,
        send_seconds=stats.seconds,
        requested_rate=requested_rate,
        actions=dict(collections.Counter(str(d.get("action")) for d in decisions)),
        labels=dict(collections.Counter(str(lb) for d in decisions for lb in d.get("labels", []))),
        decisions=len(decisions),
        escalations=len(tracker.outcomes.escalations),
        cache_hits=sum(1 for d in decisions if d.get("from_cache") is True),
        dead_letters=dict(collections.Counter(_reason(d) for d in tracker.outcomes.dead_letters)),
        latency=Latency.of(tracker.latencies_ms),
        unsettled=tracker.unsettled,
        waiting=tracker.waiting() if tracker.unsettled else [],
        duplicates=tracker.duplicates,
        capture=capture,
        notes=list(notes),
    )


def _reason(dead_letter: dict[str, object]) -> str:
    reason = dead_letter.get("reason")
    return str(reason.get("code")) if isinstance(reason, dict) else "unknown"


def _ratio(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"
