"""One benchmark run: an embedded stack, the same posts through five stages, then paced load.

The order is chosen so that each stage measures one thing. (a) forwards the posts topic's
backlog with aiokafka. Then, ``repeat`` times: (d) a fresh worker with an empty cache (which
fills it), (b) the faust passthrough, (c) another fresh worker, now all hits; each keeps its
best rate, because this machine's other work only ever slows a stage down. The last (c) worker
then takes the paced latency run and the soak with new, unique posts, after the faust
passthrough's latency run and soak at the same pace and length as baselines. (e) runs last,
alone. Each stage's CPU per post is measured, not inferred: from /proc for the children and
the broker, ``process_time`` for what runs in the benchmark itself (see cpu.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import redis
import yaml
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from modfleet.bench import corpus, stages
from modfleet.bench.cores import Cores, affinity, pin, this_process_on
from modfleet.bench.kafka_io import delete_topics, produce
from modfleet.bench.processes import redis_proxy, rss_kib
from modfleet.bench.report import BenchResult, RedisTrips, Stage, describe_machine, load_average
from modfleet.bench.tracing import tracing_cost
from modfleet.contracts.admin import create_topics
from modfleet.contracts.catalogue import load_catalogue
from modfleet.errors import ModfleetError
from modfleet.settings import Settings
from modfleet.stack.dev import stack_settings
from modfleet.stack.services import LocalBroker, LocalRedis

log = logging.getLogger(__name__)

_PARTITIONS = 12  # the catalogue's, for the posts and decisions topics


@dataclass(frozen=True)
class BenchOptions:
    posts: int = 20_000
    latency_s: float = 12.0
    soak_minutes: float = 0.0
    repeat: int = 2
    pace: float = 0.0  # posts/s of the paced runs; 0: half of (d)'s rate
    split_cores: bool = True  # the measured process on cores apart from the broker's and ours
    # The broker MODFLEET_BROKER_URL names (its security from MODFLEET_KAFKA_*) rather than an
    # embedded Tansu: a broker of its own for soaks that Tansu's memory storage cannot carry.
    external_broker: bool = False
    stage_timeout_s: float = 240.0
    # Posts written in HTML, read by the pack with text.format: html: what a tenant whose
    # platform writes HTML costs (the renderer's child included).
    as_html: bool = False


def run_bench(options: BenchOptions, base: Settings) -> BenchResult:
    started = time.monotonic()
    config = {
        "posts": options.posts,
        "repeat": options.repeat,
        "batch_max": base.batch_max,
        "batch_within_s": base.batch_within_s,
        "partitions": _PARTITIONS,
        "latency_s": options.latency_s,
        "soak_minutes": options.soak_minutes,
        "pace": options.pace,
        "split_cores": options.split_cores,
        "external_broker": options.external_broker,
        "html": options.as_html,
    }
    result = BenchResult(config, describe_machine())
    texts = corpus.texts(options.posts, as_html=options.as_html)
    clock = _Clock(result.timings_s)
    with contextlib.ExitStack() as held:
        if options.as_html:
            base = _reading_html(base, Path(held.enter_context(tempfile.TemporaryDirectory())))
        _run(options, base, result, texts, clock)
    result.machine["load_after"] = load_average()
    result.wall_s = time.monotonic() - started
    return result


def _reading_html(base: Settings, folder: Path) -> Settings:
    """``base`` with its pack read as the pack of a platform that writes HTML."""
    if not Path(base.policy_path).is_file():
        raise ModfleetError(f"--html copies one pack file; {base.policy_path} is not one")
    data = yaml.safe_load(Path(base.policy_path).read_text(encoding="utf-8"))
    data.pop("gate", None)  # its golden set lies beside the original
    data["text"] = {"format": "html"}
    path = folder / "html.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return base.model_copy(update={"policy_path": path})


def _run(
    options: BenchOptions, base: Settings, result: BenchResult, texts: list[str], clock: _Clock
) -> None:
    with _stack(base, options) as stack:
        result.machine["cores"] = _layout(stack)
        result.config["topic_prefix"] = stack.prefix
        if options.external_broker:
            result.machine["broker"] = f"external: {', '.join(base.bootstrap_servers)}"
        asyncio.run(_fill(stack, corpus.posts(texts, "bench")))
        clock.lap("start broker, Redis, proxy; produce posts")
        result.stages["a"] = stages.aiokafka_stage(stack)
        clock.lap("(a)")
        for i in range(options.repeat):
            _round(stack, result, i, last=i + 1 == options.repeat)
            clock.lap(f"(d), (b), (c): round {i + 1}")
        _paced_runs(stack, options, result)
        clock.lap("latency runs and soak")
        result.stages["e"] = asyncio.run(stages.model_stage(texts, base))
        clock.lap("(e)")
        # Texts of their own: the stages above left theirs in the cache, and (f) times a cold
        # pass (the model runs) before the warm ones.
        fresh = corpus.texts(min(options.posts, 10_240), run="trace", as_html=options.as_html)
        tracing_values = corpus.posts(fresh, "trace")
        result.tracing = asyncio.run(tracing_cost(tracing_values, stack.settings))
        clock.lap("(f) tracing cost")


def _round(stack: stages.Stack, result: BenchResult, i: int, *, last: bool) -> None:
    if i > 0:
        stack.redis.flushall()  # (d) is the 0%-hit stage: it needs an empty cache again
    _keep(result, "d", *stages.worker_stage(stack, f"d{i}"))
    _keep(result, "b", stages.faust_stage(stack, f"b{i}"))
    if not last:  # the last (c) runs in _paced_runs, whose worker it warms up
        _keep(result, "c", *stages.worker_stage(stack, f"c{i}"))


def _paced_runs(stack: stages.Stack, options: BenchOptions, result: BenchResult) -> None:
    """The last (c), then on the same worker the latency run and the soak at half of (d)."""
    rate = options.pace or result.rate("d") / 2
    if options.latency_s > 0 and rate > 0:
        paced = stages.faust_paced(stack, rate, options.latency_s)
        result.latency["faust_passthrough"] = stages.latency(paced)
    if options.soak_minutes > 0 and rate > 0:
        # Before the worker's, as its latency run is: Tansu keeps every record in memory, so
        # if a fuller broker is slower, that slows the worker's soak, never the baseline's, and
        # the goal errs against us rather than for us.
        paced = stages.faust_paced(stack, rate, options.soak_minutes * 60, soak=True)
        result.soak_faust = stages.soak(paced, options.soak_minutes)
    name = f"c{options.repeat - 1}"
    s = stages.phase(stack, name)
    with stages.worker(stack, s, name) as (child, before):
        _keep(result, "c", *stages.drain(stack, s, child, before))
        if options.latency_s > 0 and rate > 0:
            result.rss_kib["before"] = rss_kib(child.proc.pid)
            run = stages.paced(stack, s, "lat", rate, options.latency_s, child)
            result.rss_kib["after"] = rss_kib(child.proc.pid)
            result.latency["worker"] = stages.latency(run)
        if options.soak_minutes > 0 and rate > 0:
            run = stages.paced(stack, s, "soak", rate, options.soak_minutes * 60, child)
            result.soak = stages.soak(run, options.soak_minutes)


def _keep(result: BenchResult, key: str, stage: Stage, trips: RedisTrips | None = None) -> None:
    """Keep a stage's best rate, and every rate in ``runs``; Redis trips: the worst round."""
    old = result.stages.get(key)
    best = stage if old is None or stage.rate > old.rate else old
    best.runs = [*(old.runs if old else []), stage.rate]
    result.stages[key] = best
    if trips is not None:
        seen = result.redis.get(key)
        result.redis[key] = trips if seen is None or trips.per_batch > seen.per_batch else seen


