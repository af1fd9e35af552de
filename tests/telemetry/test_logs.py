"""Logs are JSON lines and hold no post text at the default level."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from posts import encode, post

from modfleet.contracts.admin import create_topics
from modfleet.replay import collect_outcomes, produce_posts
from modfleet.settings import Settings
from modfleet.stack.dev import worker_process

pytestmark = pytest.mark.integration

MARKER = "zebra-kumquat-7731"


async def test_worker_logs_are_json_without_post_text(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    await create_topics(settings, replication_factor=1, partitions=1)
    values = [encode(post(f"l-{i}", f"{MARKER} you idiot {i}")) for i in range(20)]
    values.append(encode({**post("l-bad", "x"), "text": [MARKER]}))
    values.append(encode({**post("l-bad2", "x"), "tenant": f"{MARKER} !"}))
    log_path = tmp_path / "worker.log"
    with worker_process(settings, log_path):
        await produce_posts(settings, values)
        outcomes = await collect_outcomes(settings, len(values), timeout_s=60)
    assert outcomes.settled == len(values)

    text = log_path.read_text()
    assert MARKER not in text
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    dead = [line for line in lines if line["message"].startswith("dead-lettered")]
    assert {d["post_id"] for d in dead} == {"l-bad", "l-bad2"}
    assert all(len(d["trace_id"]) == 32 for d in dead)
