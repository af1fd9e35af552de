"""A stopped worker's process exits even when a library leaves a thread running."""

from __future__ import annotations

import subprocess
import sys

LINGERING = """
import threading, time
from modfleet.stream.run import leave_within
threading.Thread(target=time.sleep, args=(3600,), name="lingering").start()
leave_within(1.0)
"""


def test_a_thread_left_running_cannot_keep_a_stopped_worker_alive() -> None:
    # A non-daemon thread that never returns kept the interpreter's exit waiting on it: the pod
    # stayed Terminating until the kubelet killed it, and nothing said which thread it was.
    done = subprocess.run(
        [sys.executable, "-c", LINGERING], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert "Thread 0x" in done.stderr, "the stacks say what held the exit up"
    assert "threading.py" in done.stderr


def test_a_process_that_exits_in_time_keeps_its_status() -> None:
    code = "from modfleet.stream.run import leave_within; leave_within(30.0)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
