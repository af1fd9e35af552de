"""The ``modfleet`` command."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from modfleet.errors import ModfleetError
from modfleet.policy.commands import policy
from modfleet.settings import Settings

T = TypeVar("T")


@click.group()
@click.version_option(package_name="modfleet")
def main() -> None:
    """Moderation worker fleet: Kafka posts in, policy decisions out."""


main.add_command(policy)


@main.command()
def worker() -> None:
    """Run a stream worker (configured by MODFLEET_* environment variables)."""
    from modfleet.stream.run import run_worker

    run_worker(_settings())


@main.command()
@click.option(
    "--posts",
    "posts_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSONL of posts to replay (default: the bundled sample of 2,000).",
)
@click.option("--timeout", "timeout_s", default=300.0, show_default=True, help="Seconds to wait.")
def dev(posts_file: Path | None, timeout_s: float) -> None:
    """Run the embedded stack: broker, Redis, a worker; replay posts; print a summary."""
    from modfleet.stack.dev import SAMPLE_POSTS, StackOptions, run_stack

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = StackOptions(posts_file or SAMPLE_POSTS, timeout_s, _settings())
    _guard(lambda: run_stack(options))


@main.group()
def topics() -> None:
    """Work with the topic catalogue."""


@topics.command("create")
@click.option("--replication-factor", type=click.IntRange(1), help="Override the catalogue's.")
@click.option("--partitions", type=click.IntRange(1), help="Override the catalogue's.")
def topics_create(replication_factor: int | None, partitions: int | None) -> None:
    """Create the catalogue's topics that do not exist yet (idempotent)."""
    from modfleet.contracts.admin import create_topics

    settings = _settings()
    created = _guard(
        lambda: asyncio.run(
            create_topics(settings, replication_factor=replication_factor, partitions=partitions)
        )
    )
    click.echo(f"created: {', '.join(created)}" if created else "all topics exist")


def _settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        click.echo(f"modfleet: invalid settings: {exc}", err=True)
        sys.exit(2)


def _guard(action: Callable[[], T]) -> T:
    try:
        return action()
    except ModfleetError as exc:
        click.echo(f"modfleet: {exc}", err=True)
        sys.exit(1)
