"""``modfleet bench backlog`` as a user runs it: a backlog decided, the worker's RSS reported."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.integration


def test_backlog_bench_decides_every_post_and_reports_the_workers_peak_rss(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODFLEET_")}
    command = ["bench", "backlog", "--posts", "40", "--post-bytes", "50000", "--crowd", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "modfleet", *command],
        capture_output=True,
        text=True,
        timeout=240,
        env=env | {"MODFLEET_HELD_POST_BYTES": str(256 * 1024)},
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    out = done.stdout
    assert "40 posts of 50,000 bytes" in out
    assert "sharing its CPU with 1 busy loops" in out
    assert "stream_buffer_bytes 256 MiB, held_post_bytes 256 KiB" in out, "the settings run"
    assert re.search(r"outcomes +40 of 40 in [0-9.]+ s", out), out
    rss = re.search(r"worker RSS +([0-9,]+) MiB at its start, peak ([0-9,]+) MiB", out)
    assert rss, out
    first, peak = (int(n.replace(",", "")) for n in rss.groups())
    assert 50 < first <= peak, "a worker with its model loaded, sampled while it decided"


def test_a_terminated_bench_leaves_no_broker_redis_worker_or_busy_loop_behind(
    tmp_path: Path,
) -> None:
    # SIGTERM (an orchestrator's stop, `kill`, a CI timeout) must clean up as Ctrl-C does: the
    # busy loops it leaves would take a core each until someone finds them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODFLEET_")}
    command = ["bench", "backlog", "--posts", "4000", "--post-bytes", "100000", "--crowd", "1"]
    bench = subprocess.Popen(
        [sys.executable, "-m", "modfleet", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
    )
    parent = psutil.Process(bench.pid)
    try:
        deadline = time.monotonic() + 180
        while not any("while True" in " ".join(c.cmdline()) for c in _alive(parent)):
            assert time.monotonic() < deadline, "the bench never started its busy loop"
            assert bench.poll() is None, "the bench ended before it was stopped"
            time.sleep(0.2)
        children = _alive(parent)
        assert len(children) >= 4, [c.cmdline() for c in children]  # broker, Redis, worker, loop
        bench.terminate()
        bench.wait(timeout=60)
        _, left = psutil.wait_procs(children, timeout=30)
        assert left == [], [c.cmdline() for c in left]
    finally:
        for child in _alive(parent):
            child.kill()
        bench.kill()


def _alive(parent: psutil.Process) -> list[psutil.Process]:
    try:
        return parent.children(recursive=True)
    except psutil.NoSuchProcess:
        return []
