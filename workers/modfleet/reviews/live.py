"""`modfleet reviews run`: the live join, exported as Prometheus metrics.

A process of its own beside the stream workers, so that they stay as they are. It reads every
decision still on the decisions topic (no consumer group: each replica holds the whole join) and
the reviews through a consumer group of its own, so a restart does not count old reviews again.
Decisions are caught up before reviews are read; a review that still overtakes its decision waits
in the join's bounded map. An invalid review is logged and dead-lettered with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError
from prometheus_client import start_http_server

from modfleet.emit.dead_letter import dead_letter_message
from modfleet.errors import RecoverableError
from modfleet.ingest.decode import Record, Rejection
from modfleet.kafka import client_options
from modfleet.metrics import Metrics
from modfleet.reviews.join import Join, Outcome, Rejected, parse
from modfleet.settings import Settings

log = logging.getLogger(__name__)
_POLL_MS = 200
_RESTORE_IDLE_S = 5.0  # a committed offset past the log's end would otherwise wait forever


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
        self._decisions = AIOKafkaConsumer(
            settings.decisions_topic,
            **options,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self._reviews = AIOKafkaConsumer(
            settings.reviews_topic,
            **options,
            group_id=f"{settings.consumer_group}-reviews",
            auto_offset_reset="earliest",
            session_timeout_ms=int(settings.broker_session_timeout_s * 1000),
            heartbeat_interval_ms=int(settings.broker_heartbeat_interval_s * 1000),
        )
        self._producer = AIOKafkaProducer(**options, acks="all")

    async def run(self, stop: asyncio.Event) -> None:
        await self._decisions.start()
        try:
            await self._producer.start()
            await self._reviews.start()
            while await self._read_decisions() and not stop.is_set():
                pass  # catch up first, so old reviews find their decisions
            await self._restore()
            while not stop.is_set():
                await self._read_decisions()
                await self._read_reviews()
                observe(self.metrics, self.join.expire(time.time()))
                self.metrics.review_join_decisions.set(len(self.join))
        finally:
            await self._reviews.stop()
            await self._producer.stop()
            await self._decisions.stop()

    async def _restore(self) -> None:
        """Re-read, without counting, the reviews the group counted before this process began,
        so that a later review of one of their decisions is a duplicate, as without a restart."""
        topic = self.settings.reviews_topic
        await self._reviews.topics()  # fills the metadata partitions_for_topic reads
        tps = [TopicPartition(topic, p) for p in self._reviews.partitions_for_topic(topic) or ()]
        ends = {tp: await self._reviews.committed(tp) for tp in tps}
        ends = {tp: end for tp, end in ends.items() if end}
        if not ends:
            return
        reader = AIOKafkaConsumer(
            **client_options(self.settings), group_id=None, enable_auto_commit=False
        )
        await reader.start()
        try:
            reader.assign(list(ends))
            await reader.seek_to_beginning(*ends)
            await self._restore_from(reader, ends)
        finally:
            await reader.stop()

    async def _restore_from(
        self, reader: AIOKafkaConsumer, ends: dict[TopicPartition, int]
    ) -> None:
        idle_since = time.monotonic()
        while ends and time.monotonic() - idle_since < _RESTORE_IDLE_S:
            batches = await reader.getmany(*ends, timeout_ms=_POLL_MS, max_records=5000)
            for tp, records in batches.items():
                idle_since = time.monotonic()
                for r in records:
                    if r.offset < ends.get(tp, 0):
                        with contextlib.suppress(Rejected):
                            self.join.restore(parse("review", r.value))
                if tp in ends and await reader.position(tp) >= ends[tp]:
                    del ends[tp]

    async def _read_decisions(self) -> int:
        batches = await self._decisions.getmany(timeout_ms=_POLL_MS, max_records=5000)
        seen = 0
        now = time.time()
        for records in batches.values():
            for r in records:
                seen += 1
                try:
                    message = parse("decision", r.value)
                except Rejected as exc:
                    log.warning("skipping decision at offset %d: %s", r.offset, exc)
                    continue
                # Aged by when it was decided, so a restart does not hold week-old decisions
                # for another full age limit.
                at = min(now, r.timestamp / 1000) if r.timestamp and r.timestamp > 0 else now
                observe(self.metrics, self.join.add_decision(message, at))
        return seen

    async def _read_reviews(self) -> None:
        batches = await self._reviews.getmany(timeout_ms=_POLL_MS, max_records=1000)
        now = time.time()
        for tp, records in batches.items():
            for r in records:
                try:
                    message = parse("review", r.value)
                except Rejected as exc:
                    stamp = r.timestamp / 1000 if r.timestamp and r.timestamp > 0 else None
                    record = Record(tp.topic, tp.partition, r.offset, stamp, r.key, r.value)
                    await self._dead_letter(record, exc)
                    continue
                observe(self.metrics, self.join.add_review(message, now))

    async def _dead_letter(self, record: Record, exc: Rejected) -> None:
        log.warning(
            "invalid review %s[%d]@%d: %s", record.topic, record.partition, record.offset, exc
        )
        self.metrics.reviews.labels("invalid").inc()
        why = Rejection(exc.code, str(exc), exc.field)
        out = dead_letter_message(record, why, self.settings.dead_letter_topic)
        await self._producer.send_and_wait(
            out.topic, out.value, key=out.key, headers=list(out.headers)
        )


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
