"""``modfleet bench`` run as a user runs it, for the benchmark's tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Micro-batches of 20, so that every stage's outputs span several milliseconds and its CPU
# window is there to check: one batch's outputs can share a millisecond, and then no window.
_BATCHES = {"MODFLEET_BATCH_MAX": "20"}


def run_bench(
    cwd: Path, args: list[str], env: dict[str, str] | None = None, *, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    """``modfleet bench ARGS --out bench.json`` in ``cwd``, with only ``env`` of MODFLEET_*
    (batches of 20 unless it says otherwise); ``ok``: it must exit 0."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODFLEET_")}
    command = [sys.executable, "-m", "modfleet", "bench", *args, "--out", "bench.json"]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=240,
        env=clean | _BATCHES | (env or {}),
        cwd=cwd,
        check=False,
    )
    if ok:
        assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    return done
