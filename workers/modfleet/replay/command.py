"""``modfleet replay``: the click command (loaded only when the command is run)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sys
from pathlib import Path
from typing import Any, cast

import click

from modfleet.cli_common import guard, load_settings, on_broker
from modfleet.replay.rows import FieldMap
from modfleet.replay.runner import FileSpec, ReplayOptions, TopicSpec, run_replay
from modfleet.replay.sources import FileFormat
from modfleet.replay.topic_source import Offsets
from modfleet.settings import Settings


class Rate(click.ParamType):
    """Posts per second, written ``1000`` or ``1000/s``."""

    name = "N/s"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        text = str(value).strip().removesuffix("/s")
        try:
            rate = float(text)
        except ValueError:
            self.fail(f"{value!r} is not a rate such as 1000/s", param, ctx)
        if not math.isfinite(rate) or rate <= 0:  # nan passes every comparison
            self.fail("the rate must be positive and finite, such as 1000/s", param, ctx)
        return rate


_PATH = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command("replay")
@click.argument("source", required=False, type=_PATH)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "parquet"]),
    help="File format (default: from the file name's suffix).",
)
@click.option("--id-field", default="post_id", show_default=True, help="Column of the post id.")
@click.option("--text-field", default="text", show_default=True, help="Column of the text.")
@click.option("--tenant-field", default="tenant", show_default=True, help="Column of the tenant.")
@click.option(
    "--tenant", default="replay", show_default=True, help="Tenant of rows that have none."
)
@click.option("--author-field", default="author_id", show_default=True)
@click.option("--lang-field", default="lang", show_default=True)
@click.option("--created-at-field", default="created_at", show_default=True)
@click.option("--from-topic", help="Replay records of this topic instead of a file.")
@click.option(
    "--start-offset",
    multiple=True,
    metavar="[P:]N",
    help="First offset to replay, for partition P or all (default: the beginning).",
)
@click.option(
    "--end-offset",
    multiple=True,
    metavar="[P:]N",
    help="Offset to stop before, for partition P or all (default: the end now).",
)
@click.option("--rate", type=Rate(), help="Posts per second (default: as fast as possible).")
@click.option(
    "--capture",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the decisions for the replayed posts here (JSONL).",
)
@click.option(
    "--timeout",
    "timeout_s",
    default=120.0,
    show_default=True,
    help="Seconds to wait for outcomes after the last post is sent.",
)
@click.option(
    "--embedded",
    is_flag=True,
    help="Start a local broker, Redis and worker (no Docker) and replay into them.",
)
@click.option("--no-progress", is_flag=True, help="No progress line on stderr.")
def replay(source: Path | None, fmt: str | None, from_topic: str | None,
           start_offset: tuple[str, ...], end_offset: tuple[str, ...], rate: float | None,
           capture: Path | None, timeout_s: float, embedded: bool, no_progress: bool,
           **fields: str) -> None:  # fmt: skip
    """Replay posts from SOURCE (JSONL, CSV, Parquet) or a topic, and report what was decided.

    Rows already in post.v1 form (JSON with schema_version) pass through unchanged; other rows
    are mapped with the --*-field options. Connection settings come from MODFLEET_* variables.
    """
    if (source is None) == (from_topic is None):
        raise click.UsageError("give either SOURCE or --from-topic")
    if from_topic is None and (start_offset or end_offset):
        raise click.UsageError("--start-offset and --end-offset need --from-topic")
    if embedded and from_topic:
        raise click.UsageError("the embedded stack starts empty: --from-topic has nothing to read")
    spec: FileSpec | TopicSpec = guard(
        lambda: (
            FileSpec(source, cast("FileFormat | None", fmt))
            if source is not None
            else TopicSpec(from_topic or "", Offsets.parse(start_offset), Offsets.parse(end_offset))
        )
    )
    options = ReplayOptions(spec, FieldMap(**fields), rate, timeout_s, capture, not no_progress)
    settings = load_settings()
    # "reach": a replay writes posts and reads outcomes; an unwritable capture is one line too.
    complete = on_broker(settings, lambda: _run(settings, options, embedded), doing="reach")
    sys.exit(0 if complete else 1)


def _run(settings: Settings, options: ReplayOptions, embedded: bool) -> bool:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    stack: contextlib.AbstractContextManager[Settings] = contextlib.nullcontext(settings)
    if embedded:
        from modfleet.replay.embedded import embedded_stack

        stack = embedded_stack(settings)
    with stack as target:
        report = asyncio.run(run_replay(target, options))
    click.echo(report.render())
    return report.complete
