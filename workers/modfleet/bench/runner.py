"""One benchmark run: an embedded stack, the same posts through five stages, then paced load.

Order matters, so that each stage measures one thing: (a) forwards the posts topic's backlog;
(d) runs a fresh worker over the same backlog with an empty cache, which also fills the cache;
(b) forwards the backlog through faust, then takes the latency baseline at half of (d)'s rate;
(c) runs another fresh worker (own consumer group and output topics) over the backlog, now all
hits, and then the paced latency run (and the soak) with new, unique posts; (e) runs last,
alone on the machine.

Every rate is first-to-last output of a backlog that was on the broker before the stage
started, so start-up and the group join are never part of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import redis
from pydantic import SecretStr

from modfleet.bench import corpus
from modfleet.bench.kafka_io import aiokafka_passthrough, produce, read_back
from modfleet.bench.load import Paced, paced_run
from modfleet.bench.processes import (
    Child,
    RedisProxy,
    faust_passthrough,
    get_json,
    prometheus_totals,
    redis_proxy,
    rss_kib,
    wait_until,
)
from modfleet.bench.report import (
    BenchResult,
    Latency,
    RedisTrips,
    Soak,
    Stage,
    describe_machine,
    load_average,
)
from modfleet.contracts.admin import create_topics
from modfleet.inference import create_classifier
from modfleet.normalise import normalise
from modfleet.policy import load_policy
from modfleet.settings import Settings
from modfleet.stack.dev import stack_settings, worker_process
from modfleet.stack.services import LocalBroker, LocalRedis, free_port

_PARTITIONS = 12  # the catalogue's, for the posts and decisions topics
# Posts of the faust passthrough's latency run: on a topic of their own, so that the worker
# stages, which read the posts topic, never see them.
_BASELINE_TOPIC = "bench.b.latency"


@dataclass(frozen=True)
class BenchOptions:
    posts: int = 20_000
    latency_s: float = 12.0
    soak_minutes: float = 0.0
    stage_timeout_s: float = 240.0


@dataclass(frozen=True)
class _Stack:
    settings: Settings  # posts topic, broker, the Redis proxy
    broker: LocalBroker
    redis: redis.Redis
    proxy: RedisProxy
    logs: Path


def run_bench(options: BenchOptions, base: Settings) -> BenchResult:
    started = time.monotonic()
    config = {
        "posts": options.posts,
        "batch_max": base.batch_max,
        "batch_within_s": base.batch_within_s,
        "partitions": _PARTITIONS,
        "latency_s": options.latency_s,
        "soak_minutes": options.soak_minutes,
    }
    result = BenchResult(config, describe_machine())
    texts = corpus.texts(options.posts)
    clock = _Clock(result.timings_s)
    with _stack(base) as stack:
        clock.lap("start broker, Redis, proxy")
        asyncio.run(_fill(stack.settings, corpus.posts(texts, "bench")))
        clock.lap("create topics, produce posts")
        result.stages["a"] = _stage_a(stack, options)
        clock.lap("(a)")
        result.stages["d"], result.redis["d"] = _stage_d(stack, options)
        clock.lap("(d)")
        half = result.rate("d") / 2  # the pace of the latency runs and the soak
        paced = half if options.latency_s > 0 else 0.0
        result.stages["b"], baseline = _stage_b(stack, options, paced)
        if baseline is not None:
            result.latency["faust_passthrough"] = baseline
        clock.lap("(b) and its latency baseline")
        _stage_c_and_load(stack, options, result, half)
        clock.lap("(c), latency and soak")
    result.stages["e"] = asyncio.run(_stage_e(texts, base))
    clock.lap("(e)")
    result.machine["load_after"] = load_average()
    result.wall_s = time.monotonic() - started
    return result


class _Clock:
    """Wall time of each part of the run, for the 5-minute budget."""

    def __init__(self, laps: dict[str, float]) -> None:
        self.laps = laps
        self.last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = round(now - self.last, 2)
        self.last = now


@contextlib.contextmanager
def _stack(base: Settings) -> Iterator[_Stack]:
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(LocalBroker())
        local_redis = stack.enter_context(LocalRedis())
        proxy = stack.enter_context(redis_proxy(local_redis.port))
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="modfleet-bench-")))
        # faust keeps a data directory per app, by default in the working directory; the
        # children inherit this (faust's own setting) and leave nothing behind.
        stack.enter_context(_environ("APP_DATADIR", str(logs / "faust-data")))
        settings = stack_settings(broker, local_redis, base).model_copy(
            update={"posts_topic": "bench.posts", "redis_url": SecretStr(proxy.url)}
        )
        client = redis.Redis.from_url(local_redis.url)
        stack.callback(client.close)
        yield _Stack(settings, broker, client, proxy, logs)


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def _phase(stack: _Stack, name: str) -> Settings:
    """Settings of one stage: its own consumer group, output topics and web port."""
    return _phase_names(stack.settings, name).model_copy(
        update={"consumer_group": f"bench-{name}", "web_port": free_port()}
    )


async def _fill(settings: Settings, values: list[bytes]) -> None:
    await create_topics(settings, replication_factor=1)
    baseline = settings.model_copy(update={"posts_topic": _BASELINE_TOPIC})
    await create_topics(baseline, replication_factor=1)
    for name in ("a", "b", "b-latency", "c", "d"):
        await create_topics(_phase_names(settings, name), replication_factor=1)
    await produce(settings, settings.posts_topic, values)


def _phase_names(settings: Settings, name: str) -> Settings:
    return settings.model_copy(
        update={
            "decisions_topic": f"bench.{name}.decisions",
            "escalations_topic": f"bench.{name}.escalations",
            "dead_letter_topic": f"bench.{name}.dead-letter",
        }
    )


def _stage_a(stack: _Stack, options: BenchOptions) -> Stage:
    s = _phase(stack, "a")
    n, timeout = options.posts, options.stage_timeout_s
    asyncio.run(aiokafka_passthrough(s, s.posts_topic, s.decisions_topic, n, s.batch_max, timeout))
    out = asyncio.run(read_back(s, s.decisions_topic, n, timeout))
    return Stage(len(out.timestamps_ms), out.span_s, out.rate())


def _stage_b(stack: _Stack, options: BenchOptions, half: float) -> tuple[Stage, Latency | None]:
    """The faust passthrough's rate; then its latency at the worker's pace, as a baseline.

    The latency run has a passthrough of its own on a topic of its own: the worker stages that
    follow read the posts topic, and Tansu answers a fetch that includes empty partitions only
    after its wait, so one passthrough reading both topics would be slower at both.
    """
    s = _phase(stack, "b")
    with _passthrough(stack, s, s.posts_topic) as child:
        wait_until(_forwarded(child), options.posts, child, options.stage_timeout_s, "passthrough")
    out = asyncio.run(read_back(s, s.decisions_topic, options.posts, options.stage_timeout_s))
    stage = Stage(len(out.timestamps_ms), out.span_s, out.rate())
    if half <= 0:
        return stage, None
    s = _phase(stack, "b-latency")
    with _passthrough(stack, s, _BASELINE_TOPIC) as child:
        # A warm-up post, forwarded once the group is joined: the paced run must not wait for it.
        posts = corpus.endless("base")
        asyncio.run(produce(s, _BASELINE_TOPIC, [next(posts)]))
        wait_until(_forwarded(child), 1, child, options.stage_timeout_s, "passthrough warm-up")
        rss = functools.partial(rss_kib, child.proc.pid)
        baseline = s.model_copy(update={"posts_topic": _BASELINE_TOPIC})
        run = paced_run(
            baseline, posts, "base", half, options.latency_s, rss, output_topic=s.decisions_topic
        )
        return stage, _latency(asyncio.run(run))


@contextlib.contextmanager
def _passthrough(stack: _Stack, s: Settings, source: str) -> Iterator[Child]:
    log = stack.logs / f"{s.consumer_group}.log"
    with faust_passthrough(
        s.broker_url, s.consumer_group, source, s.decisions_topic, s.batch_max,
        s.batch_within_s, log,
    ) as child:  # fmt: skip
        yield child


def _forwarded(child: Child) -> Callable[[], float]:
    return lambda: float(str(get_json(f"{child.base_url}/count")["forwarded"]))


def _stage_d(stack: _Stack, options: BenchOptions) -> tuple[Stage, RedisTrips]:
    s = _phase(stack, "d")
    with _worker(stack, s, "d") as (child, before):
        return _drain(stack, s, child, before, options)


def _stage_c_and_load(
    stack: _Stack, options: BenchOptions, result: BenchResult, rate: float
) -> None:
    s = _phase(stack, "c")
    with _worker(stack, s, "c") as (child, before):
        result.stages["c"], result.redis["c"] = _drain(stack, s, child, before, options)
        if rate <= 0:
            return
        rss = functools.partial(rss_kib, child.proc.pid)
        if options.latency_s > 0:
            result.rss_kib["before"] = rss()
            paced = _paced(s, "lat", rate, options.latency_s, rss)
            result.rss_kib["after"] = rss()
            result.latency["worker"] = _latency(paced)
        if options.soak_minutes > 0:
            soak = _paced(s, "soak", rate, options.soak_minutes * 60, rss)
            result.soak = Soak(
                options.soak_minutes, soak.sent, soak.rss_kib[0][1], soak.rss_kib[-1][1],
                soak.rss_kib,
            )  # fmt: skip


@dataclass(frozen=True)
class _Before:
    """Counters read before a worker stage, so that only the stage's own work is counted."""

    proxy: dict[str, int]
    mget_calls: int


