"""A broker restart: producers and workers reconnect and carry on.

Tansu keeps topics in memory, so its restart loses them (and any undelivered records): the
test recreates the topics and proves reconnection, then no loss of what is sent afterwards.
A durable broker (Kafka in a container) keeps its data; the test is the same either way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from posts import encode, post, unique_texts
from services import docker_engine

from modfleet.contracts.admin import create_topics
from modfleet.replay import collect_outcomes, produce_posts
from modfleet.settings import Settings
from modfleet.stack import LocalBroker
from modfleet.stack.dev import worker_process

pytestmark = pytest.mark.integration


@pytest.mark.skipif(
    docker_engine(), reason="restarts the local Tansu broker; not run on containers"
)
async def test_worker_reconnects_after_the_broker_restarts(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    with LocalBroker() as broker:
        settings = make_settings(broker_url=broker.url)
        await create_topics(settings, replication_factor=1, partitions=2)
        before = [post(f"b-{i}", t) for i, t in enumerate(unique_texts(200, seed=1))]
        after = [post(f"a-{i}", t) for i, t in enumerate(unique_texts(200, seed=2))]
        with worker_process(settings, tmp_path / "worker.log") as proc:
            await produce_posts(settings, [encode(p) for p in before])
            first = await collect_outcomes(settings, len(before), timeout_s=60)
            assert first.settled == len(before)

            broker.stop()
            broker.start()
            await create_topics(settings, replication_factor=1, partitions=2)
            await produce_posts(settings, [encode(p) for p in after])
            second = await collect_outcomes(settings, len(after), timeout_s=120)
            assert proc.poll() is None, "the worker survived the restart"
    assert {d["post_id"] for d in second.decisions} == {p["post_id"] for p in after}
