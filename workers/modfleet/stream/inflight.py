"""Several micro-batches in flight, so that a model server's continuous batching always has work.

With one batch at a time the server sees a barrier after every batch, and one slow answer
stalls the whole batch behind it. Up to ``batches_in_flight`` batches run at once; each acks its
own records once its outcomes are delivered, and faust commits a partition's offsets only up to
the first record not yet acked, so commits stay in offset order whatever order batches finish in.
A batch that fails ends the worker unacked, as with one batch at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from modfleet.stream.deliver import exit_unacked

log = logging.getLogger(__name__)


class InFlight:
    def __init__(self, limit: int) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` once a slot is free; returns as soon as it has started."""
        await self._slots.acquire()
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

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
