"""`modfleet export training` reads the posts topic whole, and posts are what attackers write."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from posts import encode, post
from raw_batches import produce_raw, zstd_bomb

from modfleet.contracts.admin import create_topics
from modfleet.kafka import client_options
from modfleet.settings import Settings
from modfleet.stack.dev import settings_env

pytestmark = pytest.mark.integration

BOMB = 24  # records of 16 MiB: 384 MiB inflated, six times the default bound
MOST_RSS = 320 * 1024 * 1024


async def _posts_around_a_bomb(settings: Settings) -> None:
    await create_topics(settings, replication_factor=1, partitions=1)
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    try:
        await producer.send_and_wait(settings.posts_topic, encode(post("before", "hello")))
        await produce_raw(settings, settings.posts_topic, zstd_bomb(BOMB, 16 * 1024 * 1024))
        await producer.send_and_wait(settings.posts_topic, encode(post("after", "hello again")))
    finally:
        await producer.stop()


# The command's own peak (VmHWM), read as it exits: the kernel's ru_maxrss of a child would
# start from this process's peak, which built the bomb.
_MEASURED = """
import atexit, re, sys
from pathlib import Path
out = Path(sys.argv.pop(1))
def peak():
    found = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text())
    out.write_text(found.group(1) if found else "")
atexit.register(peak)
from modfleet.cli import main
sys.argv[0] = "modfleet"
main()
"""


def _run_measured(args: list[str], env: dict[str, str], where: Path) -> tuple[int, int]:
    """Exit status and peak resident bytes of one `modfleet` command."""
    peak = where / "peak"
    cmd = [sys.executable, "-c", _MEASURED, str(peak), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=120, check=False)
    (where / "log").write_bytes(done.stdout + done.stderr)
    return done.returncode, int(peak.read_text()) * 1024


def test_a_decompression_bomb_on_the_posts_topic_is_counted_not_inflated(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    asyncio.run(_posts_around_a_bomb(settings))
    out = tmp_path / "export"
    args = ["export", "training", "--out", str(out), "--idle", "2"]
    code, peak = _run_measured(args, {**os.environ, **settings_env(settings)}, tmp_path)

    assert code == 0, (tmp_path / "log").read_text()
    assert peak < MOST_RSS, f"peak {peak / 2**20:.0f} MiB"
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts.get("posts_not_read") == BOMB, counts
