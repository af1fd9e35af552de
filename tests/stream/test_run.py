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


WATCHED = """
import asyncio, re, sys
from modfleet.stream.run import watch_loop

async def main(stall: bool) -> None:
    watch = asyncio.ensure_future(watch_loop(2.0))
    for _ in range(40):  # 4 s of a loop that turns: twice the stall deadline
        await asyncio.sleep(0.1)
    print("turned", flush=True)
    if stall:
        re.fullmatch(r"(a+)+b", "a" * 64)  # the GIL held, for hours
    watch.cancel()
    await asyncio.sleep(0)

asyncio.run(main(sys.argv[1] == "stall"))
"""


def test_a_loop_that_turns_is_left_alone_and_one_that_stalls_is_ended() -> None:
    def run(how: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", WATCHED, how],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    turning = run("turn")
    assert turning.returncode == 0, turning.stderr
    assert turning.stdout == "turned\n"
    stalled = run("stall")
    assert stalled.returncode == 1
    assert stalled.stdout == "turned\n"
    assert "Timeout (0:00:02)!" in stalled.stderr
    assert "in main" in stalled.stderr, "the stack says where the loop stood still"