@contextlib.contextmanager
def _worker(stack: _Stack, settings: Settings, name: str) -> Iterator[tuple[Child, _Before]]:
    # Read before the worker starts: it connects to Redis with its first batch, which may come
    # before anything after its start could read them.
    before = _Before(stack.proxy.counters(), _mget_calls(stack.redis))
    log = stack.logs / f"worker-{name}.log"
    with worker_process(settings, log) as proc:
        yield Child(proc, log, f"http://{settings.web_host}:{settings.web_port}"), before


def _drain(
    stack: _Stack, s: Settings, child: Child, before: _Before, options: BenchOptions
) -> tuple[Stage, RedisTrips]:
    """Wait for a fresh worker to settle the whole backlog; its rate and Redis round trips."""

    def settled() -> float:
        m = prometheus_totals(child.base_url)
        return m.get("modfleet_decisions_total", 0) + m.get("modfleet_dead_letters_total", 0)

    what = f"worker {s.consumer_group}"
    wait_until(settled, options.posts, child, options.stage_timeout_s, what, every_s=1.0)
    metrics = prometheus_totals(child.base_url)
    trips = stack.proxy.counters()
    redis_trips = RedisTrips(
        batches=int(metrics.get("modfleet_batch_size_count", 0)),
        round_trips=trips["round_trips"] - before.proxy["round_trips"],
        upkeep_round_trips=trips["upkeep_round_trips"] - before.proxy["upkeep_round_trips"],
        commands=trips["commands"] - before.proxy["commands"],
        mget_calls=_mget_calls(stack.redis) - before.mget_calls,
    )
    decided = int(metrics.get("modfleet_decisions_total", 0))
    others = (s.escalations_topic, s.dead_letter_topic)
    out = asyncio.run(read_back(s, s.decisions_topic, decided, 60, others))
    notes = {
        "cache_hits": int(metrics.get("modfleet_cache_hits_total", 0)),
        "cache_misses": int(metrics.get("modfleet_cache_misses_total", 0)),
        "dead_letters": int(metrics.get("modfleet_dead_letters_total", 0)),
        "escalations_and_dead_letters": out.other,
        "log": child.tail()[-1500:] if decided < options.posts else "",
    }
    return Stage(len(out.timestamps_ms), out.span_s, out.rate(), notes), redis_trips


