"""A post that kills the worker's process whenever it is read (a native crash, as a parser's bug
would cause), on a real broker with a real worker process, Redis and model.

Without a journal every restart dies on it again, and the partition is stuck. With one, the
restart after the first death reads the batch a post at a time and dies on the poison alone;
the next dead-letters it unread and decides every other post, exactly once.
"""

from __future__ import annotations

import asyncio
import collections
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as redis
from fault_runs import batch, committed, faulty_worker
from faults import CRASH_DELIVERING_STEP, CRASH_STEP, HANG_STEP

from modfleet.contracts.admin import create_topics
from modfleet.replay import collect_outcomes, produce_posts
from modfleet.replay.io import Outcomes
from modfleet.settings import Settings
from modfleet.stack.dev import wait_healthy

pytestmark = pytest.mark.integration

POISON_AT = 20  # batch() puts the poison a third of the way in: offset 20 of 60


def died_of_a_crash(code: int, log: Path) -> None:
    assert code == -signal.SIGSEGV, log.read_text(errors="replace")[-3000:]


def assert_poison_dead_lettered_unread(letters: list[dict[str, Any]], offset: int) -> None:
    # Once, or again as the same letter if its batch was redelivered after a rebalance.
    assert {letter["source"]["offset"] for letter in letters} == {offset}
    for letter in letters:
        assert letter["reason"]["code"] == "internal_error"
        assert "died while it read this post alone" in letter["reason"]["message"]
        assert letter["post_id"] is None, "the poison was not read again"


async def backlog(settings: Settings, count: int, prefix: str) -> set[str]:
    """The post ids of ``count`` posts with a poison a third of the way in, all in the first
    batch the worker takes."""
    await create_topics(settings, replication_factor=1, partitions=1)
    values, ids = batch(count, prefix)
    await produce_posts(settings, values)
    return ids


async def outcomes_after_deaths(settings: Settings, step: str, log: Path, count: int) -> Outcomes:
    """What a worker, run again after the deaths, makes of the backlog; it keeps running."""
    with faulty_worker(settings, step, log) as proc:
        outcomes = await collect_outcomes(settings, count, timeout_s=120)
        assert proc.poll() is None, "the worker keeps running"
    return outcomes


