"""Inference failures on a real worker: the batch is retried or isolated, never lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from posts import encode, post, unique_texts

from modfleet.contracts.admin import create_topics
from modfleet.normalise.text import normalise
from modfleet.replay import collect_outcomes, produce_posts
from modfleet.settings import Settings
from modfleet.stack.dev import worker_process

pytestmark = pytest.mark.integration

SUPPORT = Path(__file__).parents[1] / "support"


@pytest.fixture(autouse=True)
def _plugins_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(SUPPORT))


async def test_a_classifier_crash_on_one_batch_loses_nothing(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(classifier_plugin="flaky:fails_once", classify_attempts=3)
    await create_topics(settings, replication_factor=1, partitions=3)
    posts = [post(f"f-{i}", t) for i, t in enumerate(unique_texts(300, seed=11))]
    with worker_process(settings, tmp_path / "worker.log"):
        await produce_posts(settings, [encode(p) for p in posts])
        outcomes = await collect_outcomes(settings, len(posts), timeout_s=60)
    assert {d["post_id"] for d in outcomes.decisions} == {p["post_id"] for p in posts}
    assert outcomes.dead_letters == []
    assert "retrying" in (tmp_path / "worker.log").read_text()


async def test_a_post_that_always_breaks_the_model_is_dead_lettered_alone(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    from flaky import POISON

    settings = make_settings(classifier_plugin="flaky:breaks_on_poison", classify_attempts=2)
    await create_topics(settings, replication_factor=1, partitions=1)
    posts = [post(f"q-{i}", t) for i, t in enumerate(unique_texts(99, seed=12))]
    posts.insert(50, post("poison-1", POISON))
    with worker_process(settings, tmp_path / "worker.log"):
        await produce_posts(settings, [encode(p) for p in posts])
        outcomes = await collect_outcomes(settings, len(posts), timeout_s=60)
    assert {d["post_id"] for d in outcomes.decisions} == {p["post_id"] for p in posts} - {
        "poison-1"
    }
    [letter] = outcomes.dead_letters
    assert letter["post_id"] == "poison-1"
    assert letter["reason"]["code"] == "inference_failed"
    assert "poison" in letter["reason"]["message"]


async def test_two_batches_in_flight_deliver_a_posts_versions_in_order(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A post edited in a row: its first version's batch is slow to judge, the edit's batch
    (taken behind it, worked on at the same time) is quick. Enforcement systems must still read
    the first version's decision before the edit's, or they would act on a stale one."""
    from flaky import SLOW

    settings = make_settings(
        classifier_plugin="flaky:slow_on_marker", batches_in_flight=2, batch_max=4
    )
    await create_topics(settings, replication_factor=1, partitions=1)
    texts = iter(unique_texts(48, seed=23))
    versions: dict[str, int] = {}  # content hash -> 0 (first version) or 1 (the edit)
    values: list[bytes] = []
    for i in range(6):
        # Two batches of four: a slow first version and three others, then the edit and three.
        for version, marker in ((0, f"{SLOW} "), (1, "")):
            text = marker + next(texts)
            versions[normalise(text, 10_000).content_hash] = version
            values.append(encode(post(f"e-{i}", text)))
            values += [encode(post(f"fill-{i}-{version}-{n}", next(texts))) for n in range(3)]
    with worker_process(settings, tmp_path / "worker.log"):
        await produce_posts(settings, values)
        decisions = await _decisions(settings, len(values), timeout_s=90)
    assert len(decisions) == len(values)
    for i in range(6):
        order = [versions[d["content_hash"]] for d in decisions if d["post_id"] == f"e-{i}"]
        assert order == [0, 1], f"e-{i}: versions decided in the order {order}"


async def _decisions(settings: Settings, count: int, timeout_s: float) -> list[dict[str, Any]]:
    """The decisions topic from the start, in order, once it holds ``count`` decisions (a post
    id may have several, so ``collect_outcomes``'s count of settled posts cannot tell)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        outcomes = await collect_outcomes(settings, count + 1, timeout_s=3)
        if len(outcomes.decisions) >= count or loop.time() > deadline:
            return outcomes.decisions
