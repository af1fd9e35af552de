"""Traces across Kafka hops.

The post's producer puts a W3C ``traceparent`` in the record headers; each post gets a
``process`` span under it, with one child span per pipeline stage; decisions, escalations and
dead-letters carry that span's context in their own headers. So one trace runs from the
platform's producer through the worker to the enforcement system that consumes the decision.

Stages run once per micro-batch (one Redis round trip, one inference call), so their timings
are recorded once and written as a child of every post's span when the batch is done: each
post's trace shows the wait it really had.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from modfleet.emit.budget import bounded_key
from modfleet.ingest.decode import Record
from modfleet.settings import Settings

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACE_HEADERS = ("traceparent", "tracestate")
Headers = tuple[tuple[str, bytes], ...]


class Tracing:
    """A tracer of the worker's own provider, or nothing when tracing is off."""

    def __init__(self, provider: TracerProvider | None, group: str = "") -> None:
        self.provider = provider
        self.group = group
        self.tracer = provider.get_tracer("modfleet") if provider else None

    def batch(self) -> BatchTrace:
        return BatchTrace(self)

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


def setup_tracing(settings: Settings, processor: SpanProcessor | None = None) -> Tracing:
    """Tracing per Settings; tests pass a processor (e.g. over an in-memory exporter)."""
    if not settings.otel_enabled and processor is None:
        return Tracing(None)
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.otel_service_name}),
        sampler=ParentBased(TraceIdRatioBased(settings.otel_sample_ratio)),
    )
    provider.add_span_processor(processor or BatchSpanProcessor(_otlp_exporter(settings)))
    return Tracing(provider, settings.consumer_group)


def _otlp_exporter(settings: Settings) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=settings.otel_exporter_otlp_endpoint)


def parent_context(carried: Headers) -> Context:
    """The context to continue, from the trace headers ``trace_context`` validated and chose
    (case-insensitive names, the first of each): read from the record itself, the propagator
    would pick by its own rules, and a post would continue one trace with tracing on and
    another with it off."""
    carrier = {name: value.decode("latin-1") for name, value in carried if name in _TRACE_HEADERS}
    return _PROPAGATOR.extract(carrier)


@dataclass
class _Post:
    span: Span
    headers: Headers
    trace_id: str


@dataclass
class BatchTrace:
    """Stage timings of one micro-batch and the span of each post in it."""

    tracing: Tracing
    started_ns: int = field(default_factory=time.time_ns)
    stages: list[tuple[str, int, int]] = field(default_factory=list)
    posts: list[_Post] = field(default_factory=list)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.tracing.tracer is None:
            yield
            return
        start = time.time_ns()
        try:
            yield
        finally:
            self.stages.append((name, start, time.time_ns()))

    def add_stage(self, name: str, start_ns: int, end_ns: int) -> None:
        if self.tracing.tracer is not None:
            self.stages.append((name, start_ns, end_ns))

    def post(self, record: Record, base: Headers) -> tuple[str | None, Headers]:
        """The trace id and the headers for the post's outputs (trace context injected).

        ``base`` is what ``trace_context`` made of the record's headers: the span continues
        the trace it carries, the one an untraced worker continues."""
        tracer = self.tracing.tracer
        if tracer is None:
            return None, base
        span = tracer.start_span(
            f"process {record.topic}",
            context=parent_context(base),
            kind=SpanKind.CONSUMER,
            start_time=self.started_ns,
            attributes=self._messaging(record),
        )
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        plain = tuple((k, v) for k, v in base if k.lower() not in _TRACE_HEADERS)
        headers = plain + tuple((k, v.encode("latin-1")) for k, v in carrier.items())
        trace_id = format(span.get_span_context().trace_id, "032x")
        self.posts.append(_Post(span, headers, trace_id))
        return trace_id, headers

    def finish(self) -> None:
        """Write the stage spans under every post span and end them all."""
        tracer = self.tracing.tracer
        if tracer is None:
            return
        end = time.time_ns()
        for post in self.posts:
            if not post.span.is_recording():  # sampled out: its children would be too
                continue
            ctx = trace.set_span_in_context(post.span)
            for name, start, stop in self.stages:
                tracer.start_span(name, context=ctx, start_time=start).end(end_time=stop)
            post.span.end(end_time=end)

    def _messaging(self, record: Record) -> dict[str, str | int]:
        # OpenTelemetry semantic conventions for messaging (Kafka).
        attributes: dict[str, str | int] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
            "messaging.consumer.group.name": self.tracing.group,
        }
        # Bounded as the outputs' keys are: a producer's megabyte key must not ride on every
        # span of its post, in memory until exported and in the collector after.
        key = bounded_key(record.key)
        if key is not None:
            attributes["messaging.kafka.message.key"] = key.decode("utf-8", "replace")
        return attributes
