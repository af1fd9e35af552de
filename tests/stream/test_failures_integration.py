"""Inference failures on a real worker: the batch is retried or isolated, never lost."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from posts import encode, post, unique_texts

from modfleet.contracts.admin import create_topics
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
