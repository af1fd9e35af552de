"""Several batches in flight: the bound holds, batches deliver in the order they were taken,
shutdown waits for them, a failure is fatal and stops the batches behind it from delivering."""

from __future__ import annotations

import asyncio

import pytest

from modfleet.stream import inflight
from modfleet.stream.inflight import EarlierBatchFailed, InFlight, Turn, Work


def batch(n: int, work_s: float, log: list[str]) -> Work:
    """A batch that works for ``work_s`` seconds, then delivers in its turn."""

    async def run(turn: Turn) -> None:
        log.append(f"work {n}")
        await asyncio.sleep(work_s)
        await turn.wait()
        log.append(f"deliver {n}")
        await asyncio.sleep(0.01)  # the broker's acknowledgement
        turn.delivered()

    return run


async def test_no_more_than_the_limit_run_at_once_and_drain_waits_for_all() -> None:
    running, most, finished = 0, 0, []

    def counted(n: int) -> Work:
        async def run(turn: Turn) -> None:
            nonlocal running, most
            running += 1
            most = max(most, running)
            await asyncio.sleep(0.05)
            running -= 1
            finished.append(n)

        return run

    flight = InFlight(2)
    for n in range(5):
        await flight.start(counted(n))
    await flight.drain(grace_s=5)
    assert most == 2
    assert sorted(finished) == [0, 1, 2, 3, 4]


async def test_a_batch_that_finishes_its_work_first_still_delivers_after_the_one_before() -> None:
    log: list[str] = []
    flight = InFlight(3)
    for n, work_s in enumerate([0.3, 0.0, 0.1]):
        await flight.start(batch(n, work_s, log))
    await flight.drain(grace_s=5)
    assert [e for e in log if e.startswith("deliver")] == ["deliver 0", "deliver 1", "deliver 2"]
    # ... and the later batches did their work while the first was still at it.
    assert log[:3] == ["work 0", "work 1", "work 2"]


async def test_a_batch_run_alone_starts_after_those_in_hand_and_ends_before_the_next() -> None:
    log: list[str] = []
    flight = InFlight(3)
    await flight.start(batch(0, 0.2, log))
    await flight.start(batch(1, 0.1, log))
    await flight.alone(batch(2, 0.05, log))
    await flight.start(batch(3, 0.0, log))
    await flight.drain(grace_s=5)
    assert log == [
        "work 0",
        "work 1",
        "deliver 0",
        "deliver 1",
        "work 2",  # nothing else in flight while it works
        "deliver 2",
        "work 3",
        "deliver 3",
    ]


async def test_a_failed_batch_ends_the_worker_unacked_and_the_next_does_not_deliver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exits: list[str] = []
    monkeypatch.setattr(inflight, "exit_unacked", exits.append)
    log: list[str] = []

    async def broken(turn: Turn) -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("delivery broke")

    flight = InFlight(2)
    await flight.start(broken)
    await flight.start(batch(1, 0.0, log))
    await flight.drain(grace_s=5)
    assert log == ["work 1"]
    assert exits == [
        "handling a batch failed (RuntimeError)",
        f"handling a batch failed ({EarlierBatchFailed.__name__})",
    ]


async def test_a_batch_that_ends_without_saying_it_delivered_releases_its_turn() -> None:
    log: list[str] = []

    async def no_output(turn: Turn) -> None:
        log.append("work 0")

    flight = InFlight(2)
    await flight.start(no_output)
    await flight.start(batch(1, 0.0, log))
    await flight.drain(grace_s=5)
    assert log == ["work 0", "work 1", "deliver 1"]


async def test_batches_that_outlive_the_grace_end_the_worker_unacked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exits: list[str] = []
    monkeypatch.setattr(inflight, "exit_unacked", exits.append)
    flight = InFlight(1)
    release = asyncio.Event()

    async def stuck(turn: Turn) -> None:
        await release.wait()

    await flight.start(stuck)
    await flight.drain(grace_s=0.05)
    assert exits == ["the batches in hand did not finish within shutdown_grace_s"]
    release.set()  # let it end while the exit is still patched
    await flight.drain(grace_s=5)
