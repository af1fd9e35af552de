"""``modfleet bench broker``: the embedded broker alone at a steady pace, no faust, no worker.

The soaks of ``modfleet bench`` fall behind on the embedded broker; this tells the broker's own
part from ours. A producer paced as the benchmark's load generator paces (every 5 ms, what is
due) and one consumer in a group, with the worker's fetch wait, both in this process; per
window, how late each post was read (read time less its record timestamp) and the broker's
share of a core. The posts are the benchmark's, on a topic of the catalogue's 12 partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass

from modfleet.bench import corpus
from modfleet.bench.cores import Cores, cpu_list, pin, this_process_on
from modfleet.bench.cpu import Sampler
from modfleet.bench.load import Paced, paced_run
from modfleet.bench.processes import rss_kib
from modfleet.bench.stages import latency
from modfleet.bench.windows import side_by_side
from modfleet.contracts.admin import create_topics
from modfleet.settings import Settings
from modfleet.stack.dev import stack_settings
from modfleet.stack.services import LocalBroker

_PREFIX = "broker"


@dataclass(frozen=True)
class BrokerSoak:
    run: Paced
    cores: str

    def table(self) -> str:
        run, whole = self.run, latency(self.run)
        lines = [
            f"modfleet bench broker: {run.sent:,} posts at {run.rate:,.0f}/s for "
            f"{run.seconds:g} s, one consumer, no faust; {self.cores}",
            "",
        ]
        windows, overall = whole.windows, {"consumer": whole.overall()}
        lines += side_by_side("read back", {"consumer": windows}, whole.window_s, overall)
        if len(windows) >= 2:
            first, last = windows[0], windows[-1]
            lines += [
                "",
                f"first window: p99 {first.p99_ms:,.0f} ms, broker "
                f"{first.cpu_pct.get('broker', 0):.0f}% of a core; last: p99 "
                f"{last.p99_ms:,.0f} ms, broker {last.cpu_pct.get('broker', 0):.0f}%",
            ]
        return "\n".join(lines)


def soak_broker(base: Settings, rate: float, seconds: float, split_cores: bool) -> BrokerSoak:
    """Pace posts onto a fresh embedded broker and read them back in a group."""
    with _placed(LocalBroker(), split_cores) as (broker, cores):
        settings = stack_settings(broker, None, base).model_copy(
            update={"posts_topic": "bench.broker.posts", "consumer_group": "bench-broker"}
        )
        asyncio.run(create_topics(settings, replication_factor=1))
        rss = functools.partial(rss_kib, os.getpid())
        posts = corpus.endless(_PREFIX)
        pids = {"broker": broker.pid} if broker.pid is not None else {}
        with Sampler(pids, every_s=0.25) as cpu:
            run = asyncio.run(
                paced_run(settings, posts, _PREFIX, rate, seconds, rss, read_back=True)
            )
        run.cpu_samples = cpu.samples
        return BrokerSoak(run, cores)


@contextlib.contextmanager
def _placed(broker: LocalBroker, split: bool) -> Iterator[tuple[LocalBroker, str]]:
    """The broker on the benchmark's "rest" CPUs and this process on the measured ones, as in
    ``modfleet bench``: the broker has its CPUs to itself here."""
    cores = Cores.split(os.sched_getaffinity(0)) if split else None
    with broker:
        if cores is None or broker.pid is None:
            yield broker, "shared: every process on every CPU"
            return
        pin(broker.pid, cores.rest)
        with this_process_on(cores.measured):
            rest, measured = cpu_list(cores.rest), cpu_list(cores.measured)
            yield broker, f"broker on CPUs {rest}, producer and consumer on {measured}"
