"""``modfleet worker``: run one stream worker in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import faust

from modfleet.settings import Settings
from modfleet.stream.app import StreamWorker
from modfleet.telemetry import logging_config


def run_worker(settings: Settings) -> None:
    worker = StreamWorker(settings)
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
