"""The benchmark's stages, each on the posts topic's backlog of the one embedded stack.

Every rate is first-to-last output of a backlog that was on the broker before the stage
started, so start-up and the group join are never part of it. Each stage has its own consumer
group and output topics (``bench.<name>.*``), so that it reads the whole backlog afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from modfleet.bench import corpus
from modfleet.bench.cores import Cores
from modfleet.bench.cpu import Cpu, Sampler, between, window_cpu
from modfleet.bench.kafka_io import aiokafka_passthrough, produce, read_back
from modfleet.bench.load import Paced, paced_run
from modfleet.bench.processes import (
    Child,
    RedisProxy,
    faust_passthrough,
    get_json,
    prometheus_totals,
    rss_kib,
    wait_until,
)
from modfleet.bench.report import Latency, RedisTrips, Soak, Stage
from modfleet.bench.windows import window_s_for
from modfleet.contracts.admin import create_topics
from modfleet.inference import create_classifier
from modfleet.normalise import normalise
from modfleet.policy import load_policy
from modfleet.settings import Settings
from modfleet.stack.dev import worker_process
from modfleet.stack.services import free_port

# A paced run's CPU is reported per window (a second or more): sampled less often than a
# stage's, so that a 10-minute soak's samples stay few and the sampler costs next to nothing.
_PACED_CPU_EVERY_S = 0.25


@dataclass(frozen=True)
class Stack:
    settings: Settings  # the broker, the posts topic, Redis through the proxy
    redis: redis.Redis  # straight to Redis, for INFO and FLUSHALL
    proxy: RedisProxy
    logs: Path
    posts: int  # in the backlog
    timeout_s: float  # for any one stage
    pids: dict[str, int] = field(default_factory=dict)  # broker, Redis, proxy: their CPU
    cores: Cores | None = None  # the measured process's cores and the rest's, when split
    # Of every topic and group the run makes: "bench" on the embedded broker, which is new
    # each run; with a run id on a broker of one's own, so that runs never read each other's.
    prefix: str = "bench"
    as_html: bool = False  # posts written in HTML, under a pack that reads HTML (--html)

    def baseline_topic(self, soak: bool) -> str:
        """Posts of the faust passthrough's latency run or soak: each on a topic of its own, so
        that the worker stages, which read the posts topic, never see them, and the soak's
        passthrough never starts behind on the latency run's posts."""
        return f"{self.prefix}.b.{'soak' if soak else 'latency'}"

    @property
    def rest_cpus(self) -> frozenset[int]:
        """The broker's, Redis's and the load generator's CPUs when split; none when shared."""
        return self.cores.rest if self.cores else frozenset()


def phase(stack: Stack, name: str) -> Settings:
    """Settings of one stage, its output topics created: own group, topics and web port."""
    s = stack.settings.model_copy(
        update={
            "consumer_group": f"{stack.prefix}-{name}",
            "decisions_topic": f"{stack.prefix}.{name}.decisions",
            "escalations_topic": f"{stack.prefix}.{name}.escalations",
            "dead_letter_topic": f"{stack.prefix}.{name}.dead-letter",
            "web_port": free_port(),
            # As the chart runs a worker: its journal's writes are part of what a batch costs.
            "crash_journal_path": stack.logs / f"{name}.crash-journal",
        }
    )
    asyncio.run(create_topics(s, replication_factor=1))
    return s


def aiokafka_stage(stack: Stack) -> Stage:
    """(a) consume a batch, produce it on, wait for the acks: no faust, no work."""
    s, n, timeout = phase(stack, "a"), stack.posts, stack.timeout_s
    with Sampler(stack.pids, own=True) as cpu:
        passthrough = aiokafka_passthrough(
            s, s.posts_topic, s.decisions_topic, n, s.batch_max, timeout
        )
        asyncio.run(passthrough)
    out = asyncio.run(read_back(s, s.decisions_topic, n, timeout))
    used = window_cpu(cpu.samples, out.timestamps_ms, "the benchmark process: aiokafka")
    return Stage(len(out.timestamps_ms), out.span_s, out.rate(), cpu=used)


