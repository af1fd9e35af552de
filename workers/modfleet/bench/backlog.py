"""``modfleet bench backlog``: a worker's peak memory on a backlog of large posts.

A backlog of posts as large as the posts topic lets through (1 MiB by default) is produced on
the embedded stack before one worker starts; the worker's VmRSS is sampled every 50 ms until
every post has an outcome. What a worker holds must follow its settings (``stream_buffer_bytes``,
``held_post_bytes``), not the size of the posts a producer chose: this is the number to hold the
chart's memory limit against (docs/benchmarks.md).

``--crowd N`` runs N busy loops on the worker's CPU. A production broker serves large posts far
faster than a worker decides them, so buffers fill; the embedded broker on a small machine serves
them about as fast as a worker alone decides them, and nothing piles up without a crowd.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from modfleet.bench import corpus
from modfleet.bench.cores import pin
from modfleet.bench.cpu import process_cpu_s
from modfleet.bench.processes import rss_kib
from modfleet.contracts.admin import create_topics
from modfleet.replay import collect_outcomes, produce_posts
from modfleet.settings import Settings
from modfleet.stack.dev import maybe_redis, stack_settings, worker_process
from modfleet.stack.services import LocalBroker

_SAMPLE_S = 0.05


@dataclass(frozen=True)
class Backlog:
    posts: int
    post_bytes: int
    crowd: int
    settled: int
    wall_s: float
    worker_cpu_s: float
    first_rss_mib: float
    peak_rss_mib: float
    stream_buffer_bytes: int
    held_post_bytes: int


def backlog_posts(count: int, size: int) -> list[bytes]:
    """``count`` valid posts of about ``size`` bytes, each text distinct (no cache hits)."""
    bodies = corpus.texts(count, run="backlog")
    filler = " ".join(bodies)
    filler *= size // len(filler) + 1
    return corpus.posts([f"{b} {filler[: max(size - 200 - len(b), 1)]}" for b in bodies], "b")


def measure(posts: int, post_bytes: int, crowd: int, base: Settings) -> Backlog:
    values = backlog_posts(posts, post_bytes)
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(LocalBroker())
        settings = stack_settings(broker, maybe_redis(stack, base), base)
        asyncio.run(create_topics(settings, replication_factor=1))
        asyncio.run(produce_posts(settings, values))
        log = Path(broker.log_path).with_name("worker.log")
        worker = stack.enter_context(worker_process(settings, log))
        stack.enter_context(_crowded(worker.pid, crowd))
        rss = _Sampler(worker.pid)
        started = time.monotonic()
        with rss:
            outcomes = asyncio.run(collect_outcomes(settings, posts, timeout_s=1800))
        wall = time.monotonic() - started
        cpu = process_cpu_s(worker.pid) or 0.0
    return Backlog(
        posts,
        post_bytes,
        crowd,
        outcomes.settled,
        wall,
        cpu,
        rss.first_kib / 1024,
        rss.peak_kib / 1024,
        settings.stream_buffer_bytes,
        settings.held_post_bytes,
    )


class _Sampler:
    """The worker's VmRSS every 50 ms, on a thread, while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.first_kib = self.peak_kib = rss_kib(pid)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(_SAMPLE_S):
            with contextlib.suppress(OSError):
                self.peak_kib = max(self.peak_kib, rss_kib(self.pid))


@contextlib.contextmanager
def _crowded(pid: int, crowd: int) -> Iterator[None]:
    """``crowd`` busy loops sharing the worker's one CPU, stopped on exit."""
    if not crowd:
        yield
        return
    cpu = frozenset({min(os.sched_getaffinity(0))})
    pin(pid, cpu)
    loops = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(crowd)
    ]
    try:
        for loop in loops:
            pin(loop.pid, cpu)
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n / 1024:g} KiB"


def table(b: Backlog) -> str:
    share = f", sharing its CPU with {b.crowd} busy loops" if b.crowd else ""
    return "\n".join(
        [
            f"modfleet bench backlog: {b.posts:,} posts of {b.post_bytes:,} bytes produced "
            f"before one worker started{share}",
            f"stream_buffer_bytes {_size(b.stream_buffer_bytes)}, "
            f"held_post_bytes {_size(b.held_post_bytes)}",
            f"outcomes         {b.settled:,} of {b.posts:,} in {b.wall_s:.1f} s "
            f"({b.settled / b.wall_s:,.0f} posts/s; worker CPU {b.worker_cpu_s:.1f} s)",
            f"worker RSS       {b.first_rss_mib:,.0f} MiB at its start, "
            f"peak {b.peak_rss_mib:,.0f} MiB (VmRSS every 50 ms)",
        ]
    )
