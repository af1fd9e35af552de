"""Several batches in flight: the bound holds, shutdown waits for them, a failure is fatal."""

from __future__ import annotations

import asyncio

import pytest

from modfleet.stream import inflight
from modfleet.stream.inflight import InFlight


async def test_no_more_than_the_limit_run_at_once_and_drain_waits_for_all() -> None:
    running, most, finished = 0, 0, []

    async def batch(n: int) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.05)
        running -= 1
        finished.append(n)

    flight = InFlight(2)
    for n in range(5):
        await flight.start(batch(n))
    await flight.drain(grace_s=5)
    assert most == 2
    assert sorted(finished) == [0, 1, 2, 3, 4]


async def test_a_failed_batch_ends_the_worker_unacked(monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[str] = []
    monkeypatch.setattr(inflight, "exit_unacked", exits.append)

    async def broken() -> None:
        raise RuntimeError("delivery broke")

    flight = InFlight(2)
    await flight.start(broken())
    await flight.drain(grace_s=5)
    assert exits == ["handling a batch failed (RuntimeError)"]


async def test_batches_that_outlive_the_grace_end_the_worker_unacked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exits: list[str] = []
    monkeypatch.setattr(inflight, "exit_unacked", exits.append)
    flight = InFlight(1)
    release = asyncio.Event()
    await flight.start(release.wait())
    await flight.drain(grace_s=0.05)
    assert exits == ["the batches in hand did not finish within shutdown_grace_s"]
    release.set()  # let it end while the exit is still patched
    await flight.drain(grace_s=5)
