"""``modfleet bench`` run as a user runs it, for the benchmark's tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_bench(
    cwd: Path, args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``modfleet bench ARGS --out bench.json`` in ``cwd``, with only ``env`` of MODFLEET_*."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODFLEET_")}
    command = [sys.executable, "-m", "modfleet", "bench", *args, "--out", "bench.json"]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=240,
        env=clean | (env or {}),
        cwd=cwd,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    return done
