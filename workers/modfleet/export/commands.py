"""``modfleet export ...``"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from modfleet.cli_common import guard, load_settings, on_broker


@click.group("export")
def export() -> None:
    """Export the fleet's own traffic for training."""


@export.command("training")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for train.jsonl, sft.jsonl, preference.jsonl and manifest.json.",
)
@click.option("--since", help="Decisions made at or after this ISO 8601 time (default: all).")
@click.option("--until", help="Decisions made before this ISO 8601 time (default: now).")
@click.option("--tenant", "tenants", multiple=True, help="Only this tenant. Repeatable.")
@click.option(
    "--pack",
    "packs",
    multiple=True,
    help="Only this pack: policy_id, policy_id@version or a digest prefix. Repeatable.",
)
@click.option("--idle", "idle_s", default=3.0, show_default=True, help="Stop after this quiet.")
def training(
    out: Path,
    since: str | None,
    until: str | None,
    tenants: tuple[str, ...],
    packs: tuple[str, ...],
    idle_s: float,
) -> None:  # fmt: skip
    """Reviewer-labelled and LLM-labelled posts as JSONL for `modfleet model train` and for
    fine-tuning an LLM judge. Tenants in MODFLEET_EXPORT_OPTED_OUT_TENANTS are never exported."""
    from modfleet.export.collect import export_training
    from modfleet.export.training import Filters
    from modfleet.reviews.read import Window

    settings = load_settings()
    window = guard(lambda: Window.parse(since, until))
    filters = Filters.build(tenants, packs, settings.export_opted_out_tenants)
    done = on_broker(
        settings, lambda: asyncio.run(export_training(settings, out, window, filters, idle_s))
    )
    counts = ", ".join(f"{k} {v}" for k, v in sorted(done.counts.items()))
    click.echo(f"wrote {out}/ ({counts})")
