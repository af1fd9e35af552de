"""Kafka clients of the benchmark: fill the posts topic, read outputs back, stage (a).

Rates are taken from the output records' own timestamps (CreateTime, stamped by the producer
that wrote them), not from when the benchmark read them, so that reading the outputs costs the
measured stage nothing: the outputs are read after the stage has finished.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from modfleet.kafka import client_options
from modfleet.replay import post_key
from modfleet.settings import Settings


@dataclass
class Output:
    """Records read back from one stage's output topics."""

    timestamps_ms: list[int] = field(default_factory=list)  # of the counted topic only
    values: list[bytes] = field(default_factory=list)
    other: int = 0  # records on the other topics (escalations, dead-letters)

    def rate(self) -> float:
        """Records per second from first to last output (0 when there is no span)."""
        if len(self.timestamps_ms) < 2:
            return 0.0
        span_s = (max(self.timestamps_ms) - min(self.timestamps_ms)) / 1000
        return (len(self.timestamps_ms) - 1) / span_s if span_s > 0 else 0.0

    @property
    def span_s(self) -> float:
        if not self.timestamps_ms:
            return 0.0
        return (max(self.timestamps_ms) - min(self.timestamps_ms)) / 1000


def producer(settings: Settings, linger_ms: int = 5) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **client_options(settings), linger_ms=linger_ms, acks="all", max_batch_size=256 * 1024
    )


async def produce(settings: Settings, topic: str, values: Sequence[bytes]) -> None:
    """Send every value keyed by its post id, and wait until the broker has them all."""
    client = producer(settings)
    await client.start()
    try:
        futures = [await client.send(topic, v, key=post_key(v)) for v in values]
        await asyncio.gather(*futures)
    finally:
        await client.stop()


async def delete_topics(settings: Settings, prefix: str) -> list[str]:
    """Delete every topic whose name starts with ``prefix``; the names deleted."""
    admin = AIOKafkaAdminClient(**client_options(settings), client_id="modfleet-bench")
    await admin.start()
    try:
        names = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()


async def read_back(
    settings: Settings,
    counted: str,
    expected: int,
    timeout_s: float,
    others: Sequence[str] = (),
    keep_values: bool = False,
) -> Output:
    """Read ``counted`` (and ``others``) from the start until ``expected`` records of it are in."""
    consumer = AIOKafkaConsumer(
        counted, *others, **client_options(settings), auto_offset_reset="earliest"
    )
    await consumer.start()
    out = Output()
    deadline = time.monotonic() + timeout_s
    try:
        while len(out.timestamps_ms) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
            for tp, records in batches.items():
                if tp.topic != counted:
                    out.other += len(records)
                    continue
                out.timestamps_ms.extend(r.timestamp for r in records)
                if keep_values:
                    out.values.extend(r.value for r in records if r.value is not None)
    finally:
        await consumer.stop()
    return out


async def aiokafka_passthrough(
    settings: Settings, source: str, sink: str, expected: int, batch_max: int, timeout_s: float
) -> None:
    """Stage (a): consume a batch, send every record on, wait for the broker's acks, repeat.

    The same delivery discipline as the worker (a batch is done when its output is acked), with
    no consumer group (so no join to wait for) and nothing done to the records.
    """
    options = client_options(settings)
    consumer = AIOKafkaConsumer(source, **options, auto_offset_reset="earliest")
    sender = producer(settings, linger_ms=0)
    await consumer.start()
    await sender.start()
    forwarded = 0
    deadline = time.monotonic() + timeout_s
    try:
        while forwarded < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=50, max_records=batch_max)
            records = [r for rs in batches.values() for r in rs]
            futures = [await sender.send(sink, r.value, key=r.key) for r in records]
            await asyncio.gather(*futures)
            forwarded += len(records)
    finally:
        await sender.stop()
        await consumer.stop()
