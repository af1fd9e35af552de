"""Delivering a batch's outcomes: every message on the broker, or a dead-letter in its place.

Messages go out as record batches, one per topic-partition, through the aiokafka producer faust
already holds: one future per partition rather than one per message, which is most of what a
per-message ``send`` costs (see docs/benchmarks.md). A batch the broker does not take whole is
sent again message by message, so that one refused record costs that record alone: a message
the broker refuses for good (too large, invalid) is replaced by its post's minimal dead-letter;
one it cannot take now is tried again. When the broker stays away the worker exits without
acking, so that the batch is redelivered to whoever takes the partitions over.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn

import faust
from aiokafka.errors import (
    CorruptRecordException,
    InvalidMessageError,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from modfleet.emit.messages import Outbound
from modfleet.metrics import Metrics
from modfleet.stream.partitions import Partitioner

log = logging.getLogger(__name__)

# os._exit status when the worker stops without acking: EX_TEMPFAIL, "try again later".
EXIT_UNACKED = 75
_BACKOFF_CAP_S = 5.0
# Refusals of one record that no retry changes: it gets a dead-letter in its place.
PERMANENT_SEND_ERRORS = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
    InvalidMessageError,
    InvalidTimestampError,
)

StandIn = Callable[[Outbound], Outbound | None]


def exit_unacked(why: str) -> NoReturn:
    """Stop now, without acking: the batch is redelivered to whoever takes the partitions."""
    log.critical("%s; exiting without acking the batch so that it is redelivered", why)
    logging.shutdown()
    # No orderly exit: an orderly stop commits what was acked, and nothing more must be.
    os._exit(EXIT_UNACKED)


async def deliver(
    app: faust.App,
    outbound: Sequence[Outbound],
    stand_in: StandIn,
    attempts: int,
    backoff_s: float,
) -> list[Outbound]:
    """What was delivered: each message, or the dead-letter that stands in for it."""
    # The aiokafka producer inside faust's (faust exposes no batch API): the same connection,
    # settings and in-flight limits as faust's own sends.
    faust_producer: Any = app.producer
    producer = faust_producer._ensure_producer()
    partitioner = await Partitioner.of(producer, outbound)
    delivered, pending = await _send_batched(producer, partitioner, outbound)
    if not pending:
        return delivered
    for attempt in range(attempts):
        again: list[Outbound] = []
        for message, error in await _send_each(app, partitioner, pending):
            if error is None:
                delivered.append(message)
            elif isinstance(error, PERMANENT_SEND_ERRORS):
                again.extend(_replace(message, error, stand_in))
            else:
                again.append(message)
        if not again:
            return delivered
        pending = again
        log.warning("delivering %d messages failed; retrying", len(pending))
        await asyncio.sleep(min(_BACKOFF_CAP_S, backoff_s * 2**attempt))
    exit_unacked(f"could not deliver a batch's output in {attempts} tries")


async def _send_batched(
    producer: Any, partitioner: Partitioner, messages: Sequence[Outbound]
) -> tuple[list[Outbound], list[Outbound]]:
    """One record batch per topic-partition (more where one fills up); what the broker took,
    and the messages of batches it did not take, for the message-by-message path."""
    by_partition: dict[tuple[str, int], list[Outbound]] = {}
    left: list[Outbound] = []
    for m in messages:
        partition = partitioner.partition(m)
        if partition is None:
            left.append(m)  # no metadata for the topic yet: the per-message send waits for it
        else:
            by_partition.setdefault((m.topic, partition), []).append(m)
    batches: list[tuple[list[Outbound], Awaitable[Any] | BaseException]] = []
    for (topic, partition), group in by_partition.items():
        for chunk, builder in _filled(producer, group):
            try:
                future = await producer.send_batch(builder, topic, partition=partition)
            except KafkaError as exc:
                batches.append((chunk, exc))
            else:
                batches.append((chunk, future))
    waiting = [f for _, f in batches if not isinstance(f, BaseException)]
    results = iter(await asyncio.gather(*waiting, return_exceptions=True))
    delivered: list[Outbound] = []
    for chunk, f in batches:
        error = f if isinstance(f, BaseException) else _error_of(next(results))
        if error is None:
            delivered.extend(chunk)
        else:
            why = type(error).__name__
            log.warning("a record batch of %d messages failed (%s)", len(chunk), why)
            left.extend(chunk)
    return delivered, left


def _filled(producer: Any, group: Sequence[Outbound]) -> list[tuple[list[Outbound], Any]]:
    """The group's messages in record batches of the producer's batch size: a batch holds at
    least one message, so one at the size limit still goes out (alone)."""
    filled: list[tuple[list[Outbound], Any]] = []
    chunk: list[Outbound] = []
    builder = producer.create_batch()
    for m in group:
        headers = list(m.headers)
        if builder.append(key=m.key, value=m.value, timestamp=None, headers=headers) is None:
            filled.append((chunk, builder))
            chunk, builder = [], producer.create_batch()
            builder.append(key=m.key, value=m.value, timestamp=None, headers=headers)
        chunk.append(m)
    filled.append((chunk, builder))
    return filled


async def _send_each(
    app: faust.App, partitioner: Partitioner, messages: Sequence[Outbound]
) -> list[tuple[Outbound, BaseException | None]]:
    producer = app.producer
    sent: list[tuple[Outbound, Awaitable[Any] | BaseException]] = []
    for m in messages:
        try:
            # The partition the batched path chose: a message lands where its key's others do.
            partition = partitioner.partition(m)
            future = await producer.send(m.topic, m.key, m.value, partition, None, list(m.headers))
        except Exception as exc:  # noqa: BLE001 - sorted into permanent or retried
            sent.append((m, exc))
        else:
            sent.append((m, future))
    waiting = [f for _, f in sent if not isinstance(f, BaseException)]
    results = iter(await asyncio.gather(*waiting, return_exceptions=True))
    return [(m, f if isinstance(f, BaseException) else _error_of(next(results))) for m, f in sent]


def _replace(message: Outbound, error: BaseException, stand_in: StandIn) -> list[Outbound]:
    log.error("the broker refused a %s for good (%s)", message.kind, type(error).__name__)
    if message.kind == "dead_letter" and message.code == "undeliverable":
        # Even the minimal form was refused: nothing smaller can be sent.
        exit_unacked("the broker refused a minimal dead-letter")
    replacement = stand_in(message)
    return [] if replacement is None else [replacement]


def _error_of(result: object) -> BaseException | None:
    return result if isinstance(result, BaseException) else None


def count_delivered(m: Metrics, delivered: Sequence[Outbound], records: int) -> None:
    """Metrics of one delivered batch: counted once it is delivered, however often it was
    tried; one ``inc(n)`` per label set rather than a label lookup per message."""
    m.posts_consumed.inc(records)
    m.batch_size.observe(records)
    # Counted by what the metrics tell apart, in C; then one inc(n) per distinct outcome.
    outcomes = collections.Counter((o.kind, o.code, o.action, o.labels) for o in delivered)
    for (kind, code, action, labels), n in outcomes.items():
        if kind == "decision":
            m.decisions.labels(action=action or "").inc(n)
            for category in labels:
                m.decision_labels.labels(category=category).inc(n)
        elif kind == "shadow_decision":
            m.shadow_decisions.labels(policy=code or "", action=action or "").inc(n)
        elif kind == "escalation":
            m.escalations.labels(reason=code or "").inc(n)
        elif kind == "dead_letter":
            m.dead_letters.labels(reason=code or "").inc(n)
