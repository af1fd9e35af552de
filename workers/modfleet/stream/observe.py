"""Per-batch measurements that need the consumer: batch wait, end-to-end latency, lag."""

from __future__ import annotations

import time
from collections.abc import Sequence

import faust
from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from modfleet.ingest.decode import Record
from modfleet.metrics import Metrics
from modfleet.telemetry.tracing import BatchTrace


class BatchObserver:
    def __init__(self, metrics: Metrics, app: faust.App) -> None:
        self.metrics = metrics
        self.app = app
        self._idle_since_ns: int | None = None

    def batch_started(self, trace: BatchTrace) -> None:
        """How long the agent waited for this batch to fill since the last one was done."""
        if self._idle_since_ns is not None:
            waited = trace.started_ns - self._idle_since_ns
            self.metrics.batch_wait.observe(waited / 1e9)
            trace.add_stage("batch wait", self._idle_since_ns, trace.started_ns)

    def batch_done(self, records: Sequence[Record]) -> None:
        now = time.time()
        for record in records:
            if record.timestamp:
                self.metrics.end_to_end.observe(max(0.0, now - record.timestamp))
        self._lag(records)
        self._idle_since_ns = time.time_ns()

    def _lag(self, records: Sequence[Record]) -> None:
        last: dict[tuple[str, int], int] = {}
        for r in records:
            last[(r.topic, r.partition)] = max(r.offset, last.get((r.topic, r.partition), -1))
        for (topic, partition), offset in last.items():
            try:
                highwater = self.app.consumer.highwater(TP(topic, partition))
            except ConsumerNotStarted:  # a batch handled outside a running worker (tests, tools)
                return
            if highwater is not None:
                lag = max(0, int(highwater) - offset - 1)
                self.metrics.consumer_lag.labels(topic=topic, partition=str(partition)).set(lag)
