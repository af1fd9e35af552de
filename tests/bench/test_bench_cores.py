"""The benchmark's split of the CPUs between the measured process and everything else."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from modfleet.bench.cores import Cores, affinity, pin

_TWO_CPUS = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="pinning to one CPU of two needs two CPUs"
)


def test_the_measured_half_and_the_rest_are_disjoint_and_cover_every_cpu() -> None:
    for cpus in ({0, 1}, {0, 1, 2}, set(range(16)), {3, 7, 9, 12}):
        cores = Cores.split(cpus)
        assert cores is not None
        assert cores.measured, cpus
        assert cores.rest, cpus
        assert not cores.measured & cores.rest
        assert cores.measured | cores.rest == cpus
    two = Cores.split({0, 1})
    assert two == Cores(frozenset({1}), frozenset({0}))
    assert "CPUs 1, the rest on 0" in two.describe()


def test_one_cpu_is_not_split() -> None:
    assert Cores.split({5}) is None
    assert Cores.split(set()) is None


# A child with a thread of its own running before it is pinned, then one started after.
_CHILD = """
import sys, threading, time
threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
print("ready", flush=True)
sys.stdin.readline()
threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
print("ready", flush=True)
time.sleep(30)
"""


@_TWO_CPUS
def test_every_thread_of_a_pinned_process_runs_on_its_cpus_and_new_ones_inherit_them() -> None:
    target = frozenset({max(os.sched_getaffinity(0))})
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "ready"
        assert affinity(child.pid) == os.sched_getaffinity(0)  # not pinned: every CPU
        pin(child.pid, target)
        threads = os.listdir(f"/proc/{child.pid}/task")
        assert len(threads) >= 2
        assert all(os.sched_getaffinity(int(tid)) == target for tid in threads)
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 5
        while len(os.listdir(f"/proc/{child.pid}/task")) <= len(threads):
            assert time.monotonic() < deadline, "the child's second thread never started"
            time.sleep(0.01)
        assert affinity(child.pid) == target
    finally:
        child.kill()
        child.wait()


def test_a_process_that_has_gone_has_no_cpus_and_pinning_it_is_not_an_error() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    pin(child.pid, frozenset(os.sched_getaffinity(0)))
    assert affinity(child.pid) == frozenset()
