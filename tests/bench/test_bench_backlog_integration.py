"""``modfleet bench backlog`` as a user runs it: a backlog decided, the worker's RSS reported."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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
