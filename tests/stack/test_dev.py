"""The README's first command: the embedded stack end to end, as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_modfleet_dev_replays_the_sample_and_prints_the_summary(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODFLEET_")}
    done = subprocess.run(
        [sys.executable, "-m", "modfleet", "dev"],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    numbers = {
        name: int(value)
        for name, value in re.findall(r"^  (posts sent|decisions|dead-letters)\s+(\d+)", out, re.M)
    }
    assert numbers["posts sent"] == 2000
    assert numbers["decisions"] + numbers["dead-letters"] == 2000
    assert numbers["dead-letters"] == 20  # the sample's malformed lines
    hits = re.search(r"^  cache hits\s+(\d+)", out, re.M)
    assert hits
    assert int(hits.group(1)) > 0
    assert re.search(r"^  throughput\s+[\d,]+ posts/s", out, re.M)
