"""``modfleet reviews ...``"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click
import orjson

from modfleet.cli_common import guard, load_settings, on_broker


@click.group()
def reviews() -> None:
    """Reviewers' outcomes joined with decisions: agreement, live or over a time range."""


@reviews.command("run")
def run() -> None:
    """Join reviews with decisions live; agreement as Prometheus metrics on MODFLEET_WEB_PORT."""
    from modfleet.reviews.live import run_reviews

    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    guard(lambda: run_reviews(settings))


@reviews.command("report")
@click.option("--since", help="Decisions made at or after this ISO 8601 time (default: all).")
@click.option("--until", help="Decisions made before this ISO 8601 time (default: now).")
@click.option("--idle", "idle_s", default=3.0, show_default=True, help="Stop after this quiet.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
def report(since: str | None, until: str | None, idle_s: float, json_out: Path | None) -> None:
    """Agreement of reviewers with the decisions of a time range (and every review of them)."""
    from modfleet.reviews.agreement import render
    from modfleet.reviews.read import Window
    from modfleet.reviews.read import report as build

    settings = load_settings()
    window = guard(lambda: Window.parse(since, until))
    # A broker that cannot be reached, or a report that cannot be written: one line, exit 1.
    tally = on_broker(settings, lambda: asyncio.run(build(settings, window, idle_s)))
    click.echo(render(tally))
    if json_out is not None:
        report_json = orjson.dumps(tally.as_json(), option=orjson.OPT_INDENT_2)
        on_broker(settings, lambda: json_out.write_bytes(report_json))
