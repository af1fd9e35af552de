"""A post's trace is continued the same way whether the worker traces or not."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from modfleet.cache import connect_cache
from modfleet.emit import Topics
from modfleet.inference import Verdict
from modfleet.inference.base import Classifier
from modfleet.ingest import Record
from modfleet.metrics import Metrics
from modfleet.policy import Policy, load_policy
from modfleet.settings import Settings
from modfleet.stream import Pipeline, Retry
from modfleet.telemetry import setup_tracing

A = b"00-" + b"a" * 32 + b"-" + b"1" * 16 + b"-01"
B = b"00-" + b"b" * 32 + b"-" + b"2" * 16 + b"-01"
BAD = b"00-" + b"A" * 32 + b"-" + b"1" * 16 + b"-01"  # upper case: not W3C, so not continued
POST = orjson.dumps({"schema_version": 1, "post_id": "p", "tenant": "acme", "text": "hello"})


class Calm(Classifier):
    model_id = "calm@1"

    async def classify(self, texts: Sequence[str], policy: Policy) -> list[Verdict]:
        return [Verdict(scores={}) for _ in texts]


async def trace_of(
    headers: tuple[tuple[str, bytes], ...], traced: bool
) -> tuple[str, str | None, bytes | None]:
    """The decision's trace id, the trace id of its traceparent header and its tracestate."""
    settings = Settings(cache_enabled=False)
    metrics = Metrics()
    pipeline = Pipeline(
        load_policy(settings.policy_path),
        Calm(),
        connect_cache(settings, metrics),
        metrics,
        Topics.from_settings(settings),
        Retry(1, 0.01),
    )
    record = Record(settings.posts_topic, 0, 0, 1.7e9, b"p", POST, headers)
    if traced:
        tracing = setup_tracing(settings, SimpleSpanProcessor(InMemorySpanExporter()))
        batch = tracing.batch()
        [decision] = await pipeline.process([record], batch)
        batch.finish()
        tracing.shutdown()
    else:
        [decision] = await pipeline.process([record])
    sent = dict(decision.headers)
    # Untraced, a worker has no span of its own to put in a header of a trace it started.
    parent = sent["traceparent"].decode("ascii").split("-")[1] if "traceparent" in sent else None
    return orjson.loads(decision.value)["trace_id"], parent, sent.get("tracestate")


@pytest.mark.parametrize(
    ("headers", "continued", "state"),
    [
        ((("TraceParent", A),), "a" * 32, None),  # header names are case-insensitive
        ((("traceparent", A), ("traceparent", B)), "a" * 32, None),  # the first counts
        ((("traceparent", BAD), ("traceparent", B)), None, None),  # the first, and it is bad
        ((("traceparent", BAD),), None, None),
        ((("traceparent", A), ("TRACESTATE", b"v=1"), ("tracestate", b"w=2")), "a" * 32, b"v=1"),
        ((("traceparent", A), ("tracestate", b"v=1\r\n")), "a" * 32, None),  # not carried
    ],
)
async def test_a_trace_is_continued_alike_with_tracing_on_and_off(
    headers: tuple[tuple[str, bytes], ...], continued: str | None, state: bytes | None
) -> None:
    off_id, off_parent, off_state = await trace_of(headers, traced=False)
    on_id, on_parent, on_state = await trace_of(headers, traced=True)
    assert on_parent == on_id  # a traced worker's own span always rides on its outputs
    assert (off_state, on_state) == (state, state)
    if continued is None:
        assert off_parent is None
        assert {off_id, on_id}.isdisjoint({"a" * 32, "b" * 32})
    else:
        assert (off_id, off_parent, on_id) == (continued, continued, continued)