@contextlib.contextmanager
def _stack(base: Settings, options: BenchOptions) -> Iterator[stages.Stack]:
    with contextlib.ExitStack() as stack:
        broker = None if options.external_broker else stack.enter_context(LocalBroker())
        local_redis = stack.enter_context(LocalRedis())
        proxy = stack.enter_context(redis_proxy(local_redis.port))
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="modfleet-bench-")))
        prefix = "bench" if broker is not None else f"bench.{secrets.token_hex(4)}"
        settings = stack_settings(broker, local_redis, base).model_copy(
            update={
                **(_topics_of_run(prefix, base) if broker is None else {}),
                "posts_topic": f"{prefix}.posts",
                "redis_url": SecretStr(proxy.url),
            }
        )
        if broker is None:
            stack.callback(_delete_topics, settings, prefix)
        client = redis.Redis.from_url(local_redis.url)
        stack.callback(client.close)
        pids = {"redis": local_redis.pid, "redis_proxy": proxy.pid}
        if broker is not None:
            pids["broker"] = broker.pid
        known = {name: pid for name, pid in pids.items() if pid is not None}
        cores = Cores.split(os.sched_getaffinity(0)) if options.split_cores else None
        if cores is not None:
            _split(cores, known.values(), stack)
        timeout_s = options.stage_timeout_s
        yield stages.Stack(
            settings,
            client,
            proxy,
            logs,
            options.posts,
            timeout_s,
            known,
            cores,
            prefix,
            as_html=options.as_html,
        )


def _topics_of_run(prefix: str, base: Settings) -> dict[str, str]:
    """On a broker of one's own, every catalogue topic under the run's prefix (the stages
    rename the outputs again), so that the run writes only topics it deletes at the end."""
    fields = (spec.settings_field for spec in load_catalogue())
    return {f: f"{prefix}.{getattr(base, f)}" for f in fields}


def _delete_topics(settings: Settings, prefix: str) -> None:
    try:
        deleted = asyncio.run(delete_topics(settings, f"{prefix}."))
    except KafkaError as exc:  # the run's own error, if any, is the one to see
        log.warning("could not delete the run's topics %s.* (%s)", prefix, type(exc).__name__)
    else:
        log.info("deleted the run's %d topics on the external broker", len(deleted))


def _split(cores: Cores, others: Iterable[int], stack: contextlib.ExitStack) -> None:
    """This process (the load generator; its children inherit the mask until placed), the
    broker, Redis and the proxy on ``cores.rest``; this process's own mask back at the end."""
    stack.enter_context(this_process_on(cores.rest))
    for pid in others:
        pin(pid, cores.rest)


def _layout(stack: stages.Stack) -> dict[str, object]:
    """The split as asked for and each helper process's CPUs as the kernel has them."""
    return {
        "split": stack.cores.describe() if stack.cores else "shared: every process on every CPU",
        **{name: sorted(affinity(pid)) for name, pid in stack.pids.items()},
    }


async def _fill(stack: stages.Stack, values: list[bytes]) -> None:
    settings = stack.settings
    await create_topics(settings, replication_factor=1)
    for soak in (False, True):
        baseline = settings.model_copy(update={"posts_topic": stack.baseline_topic(soak)})
        await create_topics(baseline, replication_factor=1)
    await produce(settings, settings.posts_topic, values)


class _Clock:
    """Wall time of each part of the run, for the 5-minute budget."""

    def __init__(self, laps: dict[str, float]) -> None:
        self.laps = laps
        self.last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = round(now - self.last, 2)
        self.last = now