def faust_stage(stack: Stack, name: str) -> Stage:
    """(b) the faust passthrough over the backlog."""
    s = phase(stack, name)
    # The backlog is there before the child starts; its CPU is cut to the span of its outputs
    # afterwards (see cpu.window_cpu), which leaves its start and join out.
    with (
        _passthrough(stack, s, s.posts_topic) as child,
        Sampler({"stage": child.proc.pid, **stack.pids}) as cpu,
    ):
        wait_until(_forwarded(child), stack.posts, child, stack.timeout_s, "faust passthrough")
    out = asyncio.run(read_back(s, s.decisions_topic, stack.posts, stack.timeout_s))
    used = window_cpu(cpu.samples, out.timestamps_ms, "faust passthrough child")
    notes = {"cpus": list(child.cpus)}
    return Stage(len(out.timestamps_ms), out.span_s, out.rate(), notes, cpu=used)


def faust_paced(stack: Stack, rate: float, seconds: float, *, soak: bool = False) -> Paced:
    """The faust passthrough at the worker's pace: what the broker and faust cost.

    It reads a topic of its own: Tansu answers a fetch that includes empty partitions only after
    its fetch wait, so a passthrough that also read the drained posts topic would be slower.
    """
    topic, name = stack.baseline_topic(soak), "b-soak" if soak else "b-latency"
    s = phase(stack, name)
    with _passthrough(stack, s, topic) as child:
        # A warm-up post, forwarded once the group is joined: the paced run must not wait for it.
        posts = corpus.endless(name, as_html=stack.as_html)
        asyncio.run(produce(s, topic, [next(posts)]))
        wait_until(_forwarded(child), 1, child, stack.timeout_s, "passthrough warm-up")
        rss = functools.partial(rss_kib, child.proc.pid)
        paced = paced_run(
            s.model_copy(update={"posts_topic": topic}),
            posts, name, rate, seconds, rss, output_topic=s.decisions_topic,
        )  # fmt: skip
        pids = {"stage": child.proc.pid, **stack.pids}
        with Sampler(pids, every_s=_PACED_CPU_EVERY_S, busy=stack.rest_cpus) as cpu:
            run = asyncio.run(paced)
        run.cpu_samples = cpu.samples
        return run


def worker_stage(stack: Stack, name: str) -> tuple[Stage, RedisTrips]:
    """(c) or (d): a fresh worker over the backlog; hits or misses depend on the cache."""
    s = phase(stack, name)
    with worker(stack, s, name) as (child, before):
        return drain(stack, s, child, before)


@dataclass(frozen=True)
class Before:
    """Counters read before a worker stage, so that only the stage's own work is counted."""

    proxy: dict[str, int]
    mget_calls: int


@contextlib.contextmanager
def worker(stack: Stack, s: Settings, name: str) -> Iterator[tuple[Child, Before]]:
    # Read before the worker starts: it connects to Redis with its first batch, which may come
    # before anything after its start could read them.
    before = Before(stack.proxy.counters(), _mget_calls(stack.redis))
    log = stack.logs / f"worker-{name}.log"
    with worker_process(s, log) as proc:
        child = Child(proc, log, f"http://{s.web_host}:{s.web_port}")
        yield child.placed(stack.cores), before


def drain(stack: Stack, s: Settings, child: Child, before: Before) -> tuple[Stage, RedisTrips]:
    """Wait for a fresh worker to settle the whole backlog; its rate and Redis round trips."""

    def settled() -> float:
        m = prometheus_totals(child.base_url)
        return m.get("modfleet_decisions_total", 0) + m.get("modfleet_dead_letters_total", 0)

    what = f"worker {s.consumer_group}"
    # Sampled from here, while the worker joins; only the span of its outputs is kept (see
    # cpu.window_cpu): the join and the first batch (which loads the model) are before it.
    # Until the decisions are read back: the counter may move before the last output is sent.
    sampler = Sampler({"stage": child.proc.pid, **stack.pids})
    with sampler:
        wait_until(settled, stack.posts, child, stack.timeout_s, what, every_s=1.0)
        metrics = prometheus_totals(child.base_url)
        decided = int(metrics.get("modfleet_decisions_total", 0))
        others = (s.escalations_topic, s.dead_letter_topic)
        out = asyncio.run(read_back(s, s.decisions_topic, decided, 60, others))
    trips = stack.proxy.counters()
    redis_trips = RedisTrips(
        batches=int(metrics.get("modfleet_batch_size_count", 0)),
        round_trips=trips["round_trips"] - before.proxy["round_trips"],
        upkeep_round_trips=trips["upkeep_round_trips"] - before.proxy["upkeep_round_trips"],
        commands=trips["commands"] - before.proxy["commands"],
        mget_calls=_mget_calls(stack.redis) - before.mget_calls,
    )
    notes = {
        "cache_hits": int(metrics.get("modfleet_cache_hits_total", 0)),
        "cache_misses": int(metrics.get("modfleet_cache_misses_total", 0)),
        # A batch whose Redis call ran past the cache budget (a loaded machine) decided without
        # it: these say why a stage's MGETs fall short of its batches.
        "cache_errors": int(metrics.get("modfleet_cache_errors_total", 0)),
        "cache_skipped": int(metrics.get("modfleet_cache_skipped_total", 0)),
        "dead_letters": int(metrics.get("modfleet_dead_letters_total", 0)),
        "escalations_and_dead_letters": out.other,
        "log": child.tail()[-1500:] if decided < stack.posts else "",
        "cpus": list(child.cpus),
    }
    used = window_cpu(sampler.samples, out.timestamps_ms, "worker child")
    stage = Stage(len(out.timestamps_ms), out.span_s, out.rate(), notes, cpu=used)
    return stage, redis_trips


