"""A replay: read rows, produce posts at a pace, wait for their outcomes, report.

The output topics are read from their current ends before the first post is sent, so every
outcome of this replay is seen; outcomes of anything else are ignored (see tracker.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TextIO

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from modfleet.errors import FatalError
from modfleet.kafka import client_options
from modfleet.replay.io import post_key
from modfleet.replay.pacing import Pacer
from modfleet.replay.progress import Progress
from modfleet.replay.report import Report, SendStats, build_report
from modfleet.replay.rows import BadRow, FieldMap, PostRow
from modfleet.replay.sources import FileFormat, Source, open_file
from modfleet.replay.topic_source import Offsets, TopicSource, open_topic
from modfleet.replay.tracker import Key, OutputReader, Tracker
from modfleet.settings import Settings

_HEADERS = [("content-type", b"application/json")]  # required on every record (catalogue)
_BAD_ROWS_PRINTED = 100  # past this a broken file would bury the progress line


@dataclass(frozen=True)
class FileSpec:
    path: Path
    format: FileFormat | None = None


@dataclass(frozen=True)
class TopicSpec:
    topic: str
    start: Offsets = field(default_factory=Offsets)
    end: Offsets = field(default_factory=Offsets)


@dataclass(frozen=True)
class ReplayOptions:
    source: FileSpec | TopicSpec
    fields: FieldMap = field(default_factory=FieldMap)
    rate: float | None = None  # posts per second; None: as fast as the broker takes them
    timeout_s: float = 120.0  # to wait for outcomes once the last post is sent
    capture: Path | None = None
    progress: bool = True


async def run_replay(
    settings: Settings, options: ReplayOptions, stream: TextIO | None = None
) -> Report:
    source = await _open(settings, options)
    try:
        stats, tracker = await _replay(settings, options, source, stream)
    finally:
        await source.close()
    notes = source.short if isinstance(source, TopicSource) else []
    return build_report(source.name, stats, tracker, options.rate, options.capture, notes)


async def _replay(
    settings: Settings, options: ReplayOptions, source: Source, stream: TextIO | None
) -> tuple[SendStats, Tracker]:
    stats = SendStats()
    with _capture(options.capture) as capture:
        tracker = Tracker(settings.posts_topic, capture)
        reader = OutputReader(settings, tracker)
        await reader.start()
        progress = Progress(stats, tracker, source.total, stream) if options.progress else None
        note = progress.note if progress else functools.partial(print, file=stream or sys.stderr)
        reading = asyncio.create_task(reader.run())
        drawing = asyncio.create_task(progress.run()) if progress else None
        try:
            await _send_all(settings, source, tracker, Pacer(options.rate), stats, note)
            tracker.sending_done()
            await _wait_settled(tracker, reading, options.timeout_s)
        finally:
            await _cancel(reading, drawing)
            await reader.stop()
            if progress:
                progress.finish()
    return stats, tracker


async def _open(settings: Settings, options: ReplayOptions) -> Source:
    spec = options.source
    fields = replace(options.fields, posts_topic=settings.posts_topic)
    if isinstance(spec, FileSpec):
        return open_file(spec.path, fields, spec.format)
    return await open_topic(settings, spec.topic, spec.start, spec.end, fields)


@contextlib.contextmanager
def _capture(path: Path | None) -> Iterator[IO[bytes] | None]:
    if path is None:
        yield None
        return
    with path.open("wb") as f:
        yield f


async def _send_all(
    settings: Settings,
    source: Source,
    tracker: Tracker,
    pacer: Pacer,
    stats: SendStats,
    note: Callable[[str], object],
) -> None:
    producer = AIOKafkaProducer(**client_options(settings), linger_ms=5, acks="all")
    await producer.start()
    failures: list[str] = []
    try:
        async for row in source.rows():
            stats.rows += 1
            if isinstance(row, PostRow):
                await pacer.acquire()
                row = await _send(producer, settings.posts_topic, row, tracker, stats, failures)
            if isinstance(row, BadRow):
                _skip(row, stats, note)
        await producer.flush()
        stats.finished_at = time.monotonic()
    finally:
        await producer.stop()
    if failures:
        raise FatalError(f"{len(failures)} posts were not acknowledged; first: {failures[0]}")


async def _send(
    producer: AIOKafkaProducer,
    topic: str,
    row: PostRow,
    tracker: Tracker,
    stats: SendStats,
    failures: list[str],
) -> PostRow | BadRow:
    key: Key = (post_key(row.value), time.time_ns() // 1_000_000)
    tracker.expect(key)
    stats.start_clock()
    try:
        future = await producer.send(
            topic, row.value, key=key[0], timestamp_ms=key[1], headers=_HEADERS
        )
    except KafkaError as exc:  # refused before it left, e.g. larger than the broker takes
        tracker.forget(key)
        return BadRow(row.where, "not_sent", f"{type(exc).__name__}: {exc}")
    stats.sent += 1
    future.add_done_callback(functools.partial(_acked, tracker, stats, failures, key))
    if stats.sent % 256 == 0:
        await asyncio.sleep(0)  # sends rarely wait: let the reader and the progress line run
    return row


def _acked(
    tracker: Tracker,
    stats: SendStats,
    failures: list[str],
    key: Key,
    future: asyncio.Future[object],
) -> None:
    if future.cancelled() or future.exception() is not None:
        failures.append(repr(future.exception()) if not future.cancelled() else "cancelled")
        tracker.forget(key)
    else:
        stats.acked += 1


def _skip(row: BadRow, stats: SendStats, note: Callable[[str], object]) -> None:
    stats.bad.append(row)
    if len(stats.bad) <= _BAD_ROWS_PRINTED:
        note(f"skipped {row}")
    elif len(stats.bad) == _BAD_ROWS_PRINTED + 1:
        note("further bad rows are counted in the report, not printed")


async def _wait_settled(tracker: Tracker, reading: asyncio.Task[None], timeout_s: float) -> None:
    settled = asyncio.create_task(tracker.all_settled.wait())
    try:
        await asyncio.wait(
            {settled, reading}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        settled.cancel()
    if reading.done() and not reading.cancelled() and reading.exception() is not None:
        raise FatalError(f"reading the output topics failed: {reading.exception()}")


async def _cancel(*tasks: asyncio.Task[None] | None) -> None:
    running = [t for t in tasks if t is not None and not t.done()]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
