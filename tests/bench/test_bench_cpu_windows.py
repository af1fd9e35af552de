"""CPU from /proc and latency windows: the parts of the benchmark's measurements that are pure."""

from __future__ import annotations

import os
import time

import pytest

from modfleet.bench import cpu
from modfleet.bench.windows import Window, percentile_ms, window_s_for, windows

_TICKS = os.sysconf("SC_CLK_TCK")


def test_cpu_is_utime_plus_stime_even_when_the_name_has_spaces_and_parentheses() -> None:
    # Fields after the name: state, ppid, pgrp, session, tty, tpgid, flags, minflt, cminflt,
    # majflt, cmajflt, utime, stime, cutime, cstime (children waited for: not this process's).
    line = f"4242 (faust worker (x)) S 1 2 3 4 5 6 7 8 9 10 {3 * _TICKS} {_TICKS} 500 500 20 0"
    assert cpu.stat_cpu_s(line) == 4.0


def test_this_process_cpu_grows_when_it_works_and_a_gone_process_reads_none() -> None:
    before = cpu.process_cpu_s(os.getpid())
    assert before is not None
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    after = cpu.process_cpu_s(os.getpid())
    assert after is not None
    assert after >= before + 0.03  # /proc counts in ticks (10 ms): 50 ms of work shows
    assert cpu.process_cpu_s(2**22 + 1) is None  # above the kernel's pid limit
    assert cpu.snapshot({"gone": 2**22 + 1}) == {}


def test_cpu_between_two_times_is_interpolated_from_the_samples() -> None:
    samples = [
        (100.0, {"stage": 1.0, "broker": 5.0}),
        (101.0, {"stage": 2.0, "broker": 5.5}),
        (102.0, {"stage": 4.0}),  # the broker has gone: left out from here
    ]
    used = cpu.between(samples, 100.5, 101.5)
    assert used["stage"] == pytest.approx(1.5)
    assert "broker" not in used
    assert cpu.between(samples, 100.0, 101.0) == {"stage": 1.0, "broker": 0.5}
    assert cpu.between(samples[:1], 100.0, 101.0) == {}


def test_window_cpu_is_per_post_over_the_first_to_last_output_less_the_first_batch() -> None:
    samples = [(float(t), {"stage": t * 0.5}) for t in range(100, 111)]
    # Three outputs stamped with the first (the first batch's work is before it), 1000 after.
    stamps = [100_000] * 3 + [100_000 + 10 * i for i in range(1, 1001)]
    used = cpu.window_cpu(samples, stamps, "test")
    assert used is not None
    assert used.posts == 1000
    assert used.seconds == 10.0
    assert used.us_per_post["stage"] == 5000.0  # 5 CPU s over 1000 posts
    assert cpu.window_cpu(samples, [100_000], "one output: no span") is None


def test_the_sampler_reads_the_processes_until_the_block_ends() -> None:
    with cpu.Sampler({"me": os.getpid()}, own=True, every_s=0.01) as sampler:
        time.sleep(0.05)
    assert len(sampler.samples) >= 3
    times = [t for t, _ in sampler.samples]
    assert times == sorted(times)
    assert set(sampler.samples[-1][1]) == {"me", "stage"}


def test_busy_cpus_count_every_process_and_leave_idle_and_iowait_out() -> None:
    # /proc/stat: user nice system idle iowait irq softirq steal guest guest_nice, in ticks;
    # guest time is already in user. cpu0 busy 1+2+3+6+7+8 = 27 ticks, cpu1 9, cpu2 not asked.
    t = _TICKS
    stat = (
        f"cpu  {99 * t} 0 0 0 0 0 0 0 0 0\n"
        f"cpu0 {t} {2 * t} {3 * t} {4 * t} {5 * t} {6 * t} {7 * t} {8 * t} {9 * t} 0\n"
        f"cpu1 {9 * t} 0 0 {50 * t} 0 0 0 0 0 0\n"
        f"cpu2 {70 * t} 0 0 0 0 0 0 0 0 0\n"
        "intr 1 2 3\nctxt 42\n"
    )
    assert cpu.busy_s(stat, frozenset({0})) == 27.0
    assert cpu.busy_s(stat, frozenset({0, 1})) == 18.0  # on average over the two
    with cpu.Sampler({}, every_s=0.01, busy=frozenset({0})) as sampler:
        time.sleep(0.03)
    assert all("rest" in used for _, used in sampler.samples)
    assert sampler.samples[-1][1]["rest"] >= sampler.samples[0][1]["rest"]


def test_windows_are_by_send_time_and_keep_empty_ones_in_place() -> None:
    samples = [(0.5, 0.010), (1.0, 0.020), (29.9, 0.030), (65.0, 2.0), (61.0, 1.0)]
    got = windows(samples, 30)
    assert got == [
        Window(0, 3, 20, 30, 30),
        Window(30, 0, 0, 0, 0),
        Window(60, 2, 2000, 2000, 2000),
    ]
    assert windows([], 30) == []


def test_a_windows_cpu_is_the_share_of_one_core_over_its_wall_time() -> None:
    # Sampled every 5 s: the worker busy at 90% of a core, then at 40%; the broker at 10%.
    cpu = [(float(t), {"stage": 0.9 * min(t, 30) + 0.4 * max(t - 30, 0), "broker": 0.1 * t})
           for t in range(0, 65, 5)]  # fmt: skip
    got = windows([(1.0, 0.1), (31.0, 0.1)], 30, cpu)
    assert got[0].cpu_pct == pytest.approx({"stage": 90.0, "broker": 10.0})
    assert got[1].cpu_pct == pytest.approx({"stage": 40.0, "broker": 10.0})
    assert windows([(1.0, 0.1)], 30)[0].cpu_pct == {}  # not sampled: nothing, not zero


def test_percentiles_and_window_sizes() -> None:
    latencies = [i / 1000 for i in range(1, 101)]  # 1 .. 100 ms
    assert percentile_ms(latencies, 0.5) == pytest.approx(51)
    assert percentile_ms(latencies, 0.99) == pytest.approx(100)
    assert percentile_ms(latencies, 1.0) == pytest.approx(100)
    assert window_s_for(600) == 30
    assert window_s_for(12) == 2
    assert window_s_for(3) == 1
