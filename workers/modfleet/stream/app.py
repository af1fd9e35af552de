"""The faust app: one agent that turns micro-batches of posts into decisions.

At-least-once: faust's ``take_events()`` acks a batch as soon as the loop body returns or
raises, so the body never raises. Every record leaves with a decision or a dead-letter, and the
body waits until the broker has acknowledged all of them before it returns. When even that
cannot be done, the process exits without acking, and the batch is redelivered to whichever
worker takes the partition over.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import faust
from faust.types import EventT

from modfleet.cache import VerdictCache, connect_cache
from modfleet.emit.messages import PRODUCER_MAX_REQUEST, Outbound, Topics
from modfleet.inference import Classifier, create_classifier
from modfleet.ingest.decode import Record
from modfleet.kafka import faust_credentials
from modfleet.metrics import Metrics
from modfleet.policy import Policy
from modfleet.policy.packs import PolicySet, load_policy_set
from modfleet.settings import Settings
from modfleet.stream.infer import Retry
from modfleet.stream.observe import BatchObserver
from modfleet.stream.pipeline import Pipeline
from modfleet.stream.reload import PolicyReloader
from modfleet.telemetry.otlp_metrics import start_otlp_metrics
from modfleet.telemetry.tracing import BatchTrace, Tracing, setup_tracing

log = logging.getLogger(__name__)

# os._exit status when output cannot be delivered: EX_TEMPFAIL, "try again later".
_EXIT_UNDELIVERABLE = 75
_EMIT_BACKOFF_CAP_S = 5.0


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
        self.classifier = classifier or create_classifier(settings)
        self.cache: VerdictCache = connect_cache(settings, self.metrics)
        retry = Retry(
            settings.classify_attempts, settings.retry_backoff_s, settings.classify_timeout_s
        )
        topics = Topics.from_settings(settings)
        self.pipeline = Pipeline(
            self.policies, self.classifier, self.cache, self.metrics, topics, retry
        )
        self.reloader = PolicyReloader(settings.policy_path, self.pipeline, self.metrics)
        self.tracing = tracing or setup_tracing(settings)
        self.meter_provider = start_otlp_metrics(settings, self.metrics)
        self.app = self._build_app()
        self.observer = BatchObserver(self.metrics, self.app)

    def _build_app(self) -> faust.App:
        s = self.settings
        app = faust.App(
            s.consumer_group,
            broker=s.broker_url,
            broker_credentials=faust_credentials(s),
            broker_session_timeout=s.broker_session_timeout_s,
            broker_heartbeat_interval=s.broker_heartbeat_interval_s,
            store="memory://",
            # faust writes a small data folder even with in-memory tables: keep it off the
            # working directory (read-only in the Helm chart) and out of checkouts.
            datadir=str(Path(tempfile.gettempdir()) / f"modfleet-{s.consumer_group}"),
            autodiscover=False,
            # Topics come from the catalogue (topic-init job or `modfleet topics create`); a
            # worker must never create one with the wrong partition count by accident.
            topic_allow_declare=False,
            topic_disable_leader=True,
            consumer_auto_offset_reset="earliest",
            web_enabled=True,
            web_bind=s.web_host,
            web_host=s.web_host,
            web_port=s.web_port,
            producer_max_request_size=PRODUCER_MAX_REQUEST,
            key_serializer="raw",
            value_serializer="raw",
        )
        posts = app.topic(s.posts_topic, key_type=bytes, value_type=bytes)
        app.agent(posts, name="moderate")(self._moderate)
        if self.policies.fingerprint:  # loaded from files, so there is something to watch
            app.timer(s.policy_reload_interval_s)(self.reloader.check)
        self._add_pages(app)
        return app

    async def _moderate(self, stream: faust.StreamT[bytes]) -> None:
        s = self.settings
        # take_events() is faust's; its type stubs lag behind and only know take().
        batches = stream.take_events(  # type: ignore[attr-defined]
            s.batch_max, within=s.batch_within_s
        )
        async for events in batches:
            await self._finish_even_if_cancelled(self.handle_batch([_record(e) for e in events]))

    async def _finish_even_if_cancelled(self, work: Coroutine[Any, Any, None]) -> None:
        """On shutdown faust cancels the agent, and take_events() then acks the batch in hand:
        finish that batch first, so that what is acked has been decided."""
        task = asyncio.ensure_future(work)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            log.info("stopping: finishing the batch in hand before it is acked")
            try:
                await asyncio.wait_for(task, self.settings.shutdown_grace_s)
            except TimeoutError:
                _exit_unacked("the batch in hand did not finish within shutdown_grace_s")
            raise

    async def handle_batch(self, records: Sequence[Record]) -> None:
        """Decide the batch and deliver every outcome; returns only when all are delivered."""
        trace = self.tracing.batch()
        self.observer.batch_started(trace)
        outbound = await self._outcomes(records, trace)
        with trace.stage("emit"):
            await self._deliver(outbound)
        trace.finish()
        self.observer.batch_done(records)

    async def _outcomes(self, records: Sequence[Record], trace: BatchTrace) -> list[Outbound]:
        retry = self.pipeline.retry
        for attempt in range(retry.attempts):
            try:
                return await self.pipeline.process(records, trace)
            except Exception as exc:
                log.exception("processing a batch failed (attempt %d)", attempt + 1)
                last = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(retry.delay(attempt))
        return self.pipeline.dead_letter_all(records, f"batch failed {retry.attempts}x: {last}")

    async def _deliver(self, outbound: Sequence[Outbound]) -> None:
        producer = self.app.producer
        for attempt in range(self.settings.emit_attempts):
            try:
                futures = [
                    await producer.send(m.topic, m.key, m.value, None, None, list(m.headers))
                    for m in outbound
                ]
                await asyncio.gather(*futures)
                return
            except Exception as exc:  # noqa: BLE001 - retried, and fatal below
                delay = min(_EMIT_BACKOFF_CAP_S, self.settings.retry_backoff_s * 2**attempt)
                log.warning("delivering %d messages failed (%s)", len(outbound), exc)
                await asyncio.sleep(delay)
        _exit_unacked(f"could not deliver a batch's output in {self.settings.emit_attempts} tries")

    def close_telemetry(self) -> None:
        """Flush spans and metrics still buffered for export."""
        self.tracing.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()

    def _add_pages(self, app: faust.App) -> None:
        # faust binds page handlers to its View class, so they must be plain functions.
        pipeline, metrics = self.pipeline, self.metrics

        async def health(web: Any, request: Any) -> Any:
            return web.json({"status": "ok", "policies": pipeline.policies.describe()})

        async def prometheus(web: Any, request: Any) -> Any:
            return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

        app.page("/health")(health)
        app.page("/metrics")(prometheus)


def _exit_unacked(why: str) -> NoReturn:
    """Stop now, without acking: the batch is redelivered to whoever takes the partitions."""
    log.critical("%s; exiting without acking the batch so that it is redelivered", why)
    logging.shutdown()
    # Any orderly exit runs take_events()' finally clause, which acks the batch.
    os._exit(_EXIT_UNDELIVERABLE)


def _record(event: EventT[bytes]) -> Record:
    m = event.message
    raw = m.headers or ()
    headers: Iterable[tuple[str, Any]] = raw.items() if isinstance(raw, Mapping) else raw
    return Record(
        topic=m.topic,
        partition=m.partition,
        offset=m.offset,
        timestamp=m.timestamp,
        key=m.key,
        value=m.value,
        headers=tuple((str(k), _as_bytes(v)) for k, v in headers),
    )


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return b"" if value is None else str(value).encode()
