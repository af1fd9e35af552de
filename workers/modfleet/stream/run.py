"""``modfleet worker``: run one stream worker in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import gc

import faust

from modfleet.settings import Settings
from modfleet.stream.app import StreamWorker
from modfleet.telemetry import logging_config


def run_worker(settings: Settings) -> None:
    worker = StreamWorker(settings)
    # What is built by now (modules, the model, the packs) lives as long as the process. Frozen
    # out of the collector's sight, a full collection walks what the stream holds, not the
    # several hundred thousand objects that are never garbage: in the benchmark a full
    # collection went from about 80 ms to 5 ms (docs/benchmarks.md).
    gc.collect()
    gc.freeze()
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
