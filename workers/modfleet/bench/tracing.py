"""(f) the per-post cost of tracing: Pipeline.process on the same batches, tracing off and on.

In process, on a warm cache (so the model does not drown the difference), with spans handed
to a batch processor whose exporter drops them: what is measured is what the worker pays to
record and queue its spans, not the network.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from modfleet.cache import connect_cache
from modfleet.emit import Topics
from modfleet.inference import create_classifier
from modfleet.ingest import Record
from modfleet.metrics import Metrics
from modfleet.policy import load_policy
from modfleet.settings import Settings
from modfleet.stream import Pipeline, Retry
from modfleet.telemetry import Tracing, setup_tracing


@dataclass(frozen=True)
class TracingCost:
    posts: int
    off_us: float  # per post, tracing off
    on_us: float  # per post, every post sampled

    @property
    def overhead_us(self) -> float:
        return self.on_us - self.off_us


class _Dropped(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


async def tracing_cost(values: list[bytes], settings: Settings) -> TracingCost:
    size = settings.batch_max
    batches = [
        [
            Record("bench", 0, i + j, time.time(), None, v)
            for j, v in enumerate(values[i : i + size])
        ]
        for i in range(0, len(values), size)
    ]
    metrics = Metrics()
    pipeline = Pipeline(
        load_policy(settings.policy_path),
        create_classifier(settings),
        connect_cache(settings, metrics),
        metrics,
        Topics.from_settings(settings),
        Retry(1, 0.0),
    )
    await _timed(pipeline, batches, Tracing(None))  # warm the cache and the code paths
    off = await _timed(pipeline, batches, Tracing(None))
    processor = BatchSpanProcessor(_Dropped(), max_queue_size=len(values) * 10)
    traced = setup_tracing(settings.model_copy(update={"otel_sample_ratio": 1.0}), processor)
    on = await _timed(pipeline, batches, traced)
    traced.shutdown()
    await pipeline.cache.close()
    return TracingCost(len(values), off / len(values) * 1e6, on / len(values) * 1e6)


async def _timed(pipeline: Pipeline, batches: list[list[Record]], tracing: Tracing) -> float:
    started = time.perf_counter()
    for batch in batches:
        trace = tracing.batch()
        await pipeline.process(batch, trace)
        with trace.stage("emit"):
            pass
        trace.finish()
    return time.perf_counter() - started
