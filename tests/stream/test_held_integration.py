"""A backlog of large posts: the worker's batches are cut by bytes, not only by count."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from posts import encode, post, unique_texts
from worker_metrics import metric, scrape

from modfleet.contracts.admin import create_topics
from modfleet.replay import collect_outcomes, post_key, produce_posts
from modfleet.settings import Settings
from modfleet.stack.dev import worker_process

pytestmark = pytest.mark.integration

BOUND = 64 * 1024
LARGE, LARGE_BYTES = 60, 30_000
HUGE_BYTES = 200_000  # past the bound on its own


def padded(text: str, size: int) -> str:
    return (text + " ") * (size // (len(text) + 1))


async def test_a_backlog_of_large_posts_is_taken_in_batches_within_the_byte_bound(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # batch_max alone would take the whole backlog (about 2 MB) in one batch.
    settings = make_settings(held_post_bytes=BOUND, batch_max=512)
    await create_topics(settings, replication_factor=1, partitions=3)
    texts = unique_texts(LARGE + 1)
    values = [encode(post(f"big-{i}", padded(t, LARGE_BYTES))) for i, t in enumerate(texts[:-1])]
    values.append(encode(post("huge", padded(texts[-1], HUGE_BYTES))))
    await produce_posts(settings, values)  # a backlog before the worker starts

    with worker_process(settings, tmp_path / "worker.log"):
        outcomes = await collect_outcomes(settings, len(values), timeout_s=120)
        text = scrape(settings)

    assert outcomes.settled == len(values), "every post decided, the one past the bound too"
    assert {d["post_id"] for d in outcomes.decisions} == {f"big-{i}" for i in range(LARGE)} | {
        "huge"
    }
    batches = metric(text, "modfleet_batch_bytes_count")
    within = metric(text, f'modfleet_batch_bytes_bucket{{le="{float(BOUND)}"}}')
    assert batches >= len(values) * LARGE_BYTES // BOUND, "batches cut by bytes"
    assert within >= batches - 1, "only the post past the bound, taken alone, exceeds it"
    held = sum(len(v) + len(post_key(v) or b"") for v in values)
    assert metric(text, "modfleet_batch_bytes_sum") == held, "every post counted, and released"
