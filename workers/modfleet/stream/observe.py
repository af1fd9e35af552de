"""Per-batch measurements that need the consumer: batch wait, end-to-end latency, lag."""

from __future__ import annotations

import contextlib
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
        self._owned: set[TP] | None = None  # None until the first assignment

    def batch_started(self, trace: BatchTrace) -> None:
        """How long the agent waited for this batch to fill since the last one was done."""
        # With several batches in flight the next may start before the last is done: no wait.
        if self._idle_since_ns is not None and trace.started_ns > self._idle_since_ns:
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
            if self._owned is not None and TP(topic, partition) not in self._owned:
                continue  # revoked while this batch was in hand: no longer ours to report
            try:
                highwater = self.app.consumer.highwater(TP(topic, partition))
            except ConsumerNotStarted:  # a batch handled outside a running worker (tests, tools)
                return
            if highwater is not None:
                lag = max(0, int(highwater) - offset - 1)
                self.metrics.consumer_lag.labels(topic=topic, partition=str(partition)).set(lag)

    def keep_lag_of(self, assigned: set[TP]) -> None:
        """After a rebalance, report lag only for the partitions this worker now owns."""
        previous, self._owned = self._owned or set(), set(assigned)
        self.drop_lag_of(previous - self._owned)

    def drop_lag_of(self, revoked: set[TP]) -> None:
        if self._owned is not None:
            self._owned -= revoked
        for tp in revoked:
            with contextlib.suppress(KeyError):  # KeyError: never reported, nothing to drop
                self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))