def paced(
    stack: Stack, s: Settings, prefix: str, rate: float, seconds: float, child: Child
) -> Paced:
    """New, unique posts at ``rate`` onto the worker's posts topic; their decisions' latency."""
    rss = functools.partial(rss_kib, child.proc.pid)
    pids = {"stage": child.proc.pid, **stack.pids}
    with Sampler(pids, every_s=_PACED_CPU_EVERY_S, busy=stack.rest_cpus) as cpu:
        posts = corpus.endless(prefix, as_html=stack.as_html)
        run = asyncio.run(paced_run(s, posts, prefix, rate, seconds, rss))
    run.cpu_samples = cpu.samples
    return run


def soak(paced_soak: Paced, minutes: float) -> Soak:
    samples = paced_soak.rss_kib
    start, end = samples[0][1], samples[-1][1]
    return Soak(minutes, paced_soak.sent, start, end, samples, latency(paced_soak))


def latency(run: Paced) -> Latency:
    window_s = window_s_for(run.seconds)
    start, seconds = run.started_at, run.seconds
    used = between(run.cpu_samples, start, start + seconds) if run.cpu_samples else {}
    return Latency(
        rate=run.rate,
        seconds=run.seconds,
        sent=run.sent,
        received=len(run.latencies_s),
        p50_ms=run.percentile_ms(0.50),
        p99_ms=run.percentile_ms(0.99),
        max_ms=run.percentile_ms(1.0),
        window_s=window_s,
        windows=run.windows(window_s),
        cpu_pct={k: round(100 * s / seconds, 1) for k, s in used.items()},
    )


async def model_stage(texts: list[str], settings: Settings) -> Stage:
    """(e) the model alone, on the texts the worker would hand it (normalised), batch by batch."""
    policy = load_policy(settings.policy_path)
    loading = time.perf_counter()
    classifier = create_classifier(settings)  # the embedded model loads here (goal: under 3 s)
    load_s = time.perf_counter() - loading
    limits = policy.limits
    canon = [normalise(t, limits.max_text_chars, 1, policy.text.format).text for t in texts]
    size = settings.batch_max
    await classifier.classify(canon[:size], policy)  # loads the model; a worker does it once
    started, cpu_started = time.perf_counter(), time.process_time()
    for i in range(0, len(canon), size):
        await classifier.classify(canon[i : i + size], policy)
    elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    await classifier.close()
    notes = {"load_s": round(load_s, 3), "model": classifier.model_id, "batch": size}
    cpu = Cpu(len(canon), elapsed, {"stage": round(1e6 * cpu_s / len(canon), 1)}, "in process")
    return Stage(len(canon), elapsed, len(canon) / elapsed, notes=notes, cpu=cpu)


@contextlib.contextmanager
def _passthrough(stack: Stack, s: Settings, source: str) -> Iterator[Child]:
    log = stack.logs / f"{s.consumer_group}.log"
    with faust_passthrough(s, source, log, stack.cores) as child:
        yield child


def _forwarded(child: Child) -> Callable[[], float]:
    return lambda: float(str(get_json(f"{child.base_url}/count")["forwarded"]))


def _mget_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_mget", {}).get("calls", 0))
