"""Micro-batches from the agent's stream: short waits when posts trickle in, full batches
while a lag drains.

faust's ``noack_take(max, within)`` yields whatever its buffer holds when ``within`` runs out.
Under a backlog that is not a full batch: the buffer fills only while the event loop is free,
and the loop spends most of ``within`` working on the batches in flight, so batches came out at
about a third of ``batch_max`` (the worker's rate times ``within``), each paying a batch's
fixed costs (the model's call, two Redis round trips, a record batch a partition) over fewer
posts. Here, when ``within`` runs out and the records on the broker behind the batch's would
fill it, the batch waits for them, up to ``backlog_within`` more. When posts trickle in, few are
behind at that moment, and a batch leaves as it does with faust's.

Semantics are otherwise faust's: events are not acked here (the agent acks each batch once its
outcomes are delivered), no batch holds more than ``max_`` events, and nothing is added to the
buffer while a batch is being handed over.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from faust.types import EventT

from modfleet.errors import FatalError

# What this module uses of faust's Stream beyond its typed surface, checked at the start.
_STREAM_PARTS = (
    "add_processor",
    "_processors",
    "_enable_passive",
    "current_event",
    "enable_acks",
    "wait_for_stopped",
    "should_stop",
    "channel",
)


def behind(consumer: Any) -> Callable[[Sequence[EventT[bytes]]], int]:
    """How many records are on the broker past the last of ``events`` in each of their
    partitions, by the high watermarks the consumer's latest fetches reported: a lower bound on
    the backlog (partitions with none of these events in them are not counted)."""

    def count(events: Sequence[EventT[bytes]]) -> int:
        last: dict[Any, int] = {}
        for event in events:
            message = event.message
            last[message.tp] = message.offset  # in offset order within a partition
        total = 0
        for tp, offset in last.items():
            high = consumer.highwater(tp)
            if high:  # None before a partition's first fetch has answered
                total += max(0, high - offset - 1)
        return total

    return count


def check_stream(stream: Any) -> None:
    """FatalError when faust's Stream lacks what :func:`batches` relies on (a faust upgrade
    that moved it): found at the start, not as a stalled agent."""
    missing = [part for part in _STREAM_PARTS if not hasattr(stream, part)]
    if missing:
        raise FatalError(
            f"this faust's Stream has no {', '.join(missing)}: modfleet's batching needs them"
        )


async def batches(
    stream: Any,
    max_: int,
    within: float,
    backlog_within: float,
    backlog: Callable[[Sequence[EventT[bytes]]], int],
) -> AsyncIterator[list[EventT[bytes]]]:
    """Lists of at most ``max_`` events of ``stream``, unacked, in the order read;
    ``backlog(events)`` says how many records wait on the broker behind them."""
    check_stream(stream)
    buffer: list[EventT[bytes]] = []
    full = asyncio.Event()
    room = asyncio.Event()  # cleared while a full batch waits and while one is handed over
    room.set()

    def put(value: bytes) -> bytes:
        event = stream.current_event  # the event whose value this is
        if event is None:
            raise RuntimeError("the stream's current event is None while taking a batch")
        buffer.append(event)
        if len(buffer) >= max_:
            full.set()
            room.clear()
        return value

    def add(value: bytes) -> bytes | Awaitable[bytes]:
        # Plain, not a coroutine, whenever there is room: this runs for every post.
        return put(value) if room.is_set() else _after(value)

    async def _after(value: bytes) -> bytes:
        await stream.wait_for_stopped(room)
        return put(value) if room.is_set() else value  # else stopping: left unacked

    acks = stream.enable_acks
    stream.enable_acks = False  # the agent acks each batch once it is delivered
    stream.add_processor(add)
    stream._enable_passive(aiter(stream.channel))
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(full, timeout=within)
            if (
                backlog_within
                and buffer
                and not full.is_set()
                and backlog(buffer) >= max_ - len(buffer)
            ):
                # A backlog: the records behind these would fill the batch.
                await stream.wait_for_stopped(full, timeout=backlog_within)
            if not buffer:
                continue
            room.clear()
            taken = buffer[:]
            buffer.clear()
            try:
                yield taken
            finally:
                full.clear()
                room.set()
    finally:
        stream.enable_acks = acks
        stream._processors.remove(add)
