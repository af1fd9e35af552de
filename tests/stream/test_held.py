"""The byte bound on posts in hand: a producer's post sizes must not choose a worker's memory."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from mode.utils.queues import FlowControlEvent

from modfleet.settings import Settings
from modfleet.stream.app import _record
from modfleet.stream.faust_app import faust_app
from modfleet.stream.held import HEADER_BYTES, BufferQueue, HeldGate, HeldPosts, post_bytes


def message(value: bytes | None, key: bytes | None = None, headers: Any = None) -> Any:
    return SimpleNamespace(value=value, key=key, headers=headers)


def test_a_post_counts_its_key_and_headers_not_only_its_value() -> None:
    # An attacker can put the bytes where a value-only count would not look.
    assert post_bytes(message(b"x" * 10)) == 10
    assert post_bytes(message(b"x", key=b"k" * 1000)) == 1001
    headers = [("h", b"v" * 5000), ("n", None)]
    assert post_bytes(message(None, headers=headers)) == 5002 + 2 * HEADER_BYTES
    assert post_bytes(message(b"", headers={"h": b"v" * 7})) == 8 + HEADER_BYTES


def test_a_post_of_many_empty_headers_counts_what_the_worker_holds_for_them() -> None:
    # 400,000 empty headers are 800 kB on the wire (under 1 kB compressed) and tens of MB once
    # parsed: counted by their bytes alone, thousands of such posts would fit either bound.
    count = 50_000
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 64 * 1024 * 1024)
    builder.append(0, 1_700_000_000_000, None, b"{}", [(str(i % 7), None) for i in range(count)])
    wire = bytes(builder.build())
    gc.collect()
    tracemalloc.start()
    try:
        [parsed] = list(DefaultRecordBatch(bytearray(wire)))  # as aiokafka's fetcher does
        event = SimpleNamespace(
            message=SimpleNamespace(
                topic="posts",
                partition=0,
                offset=0,
                timestamp=1.0,
                key=None,
                value=parsed.value,
                headers=parsed.headers,
                checksum=None,  # aiokafka's v2 records carry none
            )
        )
        record = _record(cast(Any, event))  # as the agent does
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(record.headers) == count
    assert post_bytes(event.message) >= held


async def still_waiting(waiting: Awaitable[Any] | None, why: str) -> asyncio.Future[Any]:
    """``waiting`` under way, and not done after a while."""
    assert waiting is not None, why
    task = asyncio.ensure_future(waiting)
    await asyncio.sleep(0.01)
    assert not task.done(), why
    return task


async def test_posts_that_fit_are_admitted_at_once() -> None:
    held = HeldPosts(100)
    assert held.admit(60) is None
    assert held.admit(40) is None
    assert held.held == 100


async def test_a_post_past_the_bound_waits_until_a_batch_is_released() -> None:
    held = HeldPosts(100)
    held.admit(80)
    task = await still_waiting(held.admit(30), "admitted past the bound")
    held.release(50)  # 30 held: 30 more fit
    await asyncio.wait_for(task, 1)
    assert held.held == 60


async def test_a_post_larger_than_the_bound_is_taken_alone_rather_than_never() -> None:
    held = HeldPosts(100)
    held.admit(10)
    task = await still_waiting(held.admit(500), "taken beside another post")
    held.release(10)
    await asyncio.wait_for(task, 1)
    assert held.held == 500
    second = held.admit(500)
    assert second is not None, "a second one waits for the first"
    asyncio.ensure_future(second).cancel()


async def test_several_waiting_posts_are_admitted_as_room_comes() -> None:
    held = HeldPosts(100)
    held.admit(100)
    tasks = [asyncio.ensure_future(w) for w in (held.admit(50), held.admit(50), held.admit(50))]
    await asyncio.sleep(0.01)
    held.release(100)
    await asyncio.sleep(0.01)
    assert sum(t.done() for t in tasks) == 2
    assert held.held == 100
    held.release(50)
    await asyncio.wait_for(asyncio.gather(*tasks), 1)


async def test_the_gate_passes_the_value_on_and_releases_what_it_admitted() -> None:
    stream = SimpleNamespace(current_event=SimpleNamespace(message=message(b"abc", b"k")))
    held = HeldPosts(64 * 1024)
    gate = HeldGate(held, stream)
    assert gate(b"abc") == b"abc"
    assert held.held == 4
    assert gate.release([stream.current_event]) == 4
    assert held.held == 0


async def test_the_gate_holds_a_post_that_does_not_fit() -> None:
    big = SimpleNamespace(message=message(b"x" * 90))
    stream = SimpleNamespace(current_event=big)
    held = HeldPosts(100)
    gate = HeldGate(held, stream)
    assert gate(b"x" * 90) == b"x" * 90
    pending = gate(b"x" * 90)
    assert asyncio.iscoroutine(pending)
    task = await still_waiting(pending, "the gate let a post past the bound through")
    gate.release([big])
    assert await asyncio.wait_for(task, 1) == b"x" * 90


@pytest.mark.parametrize("limit", [1, 10**6])
def test_releasing_everything_leaves_nothing_held(limit: int) -> None:
    held = HeldPosts(limit)
    held.admit(5)
    held.release(5)
    assert held.held == 0
    assert held.admit(10**7) is None, "nothing held: even a post past the bound goes in"


def event(size: int) -> Any:
    return SimpleNamespace(message=message(b"x" * size))


def buffer(max_bytes: int, maxsize: int) -> BufferQueue:
    flow = FlowControlEvent()
    flow.resume()  # as a running app's is
    return BufferQueue(max_bytes, maxsize=maxsize, flow_control=flow)


async def test_faust_buffer_of_large_posts_is_full_at_its_bytes_not_its_count() -> None:
    queue = buffer(max_bytes=100, maxsize=4096)
    for _ in range(3):
        queue.force_put_nowait(event(30))
    assert not queue.full()
    queue.force_put_nowait(event(30))
    assert queue.full(), "120 bytes held in a 100-byte buffer"
    queue.get_nowait()
    assert not queue.full()
    assert queue.bytes == 90


async def test_faust_buffer_of_small_posts_is_full_at_its_count() -> None:
    queue = buffer(max_bytes=10**9, maxsize=3)
    for _ in range(3):
        queue.force_put_nowait(event(10))
    assert queue.full()
    assert queue.qsize() == 3


async def test_faust_stops_fetching_at_80_percent_of_the_bytes() -> None:
    queue = buffer(max_bytes=1000, maxsize=4096)
    high: list[str] = []
    for _ in range(8):
        assert not queue.put_nowait_enhanced(
            event(100), on_pressure_high=lambda: high.append("x"), on_pressure_drop=lambda: None
        )
    assert queue.put_nowait_enhanced(
        event(100), on_pressure_high=lambda: high.append("x"), on_pressure_drop=lambda: None
    ), "800 of 1,000 bytes: past faust's high-pressure mark"
    assert high == ["x"]


async def test_a_full_buffer_takes_the_next_post_once_one_is_read() -> None:
    queue = buffer(max_bytes=100, maxsize=4096)
    queue.force_put_nowait(event(200))  # one post past the whole bound still goes in alone
    put = await still_waiting(queue.put(event(10)), "put into a full buffer")
    await queue.get()
    await asyncio.wait_for(put, 1)
    assert queue.bytes == 10


def test_clearing_the_buffer_clears_its_bytes() -> None:
    queue = buffer(max_bytes=100, maxsize=10)
    queue.force_put_nowait(event(60))
    queue.clear()  # faust clears it on a rebalance
    assert queue.bytes == 0
    assert not queue.full()


async def test_the_worker_apps_topic_buffers_are_bounded_in_bytes(
    make_settings: Callable[..., Settings],
) -> None:
    # faust makes each channel's (an agent's topic's) buffer through the app's FlowControlQueue.
    app = faust_app(make_settings(stream_buffer_bytes=64 * 1024))
    channel = app.topic("posts", key_type=bytes, value_type=bytes).clone(is_iterator=True)
    queue = channel.queue
    assert isinstance(queue, BufferQueue)
    assert queue.max_bytes == 64 * 1024
    assert queue.maxsize == app.conf.stream_buffer_maxsize
