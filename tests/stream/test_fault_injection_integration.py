"""A fault at each step of batch handling, on a real broker and a real worker process.

Faults a record can cause (reading it, deciding it, building its message) cost that record: it
is dead-lettered ``internal_error``, its neighbours are decided. Faults around the batch
(delivery half done, counting, observing, acking) end the worker without an ack: nothing of the
batch is committed, and a worker that takes the partition over decides every post.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path

import pytest
from fault_runs import batch, committed, faulty_worker
from faults import BATCH_STEPS, RECORD_STEPS

from modfleet.contracts.admin import create_topics
from modfleet.replay import collect_outcomes, produce_posts
from modfleet.settings import Settings
from modfleet.stack.dev import wait_healthy, worker_process

pytestmark = pytest.mark.integration

EXIT_UNACKED = 75


@pytest.mark.parametrize("step", RECORD_STEPS)
async def test_a_fault_one_record_causes_costs_that_record_only(
    make_settings: Callable[..., Settings], tmp_path: Path, step: str
) -> None:
    settings = make_settings()
    await create_topics(settings, replication_factor=1, partitions=1)
    values, ids = batch(60, f"rec-{step}")
    with faulty_worker(settings, step, tmp_path / "worker.log") as proc:
        wait_healthy(settings, proc, tmp_path / "worker.log")
        await produce_posts(settings, values)
        outcomes = await collect_outcomes(settings, len(values), timeout_s=90)
        assert proc.poll() is None, "the worker keeps running"
    decided = collections.Counter(d["post_id"] for d in outcomes.decisions)
    [letter] = outcomes.dead_letters
    assert letter["post_id"] in (None, f"rec-{step}-poison")
    assert letter["reason"]["code"] == "internal_error"
    assert letter["original_omitted"] is True  # modfleet's failure: a reference, not the post
    assert set(decided) == ids - {f"rec-{step}-poison"}
    assert set(decided.values()) == {1}


@pytest.mark.parametrize("step", BATCH_STEPS)
async def test_a_fault_around_the_batch_ends_in_redelivery_with_nothing_acked(
    make_settings: Callable[..., Settings], tmp_path: Path, step: str
) -> None:
    settings = make_settings(batch_max=500)
    await create_topics(settings, replication_factor=1, partitions=1)
    values, ids = batch(40, f"batch-{step}")
    await produce_posts(settings, values)  # all in the first batch the worker takes
    with faulty_worker(settings, step, tmp_path / "faulty.log") as proc:
        code = proc.wait(timeout=90)
    assert code == EXIT_UNACKED, (tmp_path / "faulty.log").read_text()[-3000:]
    assert await committed(settings) in (None, 0), "nothing of the failed batch was acked"
    with worker_process(settings, tmp_path / "worker.log"):
        outcomes = await collect_outcomes(settings, len(values), timeout_s=90)
    decided = {d["post_id"] for d in outcomes.decisions}
    assert decided == ids, "the batch was redelivered and every post decided"
    assert outcomes.dead_letters == []
