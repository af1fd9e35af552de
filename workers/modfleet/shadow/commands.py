"""``modfleet shadow ...``"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from pathlib import Path

import click
import orjson

from modfleet.cli_common import load_settings, on_broker
from modfleet.shadow.report import Comparison, compare, read_decisions, render


@click.group()
def shadow() -> None:
    """Compare shadow policies with the live one."""


@shadow.command("report")
@click.option("--idle", "idle_s", default=3.0, show_default=True, help="Stop after this quiet.")
@click.option("--show", default=20, show_default=True, help="Posts that differ to list.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
def report(idle_s: float, show: int, json_out: Path | None) -> None:
    """Agreement of each shadow policy with live, and the posts where they differ."""
    settings = load_settings()
    live, shadows = on_broker(settings, lambda: asyncio.run(read_decisions(settings, idle_s)))
    comparisons = compare(live, shadows)
    click.echo(render(comparisons, show))
    if json_out is not None:
        rows = [_as_json(c) for c in comparisons]
        json_out.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))


def _as_json(c: Comparison) -> dict[str, object]:
    data = asdict(c)
    data["matrix"] = {f"{a}->{b}": n for (a, b), n in c.matrix.items()}
    data["live_policies"] = sorted(c.live_policies)
    data["agreement"] = c.agreement
    return data
