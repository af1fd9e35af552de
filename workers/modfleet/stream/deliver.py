"""Delivering a batch's outcomes: every message on the broker, or a dead-letter in its place.

A message the broker refuses for good (too large, invalid) is replaced by its post's minimal
dead-letter; one it cannot take now is tried again. When the broker stays away the worker exits
without acking, so that the batch is redelivered to whoever takes the partitions over.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn

import faust
from aiokafka.errors import (
    CorruptRecordException,
    InvalidMessageError,
    InvalidTimestampError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from modfleet.emit.messages import Outbound

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
    pending, delivered = list(outbound), []
    for attempt in range(attempts):
        again: list[Outbound] = []
        for message, error in await _send_all(app, pending):
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


async def _send_all(
    app: faust.App, messages: Sequence[Outbound]
) -> list[tuple[Outbound, BaseException | None]]:
    producer = app.producer
    sent: list[tuple[Outbound, Awaitable[Any] | BaseException]] = []
    for m in messages:
        try:
            future = await producer.send(m.topic, m.key, m.value, None, None, list(m.headers))
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
