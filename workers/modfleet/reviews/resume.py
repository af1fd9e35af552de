"""What a restart of `modfleet reviews run` must know of the run before it.

The reviews group's committed offsets say how far the last run read. A restart reads the
reviews below them again, counting nothing, only to mark their decisions reviewed, so that a
later copy is a duplicate as it would have been without the restart. That alone would lose a
review that was still waiting for its decision when the run stopped. So every checkpoint also
commits two marks, as the offsets of a group of their own (plain offsets: not every
Kafka-compatible broker keeps a commit's metadata):

- per reviews partition, the offset of its oldest waiting review, or the read offset when none
  waits. Waiting reviews leave the join unjoined from the front only, so every review at or past
  this mark that had to wait was joined, or was still waiting;
- per decisions partition, how far decisions had been read. A review at or past its partition's
  mark whose decision the last run had not read cannot have been joined: it was waiting (or was
  a duplicate of one that was). It is read again as new, its outcome counted now, less the
  "pending" or "duplicate" that the last run counted for it.

What came after the last checkpoint (at most a second's worth) is counted again after a crash:
at-least-once, as for any Kafka consumer without transactions.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from modfleet.kafka import client_options, consumer
from modfleet.reviews.join import Rejected, parse
from modfleet.settings import Settings

_POLL_MS = 200
_IDLE_S = 5.0  # a committed offset past the log's end would otherwise be waited for forever
# What the last run counted for a review it left waiting: not to be counted a second time.
COUNTED_BEFORE = frozenset({"pending", "duplicate"})

Fate = Literal["restore", "readmit", "skip"]


@dataclass
class Resume:
    """The last run's offsets and marks, and what the restart learns of them while it reads."""

    read: dict[TopicPartition, int]  # reviews: the offsets the last run committed
    settled: dict[TopicPartition, int]  # reviews: below these, every review was settled
    decided: dict[int, int]  # decisions partition: how far the last run had read it
    # Decision ids of the reviews at or past the settled marks, and those of them the last run
    # had read: the only decisions whose reviews may have been waiting.
    waiting_for: set[bytes] = field(default_factory=set)
    seen: set[bytes] = field(default_factory=set)

    def saw(self, partition: int, offset: int, decision_id: bytes) -> None:
        """A decision read while catching up."""
        if decision_id in self.waiting_for and offset < self.decided.get(partition, 0):
            self.seen.add(decision_id)

    def fate(self, tp: TopicPartition, offset: int, decision_id: bytes) -> Fate:
        """What to do with a review the last run read."""
        if decision_id not in self.waiting_for or decision_id in self.seen:
            return "restore"  # counted, if it could be joined at all
        if offset >= self.settled[tp]:
            return "readmit"  # waiting when the last run stopped
        return "skip"  # gave up waiting: never joined, so its decision is not marked


class Marks:
    """The settled and decided marks: committed offsets of ``<group>-reviews-marks``."""

    def __init__(self, settings: Settings) -> None:
        self._consumer = AIOKafkaConsumer(
            **client_options(settings),
            group_id=f"{settings.consumer_group}-reviews-marks",
            enable_auto_commit=False,
        )
        self._tps: frozenset[TopicPartition] = frozenset()

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def load(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        committed = {tp: await self._consumer.committed(tp) for tp in tps}
        return {tp: offset for tp, offset in committed.items() if offset is not None}

    async def save(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not self._tps.issuperset(offsets):
            self._tps = self._tps.union(offsets)
            self._consumer.assign(list(self._tps))  # a commit must name assigned partitions
            self._consumer.pause(*self._tps)  # it commits, and never reads
        await self._consumer.commit(dict(offsets))


async def plan(
    settings: Settings,
    read: dict[TopicPartition, int],
    marks: dict[TopicPartition, int],
) -> Resume:
    """The Resume for what the last run ``read`` and the ``marks`` it left; reads the reviews
    past the settled marks for their decision ids (before the decisions are caught up)."""
    if not any(tp in marks for tp in read):  # a first run, or the last kept no marks
        return Resume(read, dict(read), {})
    settled = {tp: min(marks.get(tp, end), end) for tp, end in read.items()}
    decided = {tp.partition: o for tp, o in marks.items() if tp.topic == settings.decisions_topic}
    resume = Resume(read, settled, decided)
    ranges = {tp: (settled[tp], end) for tp, end in read.items() if settled[tp] < end}
    async for _, record in read_ranges(settings, ranges):
        message = final_review(record.value)
        if message is not None:
            resume.waiting_for.add(bytes.fromhex(message["decision_id"]))
    return resume


def final_review(value: bytes | None) -> dict[str, Any] | None:
    """A valid review that may be joined; None for an invalid one or one passed on."""
    try:
        message = parse("review", value)
    except Rejected:
        return None  # dead-lettered when it was first read
    return None if message["action"] == "escalate" else message


async def read_ranges(
    settings: Settings, ranges: dict[TopicPartition, tuple[int, int]]
) -> AsyncIterator[tuple[TopicPartition, ConsumerRecord[bytes, bytes]]]:
    """The records of each partition from its start offset to before its end offset."""
    if not ranges:
        return
    reader = consumer(settings, group_id=None, enable_auto_commit=False)
    try:
        await reader.start()
        reader.assign(list(ranges))
        for tp, (start, _) in ranges.items():
            reader.seek(tp, start)
        ends = {tp: end for tp, (_, end) in ranges.items()}
        idle_since = time.monotonic()
        while ends and time.monotonic() - idle_since < _IDLE_S:
            batches = await reader.getmany(*ends, timeout_ms=_POLL_MS, max_records=5000)
            for tp, records in batches.items():
                idle_since = time.monotonic()
                for record in records:
                    if record.offset < ends.get(tp, 0):
                        yield tp, record
                if tp in ends and await reader.position(tp) >= ends[tp]:
                    del ends[tp]
    finally:
        await reader.stop()
