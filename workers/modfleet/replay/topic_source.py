"""A replay source that reads an offset range of another topic (or of the dead-letter topic).

Offsets are given per partition (``3:1500``) or for all partitions at once (``1500``); the start
is inclusive, the end exclusive. Without an end the range stops at the topic's end offsets when
the replay starts, so records produced during the replay are not replayed again.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from modfleet.errors import FatalError
from modfleet.kafka import consumer, unread
from modfleet.replay.rows import BadRow, FieldMap, Row, from_json
from modfleet.settings import Settings

# A range whose end lies past the data would otherwise wait forever for records never produced.
_IDLE_STOP_S = 5.0


@dataclass(frozen=True)
class Offsets:
    """Offsets by partition, with one for every partition not named."""

    every: int | None = None
    by_partition: dict[int, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, specs: Iterable[str]) -> Offsets:
        every: int | None = None
        by_partition: dict[int, int] = {}
        for spec in specs:
            partition, sep, offset = spec.rpartition(":")
            try:
                value = int(offset)
                if sep:
                    by_partition[int(partition)] = value
                else:
                    every = value
            except ValueError:
                raise FatalError(f"offset {spec!r} is neither N nor PARTITION:N") from None
            if value < 0:
                raise FatalError(f"offset {spec!r} is negative")
        return cls(every, by_partition)

    def get(self, partition: int) -> int | None:
        return self.by_partition.get(partition, self.every)


class TopicSource:
    """Records [start, end) of each partition of ``topic``, as rows to replay."""

    def __init__(self, consumer: AIOKafkaConsumer, topic: str, fields: FieldMap) -> None:
        self._consumer = consumer
        self._fields = fields
        self.topic = topic
        self.name = f"topic {topic}"
        self.ranges: dict[TopicPartition, tuple[int, int]] = {}
        self.total: int | None = 0
        self.short: list[str] = []  # partitions that ended before the requested end

    async def resolve(self, start: Offsets, end: Offsets) -> None:
        partitions = await self._partitions()
        tps = [TopicPartition(self.topic, p) for p in partitions]
        first = await self._consumer.beginning_offsets(tps)
        last = await self._consumer.end_offsets(tps)
        for tp in tps:
            lo = max(first[tp], start.get(tp.partition) or 0)
            hi = end.get(tp.partition)
            if hi is not None and hi > last[tp]:
                # What the replay itself produces lands past the end (a replayed post that is
                # dead-lettered again, read back from the dead-letter topic): reading on into it
                # would replay the replay, round after round.
                self.short.append(
                    f"partition {tp.partition}: ends at {last[tp]}, before the end {hi} asked for"
                )
            hi = last[tp] if hi is None else min(hi, last[tp])
            if hi > lo:
                self.ranges[tp] = (lo, hi)
        self.total = sum(hi - lo for lo, hi in self.ranges.values())
        self._consumer.assign(list(self.ranges))
        for tp, (lo, _) in self.ranges.items():
            self._consumer.seek(tp, lo)

    async def _partitions(self) -> list[int]:
        await self._consumer.topics()  # fills the metadata that partitions_for_topic reads
        partitions = self._consumer.partitions_for_topic(self.topic)
        if not partitions:
            raise FatalError(f"topic {self.topic} does not exist or has no partitions")
        return sorted(partitions)

    async def rows(self) -> AsyncIterator[Row]:
        open_ranges = dict(self.ranges)
        idle_since = time.monotonic()
        try:
            while open_ranges:
                batches = await self._consumer.getmany(*open_ranges, timeout_ms=500)
                if any(batches.values()):
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > _IDLE_STOP_S:
                    await self._note_short(open_ranges)
                    return
                for tp, records in batches.items():
                    for record in records:
                        if tp in open_ranges and record.offset < open_ranges[tp][1]:
                            yield self._row(tp, record)
                    if await self._consumer.position(tp) >= open_ranges[tp][1]:
                        del open_ranges[tp]
        finally:
            await self.close()

    def _row(self, tp: TopicPartition, record: Any) -> Row:
        where = f"{tp.topic}[{tp.partition}]@{record.offset}"
        if (why := unread(record)) is not None:
            return BadRow(where, "too_large", why.message)
        if record.value is None:
            return BadRow(where, "invalid_row", "record has no value (a tombstone?)")
        return from_json(record.value, where, self._fields)

    async def _note_short(self, open_ranges: dict[TopicPartition, tuple[int, int]]) -> None:
        for tp, (_, hi) in open_ranges.items():
            at = await self._consumer.position(tp)
            self.short.append(f"partition {tp.partition}: nothing at offset {at}, before end {hi}")

    async def close(self) -> None:
        await self._consumer.stop()  # idempotent in aiokafka


async def open_topic(
    settings: Settings, topic: str, start: Offsets, end: Offsets, fields: FieldMap
) -> TopicSource:
    reader = consumer(
        settings,
        group_id=None,  # a replay must not move anyone's committed offsets
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    source = TopicSource(reader, topic, fields)
    resolved = False
    try:
        await reader.start()
        await source.resolve(start, end)
        resolved = True
    finally:
        if not resolved:  # cancelled or failed: the client closes either way
            await source.close()
    return source