async def test_a_post_that_kills_the_worker_costs_two_restarts_and_itself_only(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    journal = tmp_path / "journal.json"
    settings = make_settings(batch_max=500, crash_journal_path=journal)
    ids = await backlog(settings, 60, "crash")

    for run in ("whole", "alone"):  # the batch read whole, then a post at a time
        log = tmp_path / f"{run}.log"
        with faulty_worker(settings, CRASH_STEP, log) as proc:
            died_of_a_crash(proc.wait(timeout=120), log)
        # Posts before the poison may have been acked in a batch of their own (a fetch can
        # split the backlog), never the poison's batch.
        assert (await committed(settings) or 0) <= POISON_AT, "the poison's batch was not acked"
    [[topic, partition, first, last]] = orjson.loads(journal.read_bytes())["in_hand"][0]
    assert (topic, partition) == (settings.posts_topic, 0)
    assert first <= POISON_AT <= last, "it died with the poison in hand"

    outcomes = await outcomes_after_deaths(settings, CRASH_STEP, tmp_path / "after.log", 60)
    decisions = collections.defaultdict(set)
    for d in outcomes.decisions:
        decisions[d["post_id"]].add(d["decision_id"])
    assert set(decisions) == ids - {"crash-poison"}
    # At least once: a post delivered before a death and not yet committed is decided again
    # after it, as the same decision.
    assert all(len(once) == 1 for once in decisions.values())
    assert_poison_dead_lettered_unread(outcomes.dead_letters, POISON_AT)
    assert await committed(settings) == 60
    assert orjson.loads(journal.read_bytes())["suspects"] == [], "the offsets are settled"


async def test_what_one_pod_died_of_every_pod_knows(
    make_settings: Callable[..., Settings], tmp_path: Path, redis_url: str
) -> None:
    pod_a = make_settings(batch_max=500, crash_journal_path=tmp_path / "a.json")
    pod_b = pod_a.model_copy(update={"crash_journal_path": tmp_path / "b.json"})
    ids = await backlog(pod_a, 40, "shared")
    for run in ("whole", "alone"):  # pod A dies twice, as in the test above
        log = tmp_path / f"a-{run}.log"
        with faulty_worker(pod_a, CRASH_STEP, log) as proc:
            died_of_a_crash(proc.wait(timeout=120), log)

    # Pod A's container restarts, and tells the fleet what it died of before it takes
    # partitions. Here it is given none of the posts' (a topic of its own), so that pod B,
    # with a journal of its own that knows nothing, is the one to read them.
    aside = pod_a.model_copy(update={"posts_topic": f"{pod_a.posts_topic}-aside"})
    await create_topics(aside, replication_factor=1, partitions=1)
    shared = redis.Redis.from_url(redis_url)
    key = f"modfleet:crashes:{pod_a.consumer_group}"
    with faulty_worker(aside, CRASH_STEP, tmp_path / "a-restart.log") as proc:
        wait_healthy(aside, proc, tmp_path / "a-restart.log")
        for _ in range(300):  # a minute at most, for both deaths to be told
            if await shared.llen(key) >= 2:
                break
            await asyncio.sleep(0.2)
    await shared.aclose()

    with faulty_worker(pod_b, CRASH_STEP, tmp_path / "b.log") as proc:
        outcomes = await collect_outcomes(pod_b, 40, timeout_s=120)
        assert proc.poll() is None, "pod B never read the poison"
    assert {d["post_id"] for d in outcomes.decisions} == ids - {"shared-poison"}
    assert_poison_dead_lettered_unread(outcomes.dead_letters, 40 // 3)


async def test_a_post_that_hangs_the_worker_holding_the_gil_costs_itself_only(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(
        batch_max=500, crash_journal_path=tmp_path / "journal.json", loop_stall_exit_s=5.0
    )
    ids = await backlog(settings, 30, "hang")
    for run in ("whole", "alone"):
        log = tmp_path / f"{run}.log"
        with faulty_worker(settings, HANG_STEP, log) as proc:
            # Ended by its own watchdog: no orchestrator here to probe /health and kill it.
            assert proc.wait(timeout=120) == 1, log.read_text(errors="replace")[-3000:]
        assert "Timeout (0:00:05)!" in log.read_text(errors="replace"), "with every stack"
    outcomes = await outcomes_after_deaths(settings, HANG_STEP, tmp_path / "after.log", 30)
    assert {d["post_id"] for d in outcomes.decisions} == ids - {"hang-poison"}
    assert_poison_dead_lettered_unread(outcomes.dead_letters, 30 // 3)


async def test_a_post_whose_outcome_kills_the_worker_costs_two_restarts_and_itself_only(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # Every post is read; the worker dies delivering the poison's decision. Read alone, the
    # batch was delivered whole after the last post was read, so no post was blamed and each
    # restart read the batch alone again and died again: a crash loop on one partition.
    settings = make_settings(batch_max=500, crash_journal_path=tmp_path / "journal.json")
    ids = await backlog(settings, 30, "outcome")
    for run in ("whole", "alone"):
        log = tmp_path / f"{run}.log"
        with faulty_worker(settings, CRASH_DELIVERING_STEP, log) as proc:
            died_of_a_crash(proc.wait(timeout=120), log)
    step, after = CRASH_DELIVERING_STEP, tmp_path / "after.log"
    outcomes = await outcomes_after_deaths(settings, step, after, 30)
    assert {d["post_id"] for d in outcomes.decisions} == ids - {"outcome-poison"}
    assert_poison_dead_lettered_unread(outcomes.dead_letters, 30 // 3)
    assert await committed(settings) == 30
