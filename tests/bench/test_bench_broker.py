"""``modfleet bench broker``: the embedded broker alone, paced, read back in a group."""

from __future__ import annotations

import os

import pytest

from modfleet.bench.broker import soak_broker
from modfleet.bench.stages import latency
from modfleet.settings import Settings

pytestmark = pytest.mark.integration


def test_every_post_is_read_back_and_each_window_says_what_the_broker_used() -> None:
    before = os.sched_getaffinity(0)
    soak = soak_broker(Settings(), rate=200, seconds=4.0, split_cores=True)
    run = soak.run
    assert 0 < run.sent <= 800  # never ahead of the pace
    assert len(run.latencies_s) == run.sent  # each post read back once, none of another run's
    assert all(lat >= 0 for lat in run.latencies_s)
    table = soak.table()
    assert f"{run.sent:,} posts" in table
    assert "first window:" in table
    windows = latency(run).windows
    assert sum(w.posts for w in windows) == run.sent
    assert all("broker" in w.cpu_pct for w in windows)  # the broker's share, window by window
    assert os.sched_getaffinity(0) == before  # this process's CPUs given back
    if len(before) >= 2:
        assert "broker on CPUs" in table