def _mget_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_mget", {}).get("calls", 0))


def _paced(s: Settings, prefix: str, rate: float, seconds: float, rss: Callable[[], int]) -> Paced:
    return asyncio.run(paced_run(s, corpus.endless(prefix), prefix, rate, seconds, rss))


def _latency(paced: Paced) -> Latency:
    return Latency(
        rate=paced.rate,
        seconds=paced.seconds,
        sent=paced.sent,
        received=len(paced.latencies_s),
        p50_ms=paced.percentile_ms(0.50),
        p99_ms=paced.percentile_ms(0.99),
        max_ms=paced.percentile_ms(1.0),
    )


async def _stage_e(texts: list[str], settings: Settings) -> Stage:
    """The model alone, on the texts the worker would hand it (normalised), batch by batch."""
    policy = load_policy(settings.policy_path)
    classifier = create_classifier(settings)
    canon = [normalise(t, policy.limits.max_text_chars).text for t in texts]
    size = settings.batch_max
    await classifier.classify(canon[:size], policy)  # loads the model; a worker does it once
    started = time.perf_counter()
    for i in range(0, len(canon), size):
        await classifier.classify(canon[i : i + size], policy)
    elapsed = time.perf_counter() - started
    await classifier.close()
    return Stage(len(canon), elapsed, len(canon) / elapsed)
