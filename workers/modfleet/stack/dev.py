"""``modfleet dev``: the whole fleet on this machine, a sample replayed through it, a summary.

It starts a broker and Redis on free loopback ports, creates the catalogue's topics, starts a
stream worker as a child process (as it runs in production), replays posts, waits until every
post has an outcome, prints a summary and stops everything it started.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from modfleet.contracts.admin import create_topics
from modfleet.errors import FatalError
from modfleet.replay import Outcomes, collect_outcomes, produce_posts
from modfleet.settings import ENV_PREFIX, Settings
from modfleet.stack.services import LocalBroker, LocalRedis, free_port, redis_hint, stop_process

log = logging.getLogger(__name__)

SAMPLE_POSTS = Path(__file__).with_name("sample_posts.jsonl")
# Tansu answers a multi-partition fetch late (see stack_settings): at 1,500 ms, faust's own
# wait, p50 latency was 300 ms; at 100 ms, 60 (docs/benchmarks.md).
_TANSU_FETCH_WAIT_MS = 100
# /health answers once the agent runs: after the model, word lists, packs and the producer's
# first connection. 2-3 s on an idle two-core VM, but once past 60 s in a CI run with two test
# workers beside it. The wait only bounds a child that hangs, so it is generous; a child that
# exits is reported at once.
START_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class StackOptions:
    posts_file: Path = SAMPLE_POSTS
    timeout_s: float = 300.0
    base: Settings | None = None  # batch size, policy and the like come from here


def stack_settings(
    broker: LocalBroker | None, redis: LocalRedis | None, base: Settings
) -> Settings:
    """The base settings pointed at the local services, with group timings Tansu needs.

    Tansu holds each group join for half the session timeout, so the faust default (60 s)
    would leave a fresh worker idle for half a minute. It also leaves a fetch for several
    partitions waiting while records arrive on them, so the fetch wait is short unless set.
    Without ``broker`` the base's own broker is used as configured: its address, security and
    timings are its operator's.
    """
    overrides: dict[str, object] = {
        "web_host": "127.0.0.1",
        "web_port": free_port(),
        "cache_enabled": redis is not None and base.cache_enabled,
    }
    if broker is not None:
        overrides |= {
            "broker_url": broker.url,
            "kafka_security_protocol": "PLAINTEXT",
            "broker_session_timeout_s": 6.0,
            "broker_heartbeat_interval_s": 1.0,
        }
        if "consumer_fetch_max_wait_ms" not in base.model_fields_set:
            overrides["consumer_fetch_max_wait_ms"] = _TANSU_FETCH_WAIT_MS
    if redis is not None:
        overrides["redis_url"] = redis.url
        if base.cache_hmac_key is None:
            # A fresh secret per stack: this fleet's workers share it, nobody else knows it.
            overrides["cache_hmac_key"] = SecretStr(secrets.token_urlsafe(32))
    return Settings.model_validate({**dict(base), **overrides})


def settings_env(settings: Settings) -> dict[str, str]:
    """Settings as the MODFLEET_* environment a child worker process reads back."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        secret = getattr(settings, name)
        if hasattr(secret, "get_secret_value"):
            value = secret.get_secret_value()
        env[ENV_PREFIX + name.upper()] = str(value)
    return env


@contextlib.contextmanager
def worker_process(settings: Settings, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A ``modfleet worker`` child; SIGTERM on exit, as an orchestrator would stop it."""
    env = {**os.environ, **settings_env(settings)}
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modfleet", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_healthy(settings, proc, log_path)
        yield proc
    finally:
        stop_process(proc, timeout_s=20)


def wait_healthy(
    settings: Settings,
    proc: subprocess.Popen[bytes],
    log_path: Path,
    timeout_s: float = START_TIMEOUT_S,
) -> None:
    url = f"http://{settings.web_host}:{settings.web_port}/health"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise FatalError(f"worker exited with {proc.returncode}:\n{tail}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.2)
    tail = log_path.read_text(errors="replace")[-3000:]
    raise FatalError(f"worker did not answer {url} within {timeout_s:.0f} s:\n{tail}")


@dataclass(frozen=True)
class Fleet:
    settings: Settings  # reaches the local broker and Redis
    cached: bool  # False when no redis-server was found or the cache is disabled
    worker_log: Path


@contextlib.contextmanager
def local_fleet(base: Settings) -> Iterator[Fleet]:
    """Broker, Redis where there is one, the catalogue's topics and one worker; all stopped on
    exit. The worker answers /health, but may not own partitions yet."""
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(LocalBroker())
        redis = maybe_redis(stack, base)
        settings = stack_settings(broker, redis, base)
        asyncio.run(create_topics(settings, replication_factor=1))
        log_path = Path(broker.log_path).with_name("worker.log")
        stack.enter_context(worker_process(settings, log_path))
        yield Fleet(settings, redis is not None, log_path)


def run_stack(options: StackOptions) -> Outcomes:
    base = options.base or Settings()
    values = [line for line in options.posts_file.read_bytes().splitlines() if line.strip()]
    with local_fleet(base) as fleet:
        started = time.monotonic()
        outcomes = asyncio.run(_replay(fleet.settings, values, options.timeout_s))
        print_summary(outcomes, len(values), time.monotonic() - started, fleet.cached)
        if outcomes.settled < len(values):
            raise FatalError(
                f"only {outcomes.settled} of {len(values)} posts had an outcome; "
                f"worker log: {fleet.worker_log.read_text(errors='replace')[-3000:]}"
            )
        return outcomes


def maybe_redis(stack: contextlib.ExitStack, base: Settings) -> LocalRedis | None:
    """A local redis-server on ``stack`` when the cache is on and one is installed; else None,
    with a warning that says how to get one."""
    if not base.cache_enabled:
        return None
    if not LocalRedis.available():
        print(f"WARNING: running without the verdict cache. {redis_hint()}", file=sys.stderr)
        return None
    return stack.enter_context(LocalRedis())


async def _replay(settings: Settings, values: list[bytes], timeout_s: float) -> Outcomes:
    collector = asyncio.create_task(collect_outcomes(settings, len(values), timeout_s))
    await produce_posts(settings, values)
    return await collector


def print_summary(outcomes: Outcomes, sent: int, wall_s: float, cached: bool) -> None:
    actions = collections.Counter(d["action"] for d in outcomes.decisions)
    reasons = collections.Counter(d["reason"]["code"] for d in outcomes.dead_letters)
    hits = sum(1 for d in outcomes.decisions if d["from_cache"])
    span = (outcomes.last_at or 0) - (outcomes.first_at or 0)
    lines = [
        "modfleet embedded stack: summary",
        f"  posts sent          {sent}",
        f"  decisions           {len(outcomes.decisions)}",
        *(f"    {a:<17} {n}" for a, n in sorted(actions.items())),
        f"  escalations         {len(outcomes.escalations)}",
        f"  dead-letters        {len(outcomes.dead_letters)}",
        *(f"    {r:<17} {n}" for r, n in sorted(reasons.items())),
        f"  cache hits          {hits} ({_ratio(hits, len(outcomes.decisions))})"
        + ("" if cached else "  [cache disabled]"),
        f"  throughput          {_rate(outcomes.settled, span)} posts/s (first to last outcome)",
        f"  wall time           {wall_s:.1f} s (worker ready to last outcome)",
    ]
    print("\n".join(lines))


def _ratio(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}" if seconds > 0 else "n/a"
