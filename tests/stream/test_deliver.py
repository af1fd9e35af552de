"""Delivery's sorting, on a stand-in producer: record batches first, and a batch the broker
does not take goes again message by message, so that a refused record costs that record alone.
(That outputs land where their keys put them, on a real broker: test_partitions_integration.)"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError

from modfleet.emit.dead_letter import minimal_dead_letter
from modfleet.emit.messages import Outbound
from modfleet.ingest.decode import Record
from modfleet.stream.deliver import deliver

TOO_BIG = b"x" * 100


def done(error: BaseException | None = None) -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
    return future


class Builder:
    def __init__(self) -> None:
        self.values: list[bytes] = []

    def append(self, *, key: Any, value: bytes, timestamp: Any, headers: Any) -> object | None:
        if len(self.values) == 4:  # a small batch size, so that a group needs several
            return None
        self.values.append(value)
        return object()


class Cluster:
    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1, 2}


class Broker:
    """Takes what fits: a batch holding an oversized record is refused whole."""

    def __init__(self) -> None:
        self.client = self
        self.cluster = Cluster()
        self.stored: list[bytes] = []

    def _ensure_producer(self) -> Broker:
        return self

    def create_batch(self) -> Builder:
        return Builder()

    async def send_batch(self, batch: Builder, topic: str, *, partition: int) -> Any:
        if TOO_BIG in batch.values:
            return done(MessageSizeTooLargeError())
        self.stored += batch.values
        return done()

    async def send(self, topic: str, key: Any, value: bytes, *args: Any) -> Any:
        if value == TOO_BIG:
            return done(MessageSizeTooLargeError())
        self.stored.append(value)
        return done()


class App:
    def __init__(self) -> None:
        self.producer = Broker()


def message(i: int, value: bytes | None = None) -> Outbound:
    source = Record("posts", i % 3, i, None, b"p-%d" % i, b"{}")
    return Outbound("decisions", b"p-%d" % i, value or b"v-%d" % i, (), "decision", source)


async def test_a_refused_record_costs_itself_and_its_batch_mates_are_delivered_once() -> None:
    app = App()
    outbound = [message(i) for i in range(30)]
    outbound[7] = message(7, TOO_BIG)

    def stand_in(m: Outbound) -> Outbound:
        assert m.source is not None
        return minimal_dead_letter(m.source, "undeliverable", "dead-letter")

    delivered = await deliver(app, outbound, stand_in, attempts=2, backoff_s=0.0)  # type: ignore[arg-type]

    stored = app.producer.stored
    assert sorted(stored[:-1]) == sorted(m.value for m in outbound if m.value != TOO_BIG)
    assert len(set(stored)) == len(stored), "nothing sent twice"
    assert [m.kind for m in delivered].count("dead_letter") == 1
    assert b'"undeliverable"' in stored[-1]
