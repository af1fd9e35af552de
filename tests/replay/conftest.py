"""One real worker per module on the session's broker and Redis, for the replay tests.

Replays correlate outcomes with the posts they sent, so the tests of a module share a worker
(and its topics) and each sends posts with ids of its own; starting a worker per test would
cost most of each test's time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from modfleet.contracts.admin import create_topics
from modfleet.replay.embedded import wait_for_group
from modfleet.settings import Settings
from modfleet.stack.dev import worker_process
from modfleet.stack.services import free_port


def fleet_settings(kafka_url: str, redis_url: str) -> Settings:
    run = uuid.uuid4().hex[:8]
    return Settings(
        broker_url=kafka_url,
        redis_url=redis_url,  # type: ignore[arg-type]
        consumer_group=f"modfleet-replay-{run}",
        posts_topic=f"posts-{run}",
        decisions_topic=f"decisions-{run}",
        escalations_topic=f"escalations-{run}",
        dead_letter_topic=f"dead-letter-{run}",
        broker_session_timeout_s=6.0,
        broker_heartbeat_interval_s=1.0,
        web_port=free_port(),
        retry_backoff_s=0.05,
        cache_hmac_key="modfleet-tests-cache-hmac-key",  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def fleet(
    kafka_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """Settings of a running worker whose consumer group owns the posts topic."""
    settings = fleet_settings(kafka_url, redis_url)
    asyncio.run(create_topics(settings, replication_factor=1, partitions=3))
    log: Path = tmp_path_factory.mktemp("replay-worker") / "worker.log"
    with worker_process(settings, log):
        asyncio.run(wait_for_group(settings))
        yield settings
