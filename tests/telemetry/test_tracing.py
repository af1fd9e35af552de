"""One trace from the platform's producer span to the decision, on a real broker."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from posts import encode, post

from modfleet.contracts.admin import create_topics
from modfleet.ingest import Record
from modfleet.replay import collect_outcomes
from modfleet.settings import Settings
from modfleet.stream.app import StreamWorker
from modfleet.telemetry import setup_tracing

pytestmark = pytest.mark.integration

STAGES = {"validate", "cache lookup", "inference", "cache write", "policy", "emit"}


async def test_decision_continues_the_trace_of_the_post(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    await create_topics(settings, replication_factor=1, partitions=1)
    exporter = InMemorySpanExporter()
    tracing = setup_tracing(settings, SimpleSpanProcessor(exporter))
    worker = StreamWorker(settings, tracing=tracing)

    # The platform's side: a producer span whose context rides in the record headers.
    platform = tracing.provider.get_tracer("platform")  # type: ignore[union-attr]
    with platform.start_as_current_span("send posts", kind=SpanKind.PRODUCER) as producer:
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
    headers = tuple((k, v.encode()) for k, v in carrier.items())
    record = Record(
        settings.posts_topic, 0, 0, 1_700_000_000.0, b"t-1",
        encode(post("t-1", "you are an idiot")), headers,
    )  # fmt: skip

    await worker.app.producer.start()
    try:
        await worker.handle_batch([record])
    finally:
        await worker.app.producer.stop()
    outcomes = await collect_outcomes(settings, 1, timeout_s=30)

    trace_id = format(producer.get_span_context().trace_id, "032x")
    [decision] = outcomes.decisions
    assert decision["trace_id"] == trace_id
    [sent_headers] = outcomes.headers["decisions"]
    traceparent = dict(sent_headers)["traceparent"].decode()
    assert traceparent.split("-")[1] == trace_id

    spans = {s.name: s for s in exporter.get_finished_spans()}
    process = spans[f"process {settings.posts_topic}"]
    assert process.parent is not None
    assert process.parent.span_id == producer.get_span_context().span_id
    assert process.attributes is not None
    assert process.attributes["messaging.system"] == "kafka"
    assert traceparent.split("-")[2] == format(process.context.span_id, "016x")
    children = {
        s.name for s in spans.values() if s.parent and s.parent.span_id == process.context.span_id
    }
    assert children >= STAGES
    assert all(s.context.trace_id == producer.get_span_context().trace_id for s in spans.values())


def test_a_huge_record_key_rides_on_its_span_bounded() -> None:
    # The key is the producer's to choose: a megabyte of it must not sit on every span of the
    # post until export, nor reach the collector.
    exporter = InMemorySpanExporter()
    tracing = setup_tracing(Settings(), SimpleSpanProcessor(exporter))
    batch = tracing.batch()
    for key in (b"k" * 1_000_000, b"post-7"):
        batch.post(Record("posts", 0, 0, 1.7e9, key, b"{}"), ())
    batch.finish()
    keys = [
        s.attributes["messaging.kafka.message.key"]
        for s in exporter.get_finished_spans()
        if s.attributes and "messaging.kafka.message.key" in s.attributes
    ]
    assert keys == ["sha256:" + hashlib.sha256(b"k" * 1_000_000).hexdigest(), "post-7"]
