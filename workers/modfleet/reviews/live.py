"""`modfleet reviews run`: the live join, exported as Prometheus metrics.

A process of its own beside the stream workers, so that they stay as they are. It reads every
decision still on the decisions topic (no consumer group: each replica holds the whole join) and
the reviews through a consumer group of its own. Decisions are caught up before reviews are read;
a review that still overtakes its decision waits in the join's bounded map. A restart neither
counts old reviews again nor loses the ones that were waiting (reviews.resume). An invalid review
is logged and dead-lettered with its reason, built to the configured byte budget.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError
from prometheus_client import start_http_server

from modfleet.emit.budget import Budget
from modfleet.emit.dead_letter import dead_letter_message
from modfleet.errors import RecoverableError
from modfleet.ingest.decode import Record, Rejection
from modfleet.kafka import client_options, consumer, unread
from modfleet.metrics import Metrics
from modfleet.reviews.join import Join, Outcome, Rejected, parse, parse_record
from modfleet.reviews.resume import COUNTED_BEFORE, Marks, Resume, final_review, plan, read_ranges
from modfleet.settings import Settings

log = logging.getLogger(__name__)
_POLL_MS = 200
_CHECKPOINT_S = 1.0  # what a crash may count again (reviews.resume)


def observe(metrics: Metrics, outcomes: Iterable[Outcome]) -> None:
    """Count outcomes the way `modfleet reviews report` does, as Prometheus counters."""
    for outcome in outcomes:
        metrics.reviews.labels(outcome.result).inc()
        joined = outcome.joined
        if joined is None:
            continue
        d = joined.decision
        verdict = "upheld" if joined.upheld else "overturned"
        metrics.review_outcomes.labels(d.action, verdict, d.digest, d.model, d.stage).inc()
        for category, flagged, violates in joined.verdicts():
            flag, bad = str(flagged).lower(), str(violates).lower()
            metrics.review_verdicts.labels(category, flag, bad).inc()


class LiveJoin:
    """Both consumers and the join; ``run`` until ``stop`` is set."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.join = Join(settings.reviews_join_max_decisions, settings.reviews_join_ttl_s)
        options = client_options(settings)
        self._decisions = consumer(
            settings,
            settings.decisions_topic,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        # Committed by checkpoints only, with the marks that let a restart find the reviews
        # still waiting (reviews.resume): auto-commit would pass them by.
        self._reviews = consumer(
            settings,
            settings.reviews_topic,
            group_id=f"{settings.consumer_group}-reviews",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(settings.broker_session_timeout_s * 1000),
            heartbeat_interval_ms=int(settings.broker_heartbeat_interval_s * 1000),
        )
        self._marks = Marks(settings)
        # Dead letters are built to the configured budget, and the producer must allow what the
        # budget does (aiokafka's own limit is 1 MiB): a record refused by either would end the
        # process, and its restart would meet the same review again.
        self._budget = Budget.from_settings(settings)
        self._producer = AIOKafkaProducer(
            **options, acks="all", max_request_size=settings.producer_max_request_bytes
        )
        self._read: dict[TopicPartition, int] = {}  # reviews: the next offset to count
        self._resumed = False  # checkpoints before the restore would drop the last run's marks
        self._changed = False
        self._checkpoint_at = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        await self._decisions.start()
        try:
            await self._producer.start()
            await self._reviews.start()
            if await self._resume(stop):
                await self._join(stop)
        finally:
            await self._marks.stop()
            await self._reviews.stop()
            await self._producer.stop()
            await self._decisions.stop()

    async def _resume(self, stop: asyncio.Event) -> bool:
        """Catch up decisions, then restore what the last run left; False if stopped first."""
        resume = await self._plan()
        while await self._read_decisions(resume) and not stop.is_set():
            pass  # catch up first, so old reviews find their decisions
        if stop.is_set():
            return False
        await self._restore(resume)
        return True

    async def _join(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._read_decisions()
            await self._read_reviews()
            self._observe(self.join.expire(time.time()))
            self.metrics.review_join_decisions.set(len(self.join))
            await self._checkpoint(time.monotonic() - self._checkpoint_at >= _CHECKPOINT_S)
        await self._checkpoint(True)

    async def _plan(self) -> Resume:
        review_tps = await _partitions(self._reviews, self.settings.reviews_topic)
        decision_tps = await _partitions(self._decisions, self.settings.decisions_topic)
        await self._marks.start()
        committed = {tp: await self._reviews.committed(tp) for tp in review_tps}
        read = {tp: offset for tp, offset in committed.items() if offset}
        return await plan(self.settings, read, await self._marks.load(review_tps + decision_tps))

    async def _restore(self, resume: Resume) -> None:
        """Re-read what the last run read: mark the decisions it joined reviewed, counting
        nothing, and take back the reviews it left waiting."""
        ranges = {tp: (0, end) for tp, end in resume.read.items()}
        async for tp, record in read_ranges(self.settings, ranges):
            message = final_review(record.value)
            if message is None:
                continue
            fate = resume.fate(tp, record.offset, bytes.fromhex(message["decision_id"]))
            if fate == "restore":
                self.join.restore(message)
            elif fate == "readmit":
                at = _record_time(record.timestamp, time.time())
                outcomes = self.join.add_review(message, at, (tp.partition, record.offset))
                if outcomes and outcomes[0].result in COUNTED_BEFORE:
                    outcomes = outcomes[1:]
                self._observe(outcomes)
        self._read = dict(resume.read)
        self._resumed = True

    async def _checkpoint(self, due: bool) -> None:
        """Commit how far reviews were read, then the marks a restart needs (reviews.resume)."""
        if not (due and self._changed and self._resumed):
            return
        self._checkpoint_at = time.monotonic()
        oldest = self.join.oldest_waiting()
        marks = {tp: min(oldest.get(tp.partition, end), end) for tp, end in self._read.items()}
        assigned = self._reviews.assignment()
        try:
            for tp in self._decisions.assignment():
                marks[tp] = await self._decisions.position(tp)
            await self._reviews.commit({tp: o for tp, o in self._read.items() if tp in assigned})
            await self._marks.save(marks)
        except KafkaError as exc:  # a rebalance or a broker away: the next checkpoint tries again
            log.warning("could not commit the reviews counted so far: %s", exc)
            return
        self._changed = False

    async def _read_decisions(self, resume: Resume | None = None) -> int:
        batches = await self._decisions.getmany(timeout_ms=_POLL_MS, max_records=5000)
        seen = 0
        now = time.time()
        for tp, records in batches.items():
            for r in records:
                seen += 1
                try:
                    message = parse_record("decision", r)
                except Rejected as exc:
                    log.warning("skipping decision at offset %d: %s", r.offset, exc)
                    continue
                if resume is not None and resume.waiting_for:
                    resume.saw(tp.partition, r.offset, bytes.fromhex(message["decision_id"]))
                # Aged by when it was decided, so a restart does not hold week-old decisions
                # for another full age limit.
                self._observe(self.join.add_decision(message, _record_time(r.timestamp, now)))
        self._changed |= seen > 0
        return seen

    async def _read_reviews(self) -> None:
        batches = await self._reviews.getmany(timeout_ms=_POLL_MS, max_records=1000)
        now = time.time()
        for tp, records in batches.items():
            for r in records:
                self._read[tp] = r.offset + 1
                self._changed = True
                if (why := unread(r)) is not None:  # the letter is the record stood for
                    await self._dead_letter(r.checksum, why)
                    continue
                try:
                    message = parse("review", r.value)
                except Rejected as exc:
                    stamp = r.timestamp / 1000 if r.timestamp and r.timestamp > 0 else None
                    record = Record(tp.topic, tp.partition, r.offset, stamp, r.key, r.value)
                    await self._dead_letter(record, Rejection(exc.code, str(exc), exc.field))
                    continue
                self._observe(self.join.add_review(message, now, (tp.partition, r.offset)))

    def _observe(self, outcomes: list[Outcome]) -> None:
        if outcomes:
            self._changed = True  # a waiting review may have left the join
            observe(self.metrics, outcomes)

    async def _dead_letter(self, record: Record, why: Rejection) -> None:
        log.warning(
            "invalid review %s[%d]@%d: %s",
            record.topic,
            record.partition,
            record.offset,
            why.message,
        )
        self.metrics.reviews.labels("invalid").inc()
        out = dead_letter_message(record, why, self.settings.dead_letter_topic, self._budget)
        await self._producer.send_and_wait(
            out.topic, out.value, key=out.key, headers=list(out.headers)
        )


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The partitions of a topic ``consumer`` subscribes to."""
    await consumer.topics()  # fills the metadata partitions_for_topic reads
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


def _record_time(timestamp: int | None, now: float) -> float:
    """A record's time in seconds, never later than ``now`` (Kafka's "none" is -1)."""
    return min(now, timestamp / 1000) if timestamp and timestamp > 0 else now


def run_reviews(settings: Settings) -> None:
    """The `modfleet reviews run` process: metrics on web_port, the join until SIGTERM/SIGINT."""
    import signal

    metrics = Metrics()
    start_http_server(settings.web_port, settings.web_host, registry=metrics.registry)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await LiveJoin(settings, metrics).run(stop)
        except KafkaConnectionError as exc:
            # The orchestrator restarts the process; say why in one line, not a traceback.
            raise RecoverableError(f"cannot reach the brokers at {settings.broker_url}") from exc

    asyncio.run(main())
