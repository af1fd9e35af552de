"""Reading a topic over a time window, and `modfleet reviews report` built on it."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from modfleet.errors import FatalError
from modfleet.ingest.decode import Record
from modfleet.kafka import consumer, unread
from modfleet.reviews.agreement import Tally
from modfleet.reviews.join import Join, Rejected, parse_record
from modfleet.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """Record times [since, until), in seconds since the epoch; None is open."""

    since: float | None = None
    until: float | None = None

    @classmethod
    def parse(cls, since: str | None, until: str | None) -> Window:
        return cls(_instant(since, "--since"), _instant(until, "--until"))

    def holds(self, at: float | None) -> bool:
        if at is None:
            return self.since is None and self.until is None
        return (self.since is None or at >= self.since) and (self.until is None or at < self.until)

    def open_ended(self) -> Window:
        return Window(self.since, None)


def _instant(value: str | None, option: str) -> float | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise FatalError(
            f"{option} {value!r} is not an ISO 8601 time (2026-11-29T12:00Z)"
        ) from None
    if parsed.tzinfo is None:
        raise FatalError(f"{option} {value!r} has no time zone; add Z or an offset")
    return parsed.timestamp()


async def read_topic(
    settings: Settings, topic: str, window: Window, idle_s: float = 3.0, limit_s: float = 3600.0
) -> AsyncIterator[Record]:
    """Every record of ``topic`` whose time is in ``window``, read until ``idle_s`` of quiet;
    an offset not read (``modfleet.kafka.unread``) comes as its UnreadRecord.

    Idleness, not end offsets, ends the read, as in `modfleet shadow report`: some
    Kafka-compatible brokers report end offsets that are too low. No consumer group: reading
    moves nobody's offsets.
    """
    reader = consumer(
        settings, topic, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    started = last = time.monotonic()
    try:
        await reader.start()  # within the try: a start that fails still closes the client
        while time.monotonic() - last < idle_s and time.monotonic() - started < limit_s:
            batches = await reader.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batches.items():
                last = time.monotonic()
                for r in records:
                    at = (
                        r.timestamp / 1000 if r.timestamp is not None and r.timestamp >= 0 else None
                    )
                    if not window.holds(at):
                        continue
                    if unread(r) is not None:
                        yield r.checksum
                    else:
                        yield Record(tp.topic, tp.partition, r.offset, at, r.key, r.value)
    finally:
        await reader.stop()


async def report(settings: Settings, window: Window, idle_s: float = 3.0) -> Tally:
    """Agreement over the decisions made in ``window`` and every review of them since.

    Decisions are read first, then reviews from the window's start on, with no end: a review
    comes after its decision, possibly long after.
    """
    join = Join(settings.reviews_join_max_decisions, math.inf)
    tally = Tally()
    async for record in read_topic(settings, settings.decisions_topic, window, idle_s):
        try:
            message = parse_record("decision", record)
        except Rejected as exc:
            log.warning("skipping %s: %s", _where(record), exc)
            continue
        tally.add(join.add_decision(message, record.timestamp or 0.0))
    reviews = read_topic(settings, settings.reviews_topic, window.open_ended(), idle_s)
    async for record in reviews:
        try:
            message = parse_record("review", record)
        except Rejected as exc:
            log.warning("invalid review %s: %s", _where(record), exc)
            tally.results["invalid"] += 1
            continue
        tally.add(join.add_review(message, record.timestamp or 0.0))
    tally.add(join.flush())
    return tally


def _where(record: Record) -> str:
    return f"{record.topic}[{record.partition}]@{record.offset}"
