"""A worker whose HTML renderer cannot start (a pod out of memory or processes) holds its batch
and says why on /ready, as for a model outage, then decides the batch once a child starts:
nothing is dead-lettered for it. A real broker, Redis and model."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import pytest
from posts import encode, post

from modfleet.contracts.admin import create_topics
from modfleet.ingest import Record
from modfleet.policy.model import TextIn
from modfleet.policy.packs import PolicySet
from modfleet.replay import collect_outcomes
from modfleet.settings import Settings
from modfleet.stream.app import StreamWorker
from modfleet.stream.render import Renderer

pytestmark = pytest.mark.integration


async def test_a_renderer_that_cannot_start_holds_the_batch_and_says_so(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    await create_topics(settings, replication_factor=1, partitions=1)
    worker = StreamWorker(settings)
    plain = worker.pipeline.policies.default
    html = plain.model_copy(update={"text": TextIn(format="html")})
    worker.pipeline.policies = PolicySet(default=plain, by_tenant={"forum": html})
    worker.pipeline.renderer = Renderer((sys.executable, "-c", "raise SystemExit('no memory')"))
    worker.liveness.agent_running = worker.liveness.joined = True
    values = [
        encode(post("rude", "f<b></b>u<b></b>c<b></b>k you", tenant="forum")),
        encode(post("kind", "have a nice day", tenant="acme")),
    ]
    records = [Record(settings.posts_topic, 0, i, 1.7e9, None, v) for i, v in enumerate(values)]

    await worker.app.producer.start()
    try:
        held = asyncio.create_task(worker.handle_batch(records))
        await asyncio.sleep(1.0)
        assert not held.done()
        assert worker.liveness.not_ready() == "the HTML renderer is down: consumption paused"
        assert worker.metrics.registry.get_sample_value("modfleet_model_down") == 1
        worker.pipeline.renderer = Renderer()  # the pod has room again
        await asyncio.wait_for(held, 30)
        assert worker.liveness.not_ready() is None
    finally:
        await worker.app.producer.stop()
        await worker.pipeline.renderer.close()
    outcomes = await collect_outcomes(settings, 2, timeout_s=30)
    assert {d["post_id"]: d["action"] for d in outcomes.decisions} == {
        "rude": "remove",
        "kind": "allow",
    }
    assert outcomes.dead_letters == []
