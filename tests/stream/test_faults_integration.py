"""Faults on a real broker and a real Redis: whatever breaks, every post gets an outcome.

"0 lost" is asserted by set equality of post ids. Redelivery after a crash may decide a post
twice; such duplicates must be identical decisions under the same key, and they are counted.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from posts import encode, post, unique_texts
from worker_metrics import scrape

from modfleet.contracts.admin import create_topics
from modfleet.replay import Outcomes, collect_outcomes, produce_posts
from modfleet.settings import Settings
from modfleet.stack import LocalRedis, free_port
from modfleet.stack.dev import worker_process

pytestmark = pytest.mark.integration

SUPPORT = Path(__file__).parents[1] / "support"


@contextlib.contextmanager
def workers(settings: Settings, count: int, logs: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` workers in one consumer group, each with its own health port."""
    with contextlib.ExitStack() as stack:
        procs = [
            stack.enter_context(
                worker_process(
                    settings.model_copy(update={"web_port": free_port()}), logs / f"w{i}.log"
                )
            )
            for i in range(count)
        ]
        yield procs


async def wait_settled(settings: Settings, count: int, timeout_s: float) -> Outcomes:
    return await collect_outcomes(settings, count, timeout_s=timeout_s)


def assert_no_loss(outcomes: Outcomes, sent: set[str]) -> int:
    """Every sent post has an outcome; returns how many posts were decided more than once."""
    decided = collections.defaultdict(list)
    for d in outcomes.decisions:
        decided[d["post_id"]].append(d)
    lettered = {d["post_id"] for d in outcomes.dead_letters}
    assert set(decided) | lettered == sent, "every post has an outcome"
    duplicates = 0
    for copies in decided.values():
        if len(copies) > 1:
            duplicates += 1
            first = _essence(copies[0])
            assert all(_essence(c) == first for c in copies), copies
    return duplicates


def _essence(decision: dict[str, Any]) -> tuple[Any, ...]:
    return (decision["decision_id"], decision["action"], decision["scores"], decision["labels"])


def posts(count: int, prefix: str) -> tuple[list[bytes], set[str]]:
    made = [post(f"{prefix}-{i}", t) for i, t in enumerate(unique_texts(count, seed=count))]
    return [encode(p) for p in made], {p["post_id"] for p in made}


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
async def test_a_worker_dies_mid_stream_and_its_partner_takes_over(
    make_settings: Callable[..., Settings], tmp_path: Path, how: signal.Signals
) -> None:
    settings = make_settings(batch_max=200)
    await create_topics(settings, replication_factor=1, partitions=4)
    values, sent = posts(20_000, how.name)
    with workers(settings, 2, tmp_path) as (doomed, survivor):
        producing = asyncio.create_task(produce_posts(settings, values))
        await wait_settled(settings, 3_000, timeout_s=60)
        doomed.send_signal(how)
        if how == signal.SIGTERM:
            assert await asyncio.to_thread(doomed.wait, 60) == 0, "a clean stop on SIGTERM"
        await producing
        outcomes = await wait_settled(settings, len(sent), timeout_s=180)
        assert survivor.poll() is None
    duplicates = assert_no_loss(outcomes, sent)
    print(f"{how.name}: {len(sent)} posts, {duplicates} decided twice (identical)")


async def test_redis_down_for_30_seconds_loses_nothing(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    if not LocalRedis.available():
        pytest.skip("needs a redis-server binary to stop and restart mid-stream")
    with LocalRedis() as redis:
        settings = make_settings(redis_url=redis.url, redis_timeout_s=0.5)
        await create_topics(settings, replication_factor=1, partitions=2)
        values, sent = posts(4_000, "redis")
        log = tmp_path / "worker.log"
        with worker_process(settings, log):
            # Posts trickle in for 40 s; Redis is away from second 5 to second 35.
            producing = asyncio.create_task(_trickle(settings, values, seconds=40))
            await asyncio.sleep(5)
            redis.stop()
            await asyncio.sleep(30)
            redis.start()
            await producing
            outcomes = await wait_settled(settings, len(sent), timeout_s=60)
            metrics = scrape(settings)
    assert assert_no_loss(outcomes, sent) == 0
    text = log.read_text()
    assert "verdict cache unavailable" in text
    assert "verdict cache reachable again" in text
    # Whichever call met the outage first (a batch's read or the idle probe's ping) counts the
    # error and opens the breaker; the reads during the outage are then skipped, not waited on.
    assert "modfleet_cache_errors_total{op=" in metrics
    assert 'modfleet_cache_skipped_total{op="read"}' in metrics
    assert "modfleet_cache_up 1.0" in metrics


async def test_a_failing_hanging_backend_never_wedges_the_worker(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(SUPPORT))
    settings = make_settings(
        classifier_plugin="flaky:half_broken", classify_timeout_s=0.5, classify_attempts=3
    )
    await create_topics(settings, replication_factor=1, partitions=2)
    values, sent = posts(1_000, "half")
    with worker_process(settings, tmp_path / "worker.log") as proc:
        await produce_posts(settings, values)
        outcomes = await wait_settled(settings, len(sent), timeout_s=240)
        assert proc.poll() is None
    assert assert_no_loss(outcomes, sent) == 0
    reasons = {d["reason"]["code"] for d in outcomes.dead_letters}
    assert reasons <= {"inference_failed"}
    assert all("attempts" in d["reason"]["message"] for d in outcomes.dead_letters)


async def _trickle(settings: Settings, values: list[bytes], seconds: float) -> None:
    chunks = 80
    size = -(-len(values) // chunks)
    for start in range(0, len(values), size):
        await produce_posts(settings, values[start : start + size])
        await asyncio.sleep(seconds / chunks)
