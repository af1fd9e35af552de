"""CPU time of the benchmark's processes, from /proc, so that each stage's cost is measured.

A child's CPU is sampled by a thread of the benchmark (reading /proc costs the reader, not the
process read), and the stage's window is then cut from the samples with the output records'
own timestamps: CPU per post is over the same first-to-last-output span as the stage's rate,
so that start-up, the group join and the model's load (all before the first output) and the
idle wait for the benchmark's next poll (after the last) are never counted.
"""

from __future__ import annotations

import os
import threading
import time
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# Every 50 ms: the sampler then takes about 1% of a core from the 2 the stages share (2% at
# 20 ms), and a window's ends are interpolated over 50 ms of a process's steady work.
_SAMPLE_EVERY_S = 0.05


@dataclass
class Cpu:
    """CPU per post of a stage's processes over its measured window."""

    posts: int  # posts whose output came within the window
    seconds: float  # wall time of the window
    us_per_post: dict[str, float] = field(default_factory=dict)  # by process: "stage", "broker"…
    how: str = ""  # what the window is, for the JSON's reader


def stat_cpu_s(stat_line: str) -> float:
    """utime + stime of a /proc/<pid>/stat line, in seconds.

    The command name (field 2) is in parentheses and may hold spaces and parentheses itself,
    so fields are counted from the last ``)``: state is the first after it, utime the 12th.
    """
    after_name = stat_line.rpartition(")")[2].split()
    utime, stime = int(after_name[11]), int(after_name[12])
    return (utime + stime) / _TICKS_PER_S


def process_cpu_s(pid: int) -> float | None:
    """A process's CPU seconds so far (all its threads); None once it has gone."""
    try:
        return stat_cpu_s(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, IndexError, ValueError):
        return None


def busy_s(stat_text: str, cpus: frozenset[int]) -> float:
    """Seconds the CPUs ``cpus`` were busy, on average over them, from /proc/stat's text: all
    their time (user to steal) less idle and iowait, whatever process ran."""
    total = 0
    for line in stat_text.splitlines():
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            ticks = [int(f) for f in rest.split()[:8]]
            total += sum(ticks) - ticks[3] - ticks[4]
    return total / _TICKS_PER_S / max(1, len(cpus))


def snapshot(pids: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds of each named process that is still there."""
    cpu = {name: process_cpu_s(pid) for name, pid in pids.items()}
    return {name: s for name, s in cpu.items() if s is not None}


def per_post(
    before: Mapping[str, float], after: Mapping[str, float], posts: int
) -> dict[str, float]:
    """Microseconds of CPU per post of each process read both times."""
    if posts <= 0:
        return {}
    return {k: round(1e6 * (after[k] - before[k]) / posts, 1) for k in before if k in after}


def between(
    samples: Sequence[tuple[float, dict[str, float]]], start: float, end: float
) -> dict[str, float]:
    """CPU seconds each process used from ``start`` to ``end`` (epoch seconds), interpolated
    between the samples either side; a process missing from a sample is left out."""
    if len(samples) < 2 or end < start:
        return {}
    at_start, at_end = _at(samples, start), _at(samples, end)
    return {k: at_end[k] - at_start[k] for k in at_start if k in at_end}


def _at(samples: Sequence[tuple[float, dict[str, float]]], t: float) -> dict[str, float]:
    times = [s[0] for s in samples]
    i = min(max(bisect_left(times, t), 1), len(samples) - 1)
    (t0, c0), (t1, c1) = samples[i - 1], samples[i]
    # Outside the samples the nearest pair is extended; the sampler runs past both ends of
    # every window it is asked about, so that only guards against a clock step.
    share = min(max((t - t0) / (t1 - t0), 0.0), 1.0) if t1 > t0 else 1.0
    return {k: c0[k] + share * (c1[k] - c0[k]) for k in c0 if k in c1}


def window_cpu(
    samples: Sequence[tuple[float, dict[str, float]]], timestamps_ms: Sequence[int], how: str
) -> Cpu | None:
    """CPU per post from the first output to the last, over the outputs after the first.

    The first output closes the first batch, whose work was done before it: its posts are
    left out (those stamped in the same millisecond; the rest of that batch, stamped a few
    milliseconds later, are a small bias towards a lower cost, the same for every stage).
    """
    if len(timestamps_ms) < 2:
        return None
    first, last = min(timestamps_ms), max(timestamps_ms)
    posts = sum(1 for ts in timestamps_ms if ts > first)
    used = between(samples, first / 1000, last / 1000)
    if not used or posts == 0:
        return None
    us = {k: round(1e6 * s / posts, 1) for k, s in used.items()}
    return Cpu(posts, (last - first) / 1000, us, how)


class Sampler:
    """A thread that reads the named processes' CPU every 50 ms while the block runs.

    ``own``: also this process's, as "stage", from ``time.process_time`` (finer than /proc's
    ticks), for a stage run in the benchmark itself; the sampler's own reads are in it.
    ``busy``: also how busy those CPUs were, as "rest" (the broker's, Redis's and the load
    generator's CPUs, when split: whether the measured process was starved of its broker).
    A child's children are not counted (/proc counts them only once they are waited for).
    """

    def __init__(
        self,
        pids: Mapping[str, int],
        *,
        own: bool = False,
        every_s: float = _SAMPLE_EVERY_S,
        busy: frozenset[int] = frozenset(),
    ) -> None:
        self.pids = dict(pids)
        self.own = own
        self.busy = busy
        self.every_s = every_s
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append(self._sample())
            if self._stop.wait(self.every_s):
                self.samples.append(self._sample())
                return

    def _sample(self) -> tuple[float, dict[str, float]]:
        cpu = snapshot(self.pids)
        if self.own:
            cpu["stage"] = time.process_time()
        if self.busy:
            cpu["rest"] = busy_s(Path("/proc/stat").read_text(), self.busy)
        return time.time(), cpu

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
