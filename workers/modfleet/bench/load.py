"""Paced load on a running process: end-to-end latency, and memory over a soak.

For the worker, latency is what the decision itself reports, ``decided_at - post_produced_at``:
the post's record timestamp (set by our producer when it was handed the post) to the moment the
worker built the decision. For the faust passthrough, which forwards posts unchanged, it is the
output record's timestamp (set by faust's producer) less the post's. Both are in milliseconds.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson
from aiokafka import AIOKafkaConsumer

from modfleet.bench.kafka_io import producer
from modfleet.bench.windows import Window, percentile_ms, windows
from modfleet.kafka import client_options
from modfleet.replay import post_key
from modfleet.settings import Settings

_TICK_S = 0.005
_RSS_EVERY_S = 10.0


@dataclass
class Paced:
    """What a paced run sent, what came back and how late."""

    rate: float
    seconds: float
    sent: int = 0
    started_at: float = 0.0  # epoch seconds, when the first post was sent
    # (epoch seconds the post was sent, its latency in seconds), in order of arrival
    samples: list[tuple[float, float]] = field(default_factory=list)
    rss_kib: list[tuple[float, int]] = field(default_factory=list)  # (seconds in, RSS)
    # (epoch seconds, CPU seconds by process), when the caller sampled them (cpu.Sampler)
    cpu_samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)

    @property
    def latencies_s(self) -> list[float]:
        return [lat for _, lat in self.samples]

    def percentile_ms(self, q: float) -> float:
        return percentile_ms(self.latencies_s, q)

    def windows(self, window_s: float) -> list[Window]:
        start = self.started_at
        cpu = [(t - start, used) for t, used in self.cpu_samples]
        return windows([(sent - start, lat) for sent, lat in self.samples], window_s, cpu)


@dataclass
class _Collector:
    topic: str
    prefix: bytes
    paced: Paced
    # What a latency is: "decision", the decision's own decided_at less post_produced_at;
    # "forwarded", the output record's timestamp less the post's, matched by key; "read", the
    # post itself read back, when it was read less its timestamp (the broker alone).
    measure: Literal["decision", "forwarded", "read"]
    sent_at_ms: dict[bytes, int] = field(default_factory=dict)
    outputs: list[tuple[bytes, int]] = field(default_factory=list)
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int | None = None  # known once production is over

    def seen(self) -> int:
        return len(self.paced.samples) + len(self.outputs)

    def add(self, key: bytes | None, value: bytes | None, timestamp_ms: int) -> None:
        if self.measure == "decision":
            if value and self.prefix in value:
                self.paced.samples.append(_decision_latency(value))
        elif key is not None and key.startswith(self.prefix):
            if self.measure == "read":
                sent_s = timestamp_ms / 1000
                self.paced.samples.append((sent_s, time.time() - sent_s))
            else:
                self.outputs.append((key, timestamp_ms))

    def finish(self) -> None:
        sent = self.sent_at_ms
        self.paced.samples += [
            (sent[k] / 1000, (ts - sent[k]) / 1000) for k, ts in self.outputs if k in sent
        ]


async def paced_run(
    settings: Settings,
    posts: Iterator[bytes],
    prefix: str,
    rate: float,
    seconds: float,
    rss: Callable[[], int],
    *,
    output_topic: str | None = None,
    read_back: bool = False,
) -> Paced:
    """Send ``rate`` posts a second for ``seconds`` and wait for what they produce.

    Without ``output_topic`` the posts' decisions are awaited; with it, records forwarded there;
    with ``read_back``, the posts themselves, read in a consumer group as a worker reads them.
    """
    paced = Paced(rate, seconds)
    group: str | None = None
    if read_back:
        collector = _Collector(settings.posts_topic, f"{prefix}-".encode(), paced, "read")
        group = settings.consumer_group
    elif output_topic is None:
        collector = _Collector(
            settings.decisions_topic, f'"post_id":"{prefix}-'.encode(), paced, "decision"
        )
    else:
        collector = _Collector(output_topic, f"{prefix}-".encode(), paced, "forwarded")
    reading = asyncio.create_task(_collect(settings, collector, seconds + 120, group))
    # Older records on the topic are read past first, so that reading them competes with
    # nothing that is measured.
    caught_up = asyncio.ensure_future(collector.caught_up.wait())
    await asyncio.wait([reading, caught_up], return_when=asyncio.FIRST_COMPLETED)
    paced.rss_kib.append((0.0, rss()))
    sent_at = collector.sent_at_ms if collector.measure == "forwarded" else None
    tick = functools.partial(_sample, paced, rss)
    paced.sent, paced.started_at = await _produce(settings, posts, rate, seconds, tick, sent_at)
    collector.expected = paced.sent
    await reading
    collector.finish()
    paced.rss_kib.append((seconds, rss()))
    return paced


def _sample(paced: Paced, rss: Callable[[], int], elapsed: float) -> None:
    if elapsed - paced.rss_kib[-1][0] >= _RSS_EVERY_S:
        paced.rss_kib.append((elapsed, rss()))


async def _produce(
    settings: Settings,
    posts: Iterator[bytes],
    rate: float,
    seconds: float,
    tick: Callable[[float], None],
    sent_at_ms: dict[bytes, int] | None,
) -> tuple[int, float]:
    """Posts sent, and when the first was (epoch seconds): windows are counted from there."""
    client = producer(settings, linger_ms=1)
    await client.start()
    loop = asyncio.get_running_loop()
    acks: list[asyncio.Future[list[Any]]] = []
    sent, start, started_at = 0, loop.time(), time.time()
    try:
        while (elapsed := loop.time() - start) < seconds:
            pending = []
            for _ in range(int(elapsed * rate) + 1 - sent):
                value = next(posts)
                key, now_ms = post_key(value), int(time.time() * 1000)
                if sent_at_ms is not None and key is not None:
                    sent_at_ms[key] = now_ms
                send = client.send(settings.posts_topic, value, key=key, timestamp_ms=now_ms)
                pending.append(await send)
            sent += len(pending)
            if pending:
                # Acks are awaited in the background: waiting here would pause the pacing.
                acks.append(asyncio.gather(*pending))
            acks = _unacked(acks)
            tick(elapsed)
            await asyncio.sleep(_TICK_S)
        await asyncio.gather(*acks)
    finally:
        await client.stop()
    return sent, started_at


def _unacked(acks: list[asyncio.Future[list[Any]]]) -> list[asyncio.Future[list[Any]]]:
    """The sends still in flight; raises what a finished one raised (a soak sends millions)."""
    for done in (a for a in acks if a.done()):
        done.result()
    return [a for a in acks if not a.done()]


async def _collect(
    settings: Settings, collector: _Collector, timeout_s: float, group: str | None = None
) -> None:
    """Read ``collector``'s topic; in ``group`` with the worker's fetch wait, if one is given."""
    wait = {"fetch_max_wait_ms": settings.consumer_fetch_max_wait_ms} if group else {}
    consumer = AIOKafkaConsumer(
        collector.topic,
        **client_options(settings),
        **wait,
        group_id=group,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if collector.expected is not None and collector.seen() >= collector.expected:
                return
            batches = await consumer.getmany(timeout_ms=100, max_records=5000)
            if not batches and consumer.assignment():  # a group's consumer: once it has joined
                collector.caught_up.set()
            for records in batches.values():
                for r in records:
                    collector.add(r.key, r.value, r.timestamp)
    finally:
        collector.caught_up.set()
        await consumer.stop()


def _decision_latency(value: bytes) -> tuple[float, float]:
    """(when the post was sent, epoch seconds; its latency in seconds) from a decision."""
    decision = orjson.loads(value)
    decided = datetime.fromisoformat(decision["decided_at"])
    produced = datetime.fromisoformat(decision["post_produced_at"])
    return produced.timestamp(), (decided - produced).total_seconds()
