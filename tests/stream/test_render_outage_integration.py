"""A worker whose HTML renderer cannot start (a pod out of memory or processes) holds its batch
and says why on /ready, as for a model outage, then decides the batch once a child starts:
nothing is dead-lettered for it. A real broker, Redis and model."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from posts import encode, post

from modfleet.contracts.admin import create_topics
from modfleet.ingest import Record
from modfleet.policy.model import TextIn
from modfleet.policy.packs import PolicySet
from modfleet.replay import collect_outcomes
from modfleet.settings import Settings
from modfleet.stream.app import StreamWorker
from modfleet.stream.infer import BackendDown
from modfleet.stream.render import Renderer, RendererDown

pytestmark = pytest.mark.integration


def renderless_worker(settings: Settings) -> StreamWorker:
    """A worker whose tenant ``forum`` reads HTML, and whose renderer cannot start."""
    worker = StreamWorker(settings)
    plain = worker.pipeline.policies.default
    html = plain.model_copy(update={"text": TextIn(format="html")})
    worker.pipeline.policies = PolicySet(default=plain, by_tenant={"forum": html})
    worker.pipeline.renderer = Renderer((sys.executable, "-c", "raise SystemExit('no memory')"))
    worker.liveness.agent_running = worker.liveness.joined = True
    return worker


@contextlib.asynccontextmanager
async def producing(worker: StreamWorker) -> AsyncIterator[None]:
    await worker.app.producer.start()
    try:
        yield
    finally:
        await worker.app.producer.stop()
        await worker.pipeline.renderer.close()


async def held_for_the_renderer(worker: StreamWorker) -> None:
    for _ in range(300):  # the renderer's failed starts take a while on a loaded machine
        if worker.liveness.not_ready() is not None:
            break
        await asyncio.sleep(0.1)
    assert worker.liveness.not_ready() == "the HTML renderer is down: consumption paused"


def records_of(settings: Settings, *posts: dict[str, object]) -> list[Record]:
    values = [encode(p) for p in posts]
    return [Record(settings.posts_topic, 0, i, 1.7e9, None, v) for i, v in enumerate(values)]


async def test_a_renderer_that_cannot_start_holds_the_batch_and_says_so(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    await create_topics(settings, replication_factor=1, partitions=1)
    worker = renderless_worker(settings)
    records = records_of(
        settings,
        post("rude", "f<b></b>u<b></b>c<b></b>k you", tenant="forum"),
        post("kind", "have a nice day", tenant="acme"),
    )

    async with producing(worker):
        held = asyncio.create_task(worker.handle_batch(records))
        await held_for_the_renderer(worker)
        assert not held.done()
        # An SRE's model alert stays quiet: it is the pod, not the model.
        assert worker.metrics.registry.get_sample_value("modfleet_html_renderer_down") == 1
        assert worker.metrics.registry.get_sample_value("modfleet_model_down") == 0
        worker.pipeline.renderer = Renderer()  # the pod has room again
        await asyncio.wait_for(held, 30)
        assert worker.liveness.not_ready() is None
        assert worker.metrics.registry.get_sample_value("modfleet_html_renderer_down") == 0
    outcomes = await collect_outcomes(settings, 2, timeout_s=30)
    assert {d["post_id"]: d["action"] for d in outcomes.decisions} == {
        "rude": "remove",
        "kind": "allow",
    }
    assert outcomes.dead_letters == []


async def test_an_outage_while_a_batch_is_read_alone_holds_the_post_in_hand_only(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # After a death, a batch is read a post at a time and each outcome delivered as it is
    # made: an outage met halfway holds that post, and the posts before it are on the broker,
    # once, rather than read and delivered again from the batch's first post.
    settings = make_settings(crash_journal_path=tmp_path / "journal.json")
    await create_topics(settings, replication_factor=1, partitions=1)
    worker = renderless_worker(settings)
    records = records_of(
        settings,
        post("before", "have a nice day", tenant="acme"),
        post("rude", "f<b></b>u<b></b>c<b></b>k you", tenant="forum"),
        post("after", "see you at nine", tenant="acme"),
    )
    async with producing(worker):
        held = asyncio.create_task(worker.handle_batch(records, alone=True))
        early = await collect_outcomes(settings, 1, timeout_s=30)
        assert [d["post_id"] for d in early.decisions] == ["before"]
        await held_for_the_renderer(worker)
        assert not held.done()
        worker.pipeline.renderer = Renderer()  # the pod has room again
        await asyncio.wait_for(held, 30)
    outcomes = await collect_outcomes(settings, 3, timeout_s=30)
    assert sorted(d["post_id"] for d in outcomes.decisions) == ["after", "before", "rude"]
    assert outcomes.dead_letters == []


async def test_the_gauges_name_what_a_held_batch_waits_for_now(
    make_settings: Callable[..., Settings],
) -> None:
    # A model outage, then the renderer's while the model is back: each gauge says 1 only
    # while its part is what the batch waits for, so an SRE's model alert clears.
    worker = renderless_worker(make_settings(retry_backoff_s=0.01))

    def down() -> dict[str, float | None]:
        sample = worker.metrics.registry.get_sample_value
        return {name: sample(f"modfleet_{name}_down") for name in ("model", "html_renderer")}

    waited = await worker._hold(0, BackendDown("the model answers nothing"))
    assert down() == {"model": 1, "html_renderer": 0}
    await worker._hold(waited, RendererDown("no child starts"))
    assert down() == {"model": 0, "html_renderer": 1}
    assert worker.liveness.not_ready() == "the HTML renderer is down: consumption paused"
    worker._model_back(waited + 1)
    assert down() == {"model": 0, "html_renderer": 0}
