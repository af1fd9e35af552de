"""`modfleet shadow report` fails in one line, naming the broker, when it cannot read."""

from __future__ import annotations

import os
import subprocess
import sys

from modfleet.stack.services import free_port


def test_shadow_report_with_the_broker_down_is_one_line_and_a_failure() -> None:
    port = free_port()  # nothing listens there
    env = {**os.environ, "MODFLEET_BROKER_URL": f"kafka://127.0.0.1:{port}"}
    cmd = [sys.executable, "-m", "modfleet", "shadow", "report", "--idle", "1"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "Unclosed" not in done.stderr, "the consumer that failed to start is closed"
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("modfleet: cannot read from the broker at 127.0.0.1:"), last
    assert str(port) in last
