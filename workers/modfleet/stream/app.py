"""The faust app: one agent that turns micro-batches of posts into decisions.

At-least-once, with acks in our hands: the agent takes batches that are not acked as they are
taken (``stream/take.py``) and acks a batch's events only after every record in it has a
delivered outcome (a decision, maybe with an escalation, or a dead-letter). faust commits only
offsets that were acked, in offset order. Anything unexpected ends in an exit without acking:
the batch is redelivered to whichever worker takes the partitions over, never acked in silence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import faust
from faust.types import EventT

from modfleet.cache import VerdictCache, connect_cache
from modfleet.emit.budget import Budget
from modfleet.emit.messages import Outbound, Topics
from modfleet.errors import FatalError
from modfleet.inference import Classifier, create_classifier
from modfleet.inference.routing import Backends
from modfleet.ingest.decode import Record, Rejection, UnreadRecord
from modfleet.metrics import Metrics
from modfleet.policy import Policy
from modfleet.policy.packs import PolicySet, load_policy_set
from modfleet.settings import Settings
from modfleet.stream.crash_share import SharedCrashes
from modfleet.stream.deliver import count_delivered, deliver, exit_unacked
from modfleet.stream.faust_app import faust_app
from modfleet.stream.held import HeldGate, HeldPosts
from modfleet.stream.infer import BackendDown, Retry
from modfleet.stream.inflight import InFlight, Turn, Work
from modfleet.stream.journal import CrashJournal
from modfleet.stream.observe import BatchObserver
from modfleet.stream.pages import Liveness, add_pages
from modfleet.stream.pipeline import Pipeline
from modfleet.stream.reload import PolicyReloader
from modfleet.stream.take import batches, behind
from modfleet.telemetry.otlp_metrics import start_otlp_metrics
from modfleet.telemetry.tracing import BatchTrace, Tracing, setup_tracing

log = logging.getLogger(__name__)

_HOLD_CAP_S = 5.0  # longest pause between tries of a held batch while the model is down
_DIED_ON = (
    "a worker died while it read this post alone (or delivered its outcome), after one had "
    "died with it in its batch (a native crash, an out-of-memory kill or a hang): not read again"
)


class StreamWorker:
    """Owns the faust app, the pipeline and the parts the pipeline is built from."""

    def __init__(
        self,
        settings: Settings,
        *,
        policy: Policy | None = None,
        classifier: Classifier | None = None,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.policies = (
            PolicySet.single(policy) if policy else load_policy_set(settings.policy_path)
        )
        self.backends = (
            Backends.fixed(classifier) if classifier else Backends.from_settings(settings)
        )
        self.cache: VerdictCache = connect_cache(settings, self.metrics)
        retry = Retry(
            settings.classify_attempts, settings.retry_backoff_s, settings.classify_timeout_s
        )
        topics = Topics.from_settings(settings)
        self.pipeline = Pipeline(
            self.policies,
            self.backends,
            self.cache,
            self.metrics,
            topics,
            retry,
            Budget.from_settings(settings),
            settings.max_post_bytes,
            fallbacks=lambda name: create_classifier(
                settings.model_copy(update={"classifier_backend": name, "classifier_plugin": None})
            ),
        )
        self.pipeline.check(self.policies.all())
        self.liveness = Liveness()
        self.journal = CrashJournal(settings.crash_journal_path)
        self.shared_crashes = SharedCrashes.from_settings(settings)
        self._assigned_anew = True  # read what the fleet died of before the next batch
        self.reloader = PolicyReloader(settings.policy_path, self.pipeline, self.metrics)
        self.tracing = tracing or setup_tracing(settings)
        self.meter_provider = start_otlp_metrics(settings, self.metrics)
        self.app = self._build_app()
        self.observer = BatchObserver(self.metrics, self.app)
        # mode's stubs want a positional-only sender; faust passes it positionally.
        self.app.on_partitions_assigned.connect(self._assigned)  # type: ignore[arg-type]
        self.app.on_partitions_revoked.connect(self._revoked)  # type: ignore[arg-type]

    def _build_app(self) -> faust.App:
        s = self.settings
        app = faust_app(s)
        posts = app.topic(s.posts_topic, key_type=bytes, value_type=bytes)
        app.agent(posts, name="moderate")(self._moderate)
        app.task(self.cache.run_probe)  # so that modfleet_cache_up is right from the start
        if self.policies.fingerprint:  # loaded from files, so there is something to watch
            app.timer(s.policy_reload_interval_s)(self.reloader.check)
        add_pages(app, lambda: self.pipeline.policies, self.metrics, self.liveness)
        return app

    async def _moderate(self, stream: faust.StreamT[bytes]) -> None:
        s = self.settings
        flight = InFlight(s.batches_in_flight)
        gate = HeldGate(HeldPosts(s.held_post_bytes), stream)
        # Before the processor batches() adds: a post waits here, outside the batch in hand.
        stream.add_processor(gate)
        self.liveness.agent_running = True
        try:
            await self.shared_crashes.publish(self.journal.learned)
            lag = behind(self.app.consumer)
            # Posts held at the gate cannot join the batch, however many are behind them.
            taken = batches(
                stream,
                s.batch_max,
                s.batch_within_s,
                s.batch_backlog_within_s,
                lambda events: 0 if gate.shut else lag(events),
            )
            async for events in taken:
                if self._assigned_anew:
                    self._assigned_anew = False
                    self.journal.merge(await self.shared_crashes.fetch())
                records = [_record(e) for e in events]
                if self.journal.suspected(records):
                    # A worker died with some of these in hand: nothing else may be in flight
                    # while they are read, so that a death now is theirs alone.
                    await flight.alone(self._settler(stream, events, records, gate, alone=True))
                else:
                    await flight.start(self._settler(stream, events, records, gate))
        except asyncio.CancelledError:
            # On shutdown faust cancels the agent: finish the batches in hand, so that what is
            # committed at the stop has been decided and nothing is decided twice.
            self.journal.stopping()
            await flight.drain(s.shutdown_grace_s)
            raise
        except Exception as exc:
            log.critical("the agent failed", exc_info=True)
            exit_unacked(f"the agent failed ({type(exc).__name__})")
        finally:
            self.liveness.agent_running = False
        if not self.app.should_stop:
            # A stream that ends while the app runs leaves a worker that holds its partitions
            # and decides nothing: exit, so that the group rebalances and the work moves on.
            exit_unacked("the agent's stream ended while the worker was running")

    def _settler(
        self,
        stream: faust.StreamT[bytes],
        events: Sequence[EventT[bytes]],
        records: Sequence[Record],
        gate: HeldGate,
        *,
        alone: bool = False,
    ) -> Work:
        async def settle(turn: Turn) -> None:
            """Decide and deliver the batch, then ack it: acks follow delivery, never precede
            it, and delivery follows the batch taken before this one."""
            mark = self.journal.begin(records)  # before any of it is read
            await self.handle_batch(records, turn, alone=alone)
            await _ack(stream, events)
            self.journal.done(mark)
            self.metrics.batch_bytes.observe(gate.release(events))

        return settle

    async def handle_batch(
        self, records: Sequence[Record], turn: Turn | None = None, *, alone: bool = False
    ) -> None:
        """Decide the batch and deliver every outcome (after the batches before it in ``turn``'s
        order); returns only when all are delivered. ``alone``: a post at a time, each noted in
        the crash journal while it is read and its outcome delivered."""
        trace = self.tracing.batch()
        self.observer.batch_started(trace)
        writes: list[asyncio.Task[None]] = []
        if alone:  # nothing else is in flight: its posts deliver as they are read
            await _turn(turn, trace)
            delivered = await self._one_by_one(records, trace)
        else:
            outbound = await self._held(partial(self._attempts, records, trace, writes))
            await _turn(turn, trace)
            with trace.stage("emit"):
                delivered = await self._deliver(outbound)
        if turn is not None:
            turn.delivered()
        with trace.stage("cache write"):
            # Off the decisions' path, under the delivery: done before the batch is acked, so
            # that a post decided and acked is a cache hit for the batches after it.
            await asyncio.gather(*writes)
        count_delivered(self.metrics, delivered, len(records))
        trace.finish()
        self.observer.batch_done(records)

    async def _held(self, attempt: Callable[[], Awaitable[list[Outbound]]]) -> list[Outbound]:
        """``attempt``'s outcomes; while the model is down, the same attempt again and again."""
        outage = 0
        while True:
            try:
                outbound = await attempt()
            except BackendDown as exc:
                outage = await self._hold(outage, exc)
                continue
            if outage:
                self._model_back(outage)
            return outbound

    async def _hold(self, waited: int, exc: BackendDown) -> int:
        """Hold the batch in hand, take no more records and say not-ready, until the model is
        back: an outage slows the fleet down, it does not empty it into the dead-letter topic.

        Holding is the pause: the agent takes no further batch, faust's stream buffer fills and
        its flow control stops fetching, while heartbeats keep the group membership. (faust's
        ``pause_partitions`` is not used: records already fetched for a paused partition are
        dropped by its fetcher, and they would not come back until a rebalance.)"""
        if self.liveness.down != exc.part:  # the first try, or another part down since
            log.error("%s: holding the batch and pausing consumption until it answers", exc)
            self.liveness.down = exc.part
            self._show_down(exc.waits_for)
        await asyncio.sleep(min(_HOLD_CAP_S, self.settings.retry_backoff_s * 2 ** min(waited, 10)))
        return waited + 1

    def _model_back(self, waited: int) -> None:
        log.warning(
            "%s answers again after %d tries; resuming consumption", self.liveness.down, waited
        )
        self.liveness.down = None
        self._show_down(None)

    def _show_down(self, waits_for: str | None) -> None:
        for part, gauge in self.metrics.down.items():
            gauge.set(1 if part == waits_for else 0)

    async def _attempts(
        self, records: Sequence[Record], trace: BatchTrace, writes: list[asyncio.Task[None]]
    ) -> list[Outbound]:
        retry = self.pipeline.retry
        for attempt in range(retry.attempts):
            try:
                return await self.pipeline.process(records, trace, writes)
            except (FatalError, BackendDown):
                raise
            except Exception as exc:  # noqa: BLE001 - retried, then each record on its own
                # Its text may quote a post: the log names the type only.
                log.warning(
                    "processing a batch failed (attempt %d: %s)", attempt + 1, type(exc).__name__
                )
                await asyncio.sleep(retry.delay(attempt))
        return await self.pipeline.process_isolated(records, trace, writes)

    async def _one_by_one(self, records: Sequence[Record], trace: BatchTrace) -> list[Outbound]:
        """Each record read, delivered and cached by itself, noted in the journal all the
        while: a worker that dies on one, reading it or delivering what it made, blames that
        one, and the next run dead-letters it unread. A model outage holds the post in hand,
        not the batch from its first post, so that no outcome is delivered twice."""
        self.metrics.read_alone.inc(len(records))
        delivered: list[Outbound] = []
        for record in records:
            if self.journal.culprit(record):
                refused = self.pipeline.refuse(record, Rejection("internal_error", _DIED_ON))
                delivered.extend(await self._deliver([refused]))
                continue
            with self.journal.alone(record):
                writes: list[asyncio.Task[None]] = []
                read = partial(self.pipeline.process_isolated, [record], trace, writes)
                delivered.extend(await self._deliver(await self._held(read)))
                await asyncio.gather(*writes)
        return delivered

    async def _deliver(self, outbound: Sequence[Outbound]) -> list[Outbound]:
        s = self.settings
        stand_in = self.pipeline.undeliverable
        return await deliver(self.app, outbound, stand_in, s.emit_attempts, s.retry_backoff_s)

    def _assigned(self, sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        # faust sends the signal as send(assigned): the partitions now this worker's.
        self.liveness.joined = True
        self._assigned_anew = True
        self.observer.keep_lag_of(set(args[0]) if args else set())

    def _revoked(self, sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        self.observer.drop_lag_of(set(args[0]) if args else set())

    def close_telemetry(self) -> None:
        """Flush spans and metrics still buffered for export."""
        self.tracing.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


async def _turn(turn: Turn | None, trace: BatchTrace) -> None:
    if turn is not None:
        with trace.stage("delivery turn"):  # the batch taken before this one delivers first
            await turn.wait()


async def _ack(stream: faust.StreamT[bytes], events: Sequence[EventT[bytes]]) -> None:
    for event in events:
        await stream.ack(event)


def _record(event: EventT[bytes]) -> Record:
    m = event.message
    unread: Any = m.checksum
    if m.value is None and type(unread) is UnreadRecord:
        # An offset of a batch the fetch refused to inflate (stream/inflate.py): the fetch made
        # this record, rejection and all. Off the wire, checksum is None or a legacy CRC.
        return unread
    raw = m.headers
    headers: tuple[tuple[str, bytes], ...] = ()
    if raw:
        pairs: Iterable[tuple[str, Any]] = raw.items() if isinstance(raw, Mapping) else raw
        headers = tuple((str(k), _as_bytes(v)) for k, v in pairs)
    # Kafka's "no timestamp" is -1; a producer may also pick any other number (NaN included).
    raw_stamp = m.timestamp
    stamp = (
        raw_stamp
        if (type(raw_stamp) is float or type(raw_stamp) is int) and raw_stamp > 0
        else None
    )
    key, value = m.key, m.value
    return Record(
        m.topic,
        m.partition,
        m.offset,
        stamp,
        key if key is None or type(key) is bytes else _as_bytes(key),
        value if value is None or type(value) is bytes else _as_bytes(value),
        headers,
    )


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return b"" if value is None else str(value).encode()
