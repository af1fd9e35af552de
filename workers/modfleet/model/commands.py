"""``modfleet model``: train the embedded classifier."""

from __future__ import annotations

from pathlib import Path

import click

from modfleet.cli_common import guard


@click.group("model")
def model() -> None:
    """The embedded CPU model: train it, with a card of what it was trained on and how it does."""


@model.command("train")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for weights.npz, card.json and MODEL_CARD.md.",
)
@click.option(
    "--shared",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The shared labelled-datasets folder: its sets are read by name (see the card).",
)
@click.option(
    "--data",
    "data",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A labelled JSONL/CSV file: text, a yes/no field per category (empty: unlabelled), "
    "optional split (train/test) and group. Repeatable.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--c", "c", type=click.FloatRange(min=0, min_open=True), default=4.0,
              show_default=True, help="Inverse regularisation strength of every head.")  # fmt: skip
@click.option("--model-id", default="modfleet-embedded", show_default=True)
@click.option("--version", "version", default="0", show_default=True)
def train_command(
    out: Path,
    shared: Path | None,
    data: tuple[Path, ...],
    seed: int,
    c: float,
    model_id: str,
    version: str,
) -> None:
    """Train one head per policy category; write the artifact and its card into --out."""
    from modfleet.model.build import TrainOptions, train

    options = TrainOptions(out, shared, data, seed, c, model_id, version)
    card = guard(lambda: train(options, progress=lambda line: click.echo(line, err=True)))
    click.echo(f"wrote {card.parent}/ (card: {card})")
