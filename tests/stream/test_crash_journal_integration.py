"""A post that kills the worker's process whenever it is read (a native crash, as a parser's bug
would cause), on a real broker with a real worker process, Redis and model.

Without a journal every restart dies on it again, and the partition is stuck. With one, the
restart after the first death reads the batch a post at a time and dies on the poison alone;
the next dead-letters it unread and decides every other post, exactly once.
"""

from __future__ import annotations

import collections
import signal
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from fault_runs import batch, committed, faulty_worker
from faults import CRASH_STEP

from modfleet.contracts.admin import create_topics
from modfleet.replay import collect_outcomes, produce_posts
from modfleet.settings import Settings

pytestmark = pytest.mark.integration


def died_of_a_crash(code: int, log: Path) -> None:
    assert code == -signal.SIGSEGV, log.read_text(errors="replace")[-3000:]


async def test_a_post_that_kills_the_worker_costs_two_restarts_and_itself_only(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    journal = tmp_path / "journal.json"
    settings = make_settings(batch_max=500, crash_journal_path=journal)
    await create_topics(settings, replication_factor=1, partitions=1)
    values, ids = batch(60, "crash")
    await produce_posts(settings, values)  # all in the first batch the worker takes

    for run in ("whole", "alone"):  # the batch read whole, then a post at a time
        log = tmp_path / f"{run}.log"
        with faulty_worker(settings, CRASH_STEP, log) as proc:
            died_of_a_crash(proc.wait(timeout=120), log)
        assert await committed(settings) in (None, 0), "nothing of the batch was acked"
    left = orjson.loads(journal.read_bytes())
    assert [row[:3] for row in left["in_hand"][0]] == [[settings.posts_topic, 0, 0]]

    with faulty_worker(settings, CRASH_STEP, tmp_path / "after.log") as proc:
        outcomes = await collect_outcomes(settings, len(values), timeout_s=120)
        assert proc.poll() is None, "the worker keeps running"
    decided = collections.Counter(d["post_id"] for d in outcomes.decisions)
    assert set(decided) == ids - {"crash-poison"}
    assert set(decided.values()) == {1}, "each post decided once"
    [letter] = outcomes.dead_letters
    assert letter["reason"]["code"] == "internal_error"
    assert "died while it read this post alone" in letter["reason"]["message"]
    assert letter["post_id"] is None, "the poison was not read again"
    assert letter["source"]["offset"] == 20
    assert await committed(settings) == len(values)
    assert orjson.loads(journal.read_bytes())["suspects"] == [], "the offsets are settled"
