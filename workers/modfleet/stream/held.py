"""Bounds, in bytes, on the posts a worker holds: in faust's buffer, and in the batches in hand.

faust counts what it buffers in events (4,096 by default), and a micro-batch is cut at
``batch_max`` events, so a worker's memory followed the size of the posts a producer chose: a
backlog of 1 MB posts filled the buffer with thousands of them and each batch in hand with
hundreds, each held as its bytes and again as its decoded text (docs/benchmarks.md). Two bounds
make memory follow settings instead, while small posts see faust's own counts:

- ``BufferQueue``, faust's stream buffer, also counts its posts' bytes: past
  ``stream_buffer_bytes`` it is full (faust stops fetching) as it would be at its event count;
- ``HeldGate``, a stream processor placed before the batch's buffer, admits a post only while
  the posts taken and not yet acked, its own included, fit ``held_post_bytes``; past it the
  stream waits for a batch to be acked, and the batch window cuts the batch in hand short
  (``stream/take.py``: a batch never waits for a backlog behind a shut gate).

A post larger than a whole bound still goes through alone, when nothing else is held, so that it
is decided (or dead-lettered) rather than stalling its partitions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any

from faust.types import EventT, Message
from mode.utils.queues import ThrowableQueue

# What one header costs a worker beyond its bytes: aiokafka's tuple and list slot and the
# worker's own copy (129 bytes measured for an empty one). Headers compress to next to nothing,
# so a record of 400,000 empty ones is under 1 kB on the wire and about 50 MB once parsed.
HEADER_BYTES = 160


def post_bytes(message: Message) -> int:
    """What a record costs to hold: its value, key and headers, each chosen by its producer."""
    size = len(message.value or b"") + len(message.key or b"")
    headers = message.headers
    if headers:
        pairs: Iterable[Any] = headers.items() if hasattr(headers, "items") else headers
        size += sum(HEADER_BYTES + len(k) + len(v or b"") for k, v in pairs)
    return size


def _item_bytes(item: object) -> int:
    message = getattr(item, "message", None)  # faust's buffers hold events; other queues, not
    return 0 if message is None else post_bytes(message)


class BufferQueue(ThrowableQueue[Any]):
    """faust's queue, full at ``max_bytes`` of posts as well as at ``maxsize`` of them.

    faust reads only ``qsize()`` against ``maxsize`` (``full()``, and the pressure marks at which
    it stops and resumes fetching a partition): the bytes are reported as the share of
    ``maxsize`` they are of ``max_bytes``, so each mark is reached by whichever comes first."""

    def __init__(self, max_bytes: int, *args: Any, **kwargs: Any) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        super().__init__(*args, **kwargs)

    def qsize(self) -> int:
        count = super().qsize()
        if not self.bytes or self.maxsize <= 0:
            return count
        return max(count, -(-self.bytes * self.maxsize // self.max_bytes))

    # asyncio.Queue's hooks for what a subclass keeps: every put and get goes through them.
    def _put(self, item: Any) -> None:
        self.bytes += _item_bytes(item)
        super()._put(item)

    def _get(self) -> Any:
        item = super()._get()
        self.bytes -= _item_bytes(item)
        return item

    def clear(self) -> None:
        super().clear()
        self.bytes = 0


class HeldPosts:
    """Counts the bytes of the posts admitted and not yet released; admits while they fit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._room = asyncio.Event()
        self.waiting = False  # a post waits at the door for a batch to be acked

    def admit(self, size: int) -> Awaitable[None] | None:
        """Count a post in, or return what to await until it fits (then it is counted in).

        The common case returns at once without a coroutine: this runs for every post."""
        if not self.held or self.held + size <= self.limit:
            self.held += size
            return None
        return self._wait_for_room(size)

    async def _wait_for_room(self, size: int) -> None:
        self.waiting = True
        try:
            while self.held and self.held + size > self.limit:
                self._room.clear()
                await self._room.wait()
        finally:
            self.waiting = False
        self.held += size

    def release(self, size: int) -> None:
        self.held -= size
        self._room.set()


class HeldGate:
    """The stream processor that holds each post at the door until it fits the bound."""

    def __init__(self, held: HeldPosts, current: Any) -> None:
        self._held = held
        self._current = current  # the stream: its current_event is the post being processed

    def __call__(self, value: bytes) -> bytes | Awaitable[bytes]:
        event: EventT[bytes] = self._current.current_event
        waiting = self._held.admit(post_bytes(event.message))
        if waiting is None:
            return value
        return _after(waiting, value)

    @property
    def shut(self) -> bool:
        """A post waits here: the batch being taken cannot grow until one is acked."""
        return self._held.waiting

    def release(self, events: Iterable[EventT[bytes]]) -> int:
        """The events' posts are acked: their bytes no longer count. Returns how many."""
        size = sum(post_bytes(e.message) for e in events)
        self._held.release(size)
        return size


async def _after(waiting: Awaitable[None], value: bytes) -> bytes:
    await waiting
    return value
