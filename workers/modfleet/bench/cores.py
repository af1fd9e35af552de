"""Which CPUs the measured process gets, and which the rest of the benchmark gets.

On a small machine the worker (or the faust passthrough it is compared with), the broker,
Redis and the benchmark's own load generator all share the same cores. A faster worker is then
paced faster and contends harder with the broker for the same CPU, so a latency ratio measures
the neighbours as much as the worker (docs/benchmarks.md, tenth pass). Split, the process under
measurement runs on cores of its own, as it would on a machine apart from its broker, and the
worker and the passthrough are held to the same cores.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Cores:
    """Two disjoint CPU sets: ``measured`` for the worker or passthrough under measurement,
    ``rest`` for the benchmark itself, the broker, Redis and the Redis proxy."""

    measured: frozenset[int]
    rest: frozenset[int]

    @classmethod
    def split(cls, cpus: set[int] | frozenset[int]) -> Cores | None:
        """The upper half of ``cpus`` (at least one) measured, the rest for the others; None
        with fewer than two CPUs, where there is nothing to split."""
        ordered = sorted(cpus)
        if len(ordered) < 2:
            return None
        keep = max(1, len(ordered) // 2)
        return cls(frozenset(ordered[-keep:]), frozenset(ordered[:-keep]))

    def describe(self) -> str:
        measured, rest = cpu_list(self.measured), cpu_list(self.rest)
        return f"measured process on CPUs {measured}, the rest on {rest}"


def pin(pid: int, cpus: frozenset[int]) -> None:
    """Pin every thread of ``pid`` to ``cpus``; threads it starts later inherit the mask.

    ``sched_setaffinity`` on a pid moves only that thread, and a child that has started its
    consumer or model threads already would keep them on every CPU."""
    for tid in _threads(pid):
        try:
            os.sched_setaffinity(tid, cpus)
        except ProcessLookupError:
            continue  # a thread that ended between the listing and the call


@contextlib.contextmanager
def this_process_on(cpus: frozenset[int]) -> Iterator[None]:
    """This process (and the children it starts meanwhile) on ``cpus``; its own mask back at
    the end."""
    mine = frozenset(os.sched_getaffinity(0))
    pin(os.getpid(), cpus)
    try:
        yield
    finally:
        pin(os.getpid(), mine)


def affinity(pid: int) -> frozenset[int]:
    """The CPUs any thread of ``pid`` may run on, read back from the kernel."""
    cpus: set[int] = set()
    for tid in _threads(pid):
        try:
            cpus |= os.sched_getaffinity(tid)
        except ProcessLookupError:
            continue
    return frozenset(cpus)


def _threads(pid: int) -> list[int]:
    try:
        return [int(name) for name in os.listdir(Path("/proc") / str(pid) / "task")]
    except FileNotFoundError:
        return [pid]


def cpu_list(cpus: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))
