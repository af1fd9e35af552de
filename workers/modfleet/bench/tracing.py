"""(f) in process: where a post's time goes, stage by stage, and what tracing costs.

``Pipeline.process`` on the bench's batches, without faust or the broker: its own stages
(validate, cache lookup, inference, policy, cache write) timed on cold batches (new texts, so
the model runs) and on the same batches again (every post a cache hit), so that "our cost" in
(c) and (d) is attributed by measurement. The all-hits pass is tracing off; the same batches
again with every post traced are tracing on, on a warm cache either way (so the model does not
drown the difference), with spans handed to a batch processor whose exporter drops them:
what is measured is what the worker pays to record and queue its spans, not the network.
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

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
from modfleet.telemetry.tracing import BatchTrace


@dataclass(frozen=True)
class TracingCost:
    posts: int
    off_us: float  # per post, tracing off
    on_us: float  # per post, every post sampled
    # Per post, by the pipeline's own stage names; "other" is process() outside its stages.
    cold_stages_us: dict[str, float] = field(default_factory=dict)  # new texts: the model runs
    hit_stages_us: dict[str, float] = field(default_factory=dict)  # the same again: all hits

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
    cold = await _stage_times(pipeline, batches)  # also warms the cache and the code paths
    hit = await _stage_times(pipeline, batches)  # all hits, tracing off: the "off" of (f)
    off = sum(hit.values())
    processor = BatchSpanProcessor(_Dropped(), max_queue_size=len(values) * 10)
    traced = setup_tracing(settings.model_copy(update={"otel_sample_ratio": 1.0}), processor)
    on = await _timed(pipeline, batches, traced)
    traced.shutdown()
    await pipeline.cache.close()
    per_post = 1e6 / len(values)
    return TracingCost(
        len(values),
        off * per_post,
        on * per_post,
        {k: v * per_post for k, v in cold.items()},
        {k: v * per_post for k, v in hit.items()},
    )


class _Timed(BatchTrace):
    """A batch trace that times its stages without a tracer: the pipeline's own stage marks."""

    def __init__(self, seconds: collections.defaultdict[str, float]) -> None:
        super().__init__(Tracing(None))
        self.seconds = seconds

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start


async def _stage_times(pipeline: Pipeline, batches: list[list[Record]]) -> dict[str, float]:
    """Seconds in each stage of ``Pipeline.process`` over the batches, and "other" for the
    rest of it (message sizing, the task switches between stages)."""
    seconds: collections.defaultdict[str, float] = collections.defaultdict(float)
    started = time.perf_counter()
    for batch in batches:
        await pipeline.process(batch, _Timed(seconds))
    seconds["other"] = (time.perf_counter() - started) - sum(seconds.values())
    return dict(seconds)


async def _timed(pipeline: Pipeline, batches: list[list[Record]], tracing: Tracing) -> float:
    started = time.perf_counter()
    for batch in batches:
        trace = tracing.batch()
        await pipeline.process(batch, trace)
        with trace.stage("emit"):
            pass
        trace.finish()
    return time.perf_counter() - started
