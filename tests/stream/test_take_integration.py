"""A worker takes full batches while a lag drains, and posts that trickle in never wait for it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from posts import encode, post, unique_texts
from worker_metrics import metric, scrape

from modfleet.contracts.admin import create_topics
from modfleet.replay import collect_outcomes, produce_posts
from modfleet.settings import Settings
from modfleet.stack.dev import worker_process

pytestmark = pytest.mark.integration

BACKLOG, BATCH = 1_280, 128  # a batch of BATCH is in the size histogram's top bucket


async def test_a_backlog_is_taken_in_full_batches(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # A window of 2 ms cuts a batch at what the event loop moved in 2 ms: a few posts each
    # (faust's take alone gave hundreds of batches here). The records behind each batch would
    # fill it, so it waits for them instead.
    settings = make_settings(batch_max=BATCH, batch_within_s=0.002, batch_backlog_within_s=2.0)
    await create_topics(settings, replication_factor=1, partitions=3)
    texts = unique_texts(BACKLOG)
    await produce_posts(settings, [encode(post(f"p-{i}", t)) for i, t in enumerate(texts)])

    with worker_process(settings, tmp_path / "worker.log"):
        outcomes = await collect_outcomes(settings, BACKLOG, timeout_s=180)
        text = scrape(settings)

    assert outcomes.settled == BACKLOG
    assert {d["post_id"] for d in outcomes.decisions} == {f"p-{i}" for i in range(BACKLOG)}
    assert metric(text, "modfleet_batch_size_sum") == BACKLOG
    batches = metric(text, "modfleet_batch_size_count")
    over_half = batches - metric(text, f'modfleet_batch_size_bucket{{le="{BATCH / 2}"}}')
    # Full batches, but for the last batch's worth: records behind that cannot fill a batch do
    # not hold one, so the tail leaves at the window.
    assert over_half >= BACKLOG // BATCH - 1, f"{over_half:.0f} of {batches:.0f} batches full"


async def test_posts_that_trickle_in_leave_at_the_batch_window(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # The backlog wait is long here: a post that waited for it would be seconds late.
    settings = make_settings(batch_max=512, batch_within_s=0.05, batch_backlog_within_s=8.0)
    await create_topics(settings, replication_factor=1, partitions=3)
    texts = unique_texts(40, seed=11)
    with worker_process(settings, tmp_path / "worker.log"):
        await produce_posts(settings, [encode(post("warm-up", texts[0]))])
        await collect_outcomes(settings, 1, timeout_s=120)  # the worker is up and assigned
        for i, t in enumerate(texts[1:]):
            await produce_posts(settings, [encode(post(f"t-{i}", t))])
            await asyncio.sleep(0.05)
        outcomes = await collect_outcomes(settings, len(texts), timeout_s=60)

    assert outcomes.settled == len(texts)
    late = [
        (d["post_id"], round(_seconds(d["decided_at"]) - _seconds(d["post_produced_at"]), 2))
        for d in outcomes.decisions
        if d["post_id"] != "warm-up"
    ]
    # The window (0.05 s), the fetch and the model, on a loaded machine: well under the 8 s.
    assert max(s for _, s in late) < 4.0, late


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
