"""What every ``modfleet`` command does the same way: read Settings, report our errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import click

from modfleet.errors import ModfleetError
from modfleet.settings import Settings

T = TypeVar("T")


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
