"""`modfleet` commands run as a user runs them, in a process of their own."""

from __future__ import annotations

import os
import subprocess
import sys

from modfleet.stack.services import free_port


def with_broker_down(*args: str) -> tuple[str, int]:
    """Run ``modfleet *args`` against a broker address nothing listens on; check that it fails
    in one line, with no traceback and no client left open. Returns that line and the port."""
    port = free_port()  # nothing listens there
    env = {**os.environ, "MODFLEET_BROKER_URL": f"kafka://127.0.0.1:{port}"}
    cmd = [sys.executable, "-m", "modfleet", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "Unclosed" not in done.stderr, "the consumer that failed to start is closed"
    # aiokafka logs its own line about the connection; ours is the last, naming the broker.
    return done.stderr.strip().splitlines()[-1], port
