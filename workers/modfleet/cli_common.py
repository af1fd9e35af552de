"""What every ``modfleet`` command does the same way: read Settings, report our errors."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

import click

from modfleet.errors import ModfleetError
from modfleet.settings import Settings

T = TypeVar("T")


def exit_on_sigterm() -> None:
    """SIGTERM (an orchestrator's stop, ``kill``, a CI timeout) ends a command as Ctrl-C does,
    through its cleanup: the broker, Redis, worker or busy loops it started are stopped, not
    left running. A worker's own handler, installed when it starts, takes over from this one."""
    signal.signal(signal.SIGTERM, _terminated)


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def load_settings() -> Settings:
    """Settings from the environment, or exit 2 naming the field that is wrong."""
    try:
        return Settings()
    except ValueError as exc:
        click.echo(f"modfleet: invalid settings: {exc}", err=True)
        sys.exit(2)


def guard(action: Callable[[], T]) -> T:
    """Run ``action``; a modfleet error becomes its message and exit status 1, not a traceback."""
    try:
        return action()
    except ModfleetError as exc:
        click.echo(f"modfleet: {exc}", err=True)
        sys.exit(1)


def on_broker(settings: Settings, action: Callable[[], T], doing: str = "read from") -> T:
    """``guard`` for an ``action`` that reads or writes topics: a broker that cannot be reached
    (or refuses) is a one-line error naming it ("cannot <doing> the broker at ...") and exit
    status 1, as is a file that cannot be written."""
    from aiokafka.errors import KafkaError  # loaded only by the commands that use a broker

    try:
        return guard(action)
    except KafkaError as exc:
        servers = ", ".join(settings.bootstrap_servers)
        click.echo(f"modfleet: cannot {doing} the broker at {servers}: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"modfleet: {exc}", err=True)
        sys.exit(1)
