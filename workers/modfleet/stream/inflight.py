"""Several micro-batches in flight, delivered in the order they were taken.

With one batch at a time the worker sits idle while the broker acknowledges a batch's outputs,
and a model server sees a barrier after every batch. Up to ``batches_in_flight`` batches are
worked on at once, but each delivers its outcomes only after the batch taken before it has
delivered (its ``Turn``): a post's records are decided in offset order whatever order the
batches finish their work in, so the next batch's cache lookups and inference overlap the
previous one's acknowledgements without reordering what enforcement systems read. Each batch
acks its own records once delivered; faust commits a partition's offsets only up to the first
record not yet acked. A batch that fails ends the worker unacked, and the batches after it do
not deliver.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from modfleet.stream.deliver import exit_unacked

log = logging.getLogger(__name__)


class EarlierBatchFailed(RuntimeError):
    """The batch taken before this one ended without delivering: this one must not deliver."""


class Turn:
    """One batch's place in the delivery order."""

    __slots__ = ("_before", "_mine")

    def __init__(self, before: asyncio.Future[bool] | None, mine: asyncio.Future[bool]) -> None:
        self._before = before
        self._mine = mine

    async def wait(self) -> None:
        """Return once every batch taken before this one has delivered."""
        if self._before is not None and not await asyncio.shield(self._before):
            raise EarlierBatchFailed("the batch before this one did not deliver its outcomes")

    def delivered(self) -> None:
        """This batch's outcomes are on the broker: the next batch may deliver its own."""
        if not self._mine.done():
            self._mine.set_result(True)

    def abandon(self) -> None:
        if not self._mine.done():
            self._mine.set_result(False)


Work = Callable[[Turn], Coroutine[Any, Any, None]]


class InFlight:
    def __init__(self, limit: int) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._tasks: set[asyncio.Task[None]] = set()
        self._last: asyncio.Future[bool] | None = None

    async def start(self, work: Work) -> None:
        """Run ``work`` once a slot is free, with its turn to deliver after the batches started
        before it; returns as soon as it has started."""
        await self._slots.acquire()
        mine: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        turn = Turn(self._last, mine)
        self._last = mine
        task = asyncio.ensure_future(_in_turn(work, turn))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    async def alone(self, work: Work) -> None:
        """Run ``work`` with nothing else in flight: after the batches in hand have finished,
        and to its end before the next starts."""
        await self._idle()
        await self.start(work)
        await self._idle()

    async def _idle(self) -> None:
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def drain(self, grace_s: float) -> None:
        """On shutdown: let the batches in hand finish (and ack) before faust commits."""
        if not self._tasks:
            return
        log.info("stopping: finishing %d batches in hand before they are acked", len(self._tasks))
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
        if pending:
            exit_unacked("the batches in hand did not finish within shutdown_grace_s")

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if task.cancelled():
            exit_unacked("a batch was cancelled before its outcomes were delivered")
        error = task.exception()
        if error is not None:
            log.critical("handling a batch failed", exc_info=error)
            exit_unacked(f"handling a batch failed ({type(error).__name__})")


async def _in_turn(work: Work, turn: Turn) -> None:
    finished = False
    try:
        await work(turn)
        finished = True
    finally:
        # A batch that ends without saying it delivered (cancelled, failed) stops the ones after
        # it from delivering; one that finished in full releases its turn if it has not yet.
        if finished:
            turn.delivered()
        else:
            turn.abandon()
