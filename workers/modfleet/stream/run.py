"""``modfleet worker``: run one stream worker in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import sys

import faust

from modfleet.settings import Settings
from modfleet.stream.app import StreamWorker
from modfleet.telemetry import logging_config

# Tracked objects allocated, net of those freed, before a young collection. A micro-batch holds
# thousands of dicts, tuples and futures at once, so at the default 700 the count passed the
# threshold several times a batch although reference counting frees nearly all of them after:
# about 300 collections over 20,000 posts, 3 us a post of the worker's CPU (docs/benchmarks.md).
# Cyclic garbage still starts one: it is never freed, so it keeps the count growing.
_YOUNG_COLLECTION_AFTER = 20_000
# Seconds the interpreter gets to exit once the worker has stopped (its streams done, its
# offsets committed, its loop closed): it then waits only for the threads libraries leave, and
# one that never returns kept a stopped worker's pod Terminating until the kubelet's SIGKILL.
EXIT_WITHIN_S = 10.0
_REARM_S = 1.0  # how often a turning loop pushes the stall deadline back


def run_worker(settings: Settings) -> None:
    worker = StreamWorker(settings)
    stall_s = settings.loop_stall_exit_s
    if stall_s is not None:

        async def watch() -> None:  # faust passes the app to a task that takes an argument
            await watch_loop(stall_s)

        worker.app.task(watch)
    # What is built by now (modules, the model, the packs) lives as long as the process. Frozen
    # out of the collector's sight, a full collection walks what the stream holds, not the
    # several hundred thousand objects that are never garbage: in the benchmark a full
    # collection went from about 80 ms to 5 ms (docs/benchmarks.md).
    gc.collect()
    gc.freeze()
    gc.set_threshold(_YOUNG_COLLECTION_AFTER, *gc.get_threshold()[1:])
    try:
        faust.Worker(
            worker.app,
            loglevel=settings.log_level.lower(),
            logging_config=logging_config(settings),
            quiet=True,
            redirect_stdouts=False,
        ).execute_from_commandline()
    finally:
        worker.close_telemetry()
        leave_within(EXIT_WITHIN_S)


async def watch_loop(stall_s: float) -> None:
    """While the worker runs: end it if its event loop stops turning for ``stall_s``.

    faulthandler's timer runs on a C thread that needs no GIL, so it fires even while a parser
    holds the GIL on a post (a regular expression that backtracks for hours), which no Python
    thread could. Each turn of this task pushes the deadline back."""
    try:
        while True:
            faulthandler.dump_traceback_later(stall_s, exit=True, file=sys.stderr)
            await asyncio.sleep(_REARM_S)
    finally:
        faulthandler.cancel_dump_traceback_later()


def leave_within(seconds: float) -> None:
    """Past ``seconds`` from now, write every thread's stack to stderr (what held the exit up)
    and end the process with status 1; a process that exits before then is not affected."""
    faulthandler.dump_traceback_later(seconds, exit=True, file=sys.stderr)
