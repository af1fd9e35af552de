"""The dead letters of one pipeline: a record that cannot be decided, why, and where it came
from, each within the broker's budget (``emit.dead_letter`` builds them)."""

from __future__ import annotations

import logging

from modfleet.emit.budget import Budget
from modfleet.emit.dead_letter import dead_letter_message, stand_in
from modfleet.emit.messages import Outbound, carried_headers
from modfleet.ingest.decode import Post, Record, Rejection
from modfleet.telemetry.tracing import Headers

log = logging.getLogger("modfleet.stream.pipeline")  # where operators have always read them


class DeadLetters:
    def __init__(self, topic: str, budget: Budget) -> None:
        self.topic = topic
        self.budget = budget

    def of(
        self, record: Record, why: Rejection, trace_id: str | None = None, headers: Headers = ()
    ) -> Outbound:
        """``record``'s dead letter for ``why``."""
        # The reason's message can quote the offending value, which may be post text: it goes
        # to the dead-letter record, not to the logs. The field's pointer names the poster's
        # own keys: ascii() keeps a newline in one from starting a log line of their choosing.
        log.info(
            "dead-lettered %s[%d]@%d: %s at %a",
            record.topic,
            record.partition,
            record.offset,
            why.code,
            why.field[:256] if why.field is not None else "record",
            extra={"trace_id": trace_id, "post_id": why.post_id, "reason": why.code},
        )
        headers = headers or carried_headers(record)
        return dead_letter_message(record, why, self.topic, self.budget, trace_id, headers)

    def internal_error(
        self, record: Record, step: str, exc: Exception, post: Post | None = None
    ) -> Outbound:
        """``record``'s dead letter for a failure of ours at ``step``."""
        # The exception's text may quote the post: the log gets its type, the dead-letter both.
        log.error(
            "%s failed for %s[%d]@%d (%s)",
            step,
            record.topic,
            record.partition,
            record.offset,
            type(exc).__name__,
        )
        message = f"{step} failed: {type(exc).__name__}: {exc}"[:1000]
        post_id, tenant = (post.post_id, post.tenant) if post is not None else (None, None)
        why = Rejection("internal_error", message, post_id=post_id, tenant=tenant)
        return self.of(record, why)

    def stand_in(self, message: Outbound) -> Outbound | None:
        """The minimal dead letter that stands for ``message``, which the broker refused for
        good or which did not fit."""
        return stand_in(message, self.topic, self.budget)

    def fitted(self, message: Outbound) -> Outbound:
        """``message``, or its stand-in where it is over the budget."""
        # Every builder sizes its message to the budget; this is the guarantee behind them.
        if self.budget.fits(message.key, message.value, message.headers):
            return message
        log.error("a %s message did not fit the byte budget; dead-lettering", message.kind)
        replacement = self.stand_in(message)
        if replacement is None:  # pragma: no cover - every builder passes its source
            raise AssertionError("an oversized message without a source record")
        return replacement
