"""Latency over time: a paced run's latencies cut into windows by when each post was sent.

Keyed by send time, not arrival, so that a process falling behind shows as later windows
getting slower (a backlog building), rather than as arrivals bunching up at the end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from modfleet.bench.cpu import between

SOAK_WINDOW_S = 30.0


@dataclass
class Window:
    start_s: float  # send time, seconds into the run
    posts: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    # Share of one core each process used over the window's wall time (not by send time:
    # it shows which process was busy while that window's posts were sent).
    cpu_pct: dict[str, float] = field(default_factory=dict)


def percentile_ms(latencies_s: Sequence[float], q: float) -> float:
    """The ``q`` quantile (nearest rank, 1.0 the maximum) in milliseconds; 0 with none."""
    if not latencies_s:
        return 0.0
    ordered = sorted(latencies_s)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def window_s_for(seconds: float) -> float:
    """30 s windows for a soak; a short run in about six, whole seconds (at least one)."""
    if seconds >= 4 * SOAK_WINDOW_S:
        return SOAK_WINDOW_S
    return float(max(1, round(seconds / 6)))


def windows(
    samples: Sequence[tuple[float, float]],
    window_s: float,
    cpu: Sequence[tuple[float, dict[str, float]]] = (),
) -> list[Window]:
    """``samples``: (seconds into the run the post was sent, its latency in seconds); ``cpu``:
    (seconds into the run, CPU seconds by process), if the processes were sampled.

    Every window from the first to the last one with a post is listed, an empty one with
    zeros, so that rows line up with time.
    """
    if not samples or window_s <= 0:
        return []
    buckets: dict[int, list[float]] = {}
    for sent_s, latency_s in samples:
        buckets.setdefault(max(0, int(sent_s // window_s)), []).append(latency_s)
    out = []
    for i in range(max(buckets) + 1):
        lat = buckets.get(i, [])
        used = between(cpu, i * window_s, (i + 1) * window_s) if cpu else {}
        out.append(
            Window(
                i * window_s,
                len(lat),
                percentile_ms(lat, 0.50),
                percentile_ms(lat, 0.99),
                percentile_ms(lat, 1.0),
                {k: round(100 * s / window_s, 1) for k, s in used.items()},
            )
        )
    return out


def side_by_side(
    title: str,
    columns: Mapping[str, Sequence[Window]],
    window_s: float,
    overall: Mapping[str, Window],
) -> list[str]:
    """Rows of windows, one column group per process (worker, faust passthrough)."""
    names = list(columns)
    head = f"  {'sent from':>9}" + "".join(
        f"  | {n:<10}{'p50':>7}{'p99':>7}{'max':>7}{'cpu%':>6}{'brk%':>6}{'rest%':>6}"
        for n in names
    )
    lines = [
        f"{title} ({window_s:g} s windows by send time, ms; cpu%: the process's share of one "
        "core, brk%: the embedded broker's, rest%: how busy the other CPUs were, those of "
        "Redis, the load generator and an embedded broker, over the window's wall time)",
        head,
    ]
    rows = max((len(c) for c in columns.values()), default=0)
    for i in range(rows):
        cells = [_cell(columns[n][i] if i < len(columns[n]) else None) for n in names]
        lines.append(f"  {i * window_s:>8g}s" + "".join(cells))
    cells = [_cell(overall.get(n)) for n in names]
    lines.append(f"  {'overall':>9}" + "".join(cells))
    return lines


def _cell(w: Window | None) -> str:
    if w is None:
        return f"  | {'':<10}{'':>39}"
    posts = f"{w.posts:,}"
    shares = (w.cpu_pct.get(k) for k in ("stage", "broker", "rest"))
    cpu = "".join(f"{v:>6.0f}" if v is not None else f"{'':>6}" for v in shares)
    return f"  | {posts:<10}{w.p50_ms:>7.0f}{w.p99_ms:>7.0f}{w.max_ms:>7.0f}{cpu}"
