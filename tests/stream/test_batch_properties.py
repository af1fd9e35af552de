"""Arbitrary records through the whole batch path: nothing escapes, one outcome each, all fit.

Every byte of a record is the producer's to choose: key, value, headers and timestamp. Whatever
they are, ``Pipeline.process`` returns exactly one outcome per record (a decision, maybe with its
escalation, or a dead-letter), each valid against its schema and within the byte budget.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

import orjson
import pytest
from hostile import hostile_records
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from posts import encode, post

from modfleet.cache import connect_cache
from modfleet.contracts.schemas import violations
from modfleet.emit import Budget, Outbound, Topics
from modfleet.emit.budget import record_overhead
from modfleet.inference.embedded import EmbeddedClassifier
from modfleet.ingest import Record
from modfleet.metrics import Metrics
from modfleet.policy import load_policy
from modfleet.settings import Settings
from modfleet.stream import Pipeline, Retry

# A small budget, so that the cuts are exercised by records hypothesis can build quickly.
BUDGET = Budget(record_bytes=96 * 1024, escalation_text_bytes=16 * 1024)
SCHEMA_OF = {
    "decision": "decision",
    "shadow_decision": "decision",
    "escalation": "escalation",
    "dead_letter": "dead_letter",
}

keys = st.one_of(
    st.none(),
    st.binary(max_size=64),
    st.builds(lambda n: b"k" * n, st.integers(1_000, 200_000)),
)
header_names = st.one_of(
    st.sampled_from(["traceparent", "tracestate", "content-type"]), st.text(max_size=20)
)
header_values = st.one_of(
    st.binary(max_size=80),
    st.just(b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01"),
    st.builds(lambda n: b"x" * n, st.integers(1_000, 300_000)),
)
headers = st.lists(st.tuples(header_names, header_values), max_size=6).map(tuple)
timestamps = st.one_of(
    st.none(),
    st.floats(allow_nan=False),
    st.sampled_from([253402300800.0, 1e300, -1e12, 0.0, 1.7e9]),
)
values = st.one_of(
    st.none(),
    hostile_records(),
    st.builds(
        lambda n, text: encode(post(f"big-{n}", text * n)),
        st.integers(1, 30_000),
        st.sampled_from(["you idiot ", "ok ", "é💣"]),
    ),
)


@pytest.fixture(scope="module")
def make_pipeline(redis_url: str) -> Callable[[], Pipeline]:
    base = Settings(redis_url=redis_url)
    policy, classifier = load_policy(base.policy_path), EmbeddedClassifier()

    def make() -> Pipeline:
        metrics = Metrics()
        return Pipeline(
            policy,
            classifier,
            connect_cache(base, metrics),
            metrics,
            Topics.from_settings(base),
            Retry(2, 0.01),
            BUDGET,
            max_post_bytes=200_000,
        )

    return make


def check(records: list[Record], out: list[Outbound]) -> None:
    settled: collections.Counter[int] = collections.Counter()
    for message in out:
        assert message.value is not None
        weight = len(message.value) + record_overhead(message.key, message.headers)
        assert weight <= BUDGET.record_bytes, (message.kind, weight)
        body = orjson.loads(message.value)
        assert violations(SCHEMA_OF[message.kind], body) == [], (message.kind, body)
        if message.kind in ("decision", "dead_letter"):
            assert message.source is not None
            settled[message.source.offset] += 1
    assert settled == collections.Counter(r.offset for r in records)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batch=st.lists(st.tuples(keys, values, headers, timestamps), min_size=1, max_size=8))
def test_any_records_get_one_outcome_each_and_every_outcome_fits(
    make_pipeline: Callable[[], Pipeline],
    batch: list[tuple[bytes | None, bytes | None, tuple[tuple[str, bytes], ...], float | None]],
) -> None:
    records = [
        Record("posts", 0, offset, stamp, key, value, heads)
        for offset, (key, value, heads, stamp) in enumerate(batch)
    ]
    pipeline = make_pipeline()

    async def run() -> list[Outbound]:
        try:
            return await pipeline.process(records)
        finally:
            await pipeline.cache.close()

    check(records, asyncio.run(run()))
